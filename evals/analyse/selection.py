"""Choosing among candidate prompts on the dev part: each candidate's match rate with its Wilson interval, the
paired interval of its difference from the seed, tokens and cost per call at the task's prices; the best, and
every candidate whose paired interval against the best contains zero, are tied within the noise, and the
cheapest of those wins (a longer prompt is paid for on every call). These are selection figures, on dev."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from evals.analyse.rates import wilson_interval
from evals.analyse.stats import paired_diff_ci
from evals.data.prompts import prompt_record
from evals.providers.prices import price_for
from evals.run.optimize.search import Candidate, Scored
from evals.types import ModelConfig

CONFIDENCE = 0.95


@dataclass
class Row:
    """One candidate in the selection table."""

    name: str
    family: str
    note: str
    status: str = "scored"  # scored, or why not (calls or budget ran out)
    n: int = 0
    matches: int = 0
    rate: float | None = None
    low: float | None = None
    high: float | None = None
    vs_seed: tuple[float, float, float] | None = None  # estimate, low, high of (candidate - seed), paired
    input_tokens: float = 0.0  # per call
    output_tokens: float = 0.0
    cost_per_call: float = 0.0  # at the task's prices
    calls: int = 0  # stored results on the dev part (and, for the seed, its bootstrap answers)
    errors: int = 0  # of them, calls that failed after retries (counted as misses)
    spent_usd: float = 0.0  # what those calls cost when made (cache hits excluded)
    tied: bool = False  # within the noise of the best
    winner: bool = False
    run_id: str | None = None
    prompt: dict[str, Any] = field(default_factory=dict, repr=False)  # as manifests keep it (prompt_record)
    passed: dict[str, bool] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "passed"}


def paired(a: dict[str, bool], b: dict[str, bool]) -> tuple[float, float, float] | None:
    """(b - a) in match rate on the examples both have, with its paired (Tango) interval."""
    shared = sorted(set(a) & set(b))
    if not shared:
        return None
    n11 = sum(a[e] and b[e] for e in shared)
    n10 = sum(a[e] and not b[e] for e in shared)
    n01 = sum(not a[e] and b[e] for e in shared)
    n00 = len(shared) - n11 - n10 - n01
    low, high = paired_diff_ci(n11, n10, n01, n00, CONFIDENCE)
    return (n01 - n10) / len(shared), low, high


def row_for(candidate: Candidate, scored: Scored | None, config: ModelConfig, status: str = "scored") -> Row:
    row = Row(candidate.name, candidate.family, candidate.note, status, prompt=prompt_record(candidate.prompt))
    if scored is None or not scored.complete:
        row.status = status if status != "scored" else "not scored"
        return row
    row.run_id, row.passed = scored.run_id, dict(scored.passed)
    row.n, row.matches = len(scored.passed), sum(scored.passed.values())
    row.rate = row.matches / row.n if row.n else None
    row.low, row.high = wilson_interval(row.matches, row.n, CONFIDENCE) if row.n else (None, None)
    row.input_tokens, row.output_tokens = scored.tokens_per_call()
    row.cost_per_call = price_for(config).cost(row.input_tokens, row.output_tokens)
    row.calls = len(scored.rows)
    row.errors = sum(bool(r["error"]) for r in scored.rows.values())
    row.spent_usd = sum(r["cost_usd"] or 0.0 for r in scored.rows.values() if not r["cached"])
    return row


def choose(rows: Sequence[Row]) -> Row:
    """The winner: the cheapest of the candidates tied with the best within the noise (rows[0] is the seed)."""
    scored = [r for r in rows if r.status == "scored" and r.rate is not None]
    seed = rows[0]
    for r in scored:
        r.vs_seed = paired(seed.passed, r.passed) if r is not seed else None
    best = max(scored, key=lambda r: r.rate)
    for r in scored:
        diff = paired(best.passed, r.passed) if r is not best else (0.0, 0.0, 0.0)
        r.tied = diff is not None and diff[1] <= 0 <= diff[2]
    order = {id(r): i for i, r in enumerate(rows)}
    winner = min((r for r in scored if r.tied),
                 key=lambda r: (r.cost_per_call, r.input_tokens, -(r.rate or 0), order[id(r)]))
    winner.winner = True
    return winner
