"""Pair two runs by example id -> Comparison: rates, paired statistics, example diffs, cost, power.

Run A is the baseline (say, the prompted API model), run B the candidate (say, the fine-tune); every
difference is B - A. Errors count as non-matches (as in `summarize`); examples present in only one
run are left out of the pairing and listed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from evals.analyse.repeats import (
    CLUSTERED,
    PAIRED_T,
    RepeatPower,
    attempts,
    by_example,
    paired_fraction_diff,
    paired_t_p,
    repeat_power,
)
from evals.analyse.stats import (
    bootstrap_mean_ci,
    mcnemar_exact,
    mcnemar_sample_size,
    mean_ci_method,
    min_detectable_gap,
    paired_bootstrap_ci,
    paired_diff_ci,
)
from evals.analyse.summary import RunSummary, summarize, with_timing_columns
from evals.errors import EvalsError
from evals.types import answer_shown

TANGO = "Tango score interval"
MCNEMAR = "McNemar exact"


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval (bounds None when undefined, e.g. n < 2)."""

    estimate: float | None
    low: float | None
    high: float | None
    n: int  # values (or pairs) it rests on
    method: str


@dataclass(frozen=True)
class Side:
    """One run of the comparison: its summary plus what the comparison adds."""

    summary: RunSummary  # matches_text, metric means, errors, tokens, latency p50/p95
    metrics: dict[str, Estimate]  # each metric's mean over answered examples, with a bootstrap CI
    cost_per_1k_usd: float | None  # mean recorded cost per answered example x 1000
    mean_input_tokens: float | None  # cached and cache-written tokens included
    mean_output_tokens: float | None
    mean_cached_input_tokens: float | None
    mean_cache_write_tokens: float | None
    golden_hash: str | None
    config: dict[str, Any]  # the manifest's model settings (spec, price override, base_url, ...)
    finetuned: dict[str, Any] | None = None  # the hosted fine-tune an `ft@NAME` spec stood for (model, training cost)
    # each metric's values over answered examples (for distribution plots; left out of as_dict)
    values: dict[str, tuple[float, ...]] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class PairedCounts:
    """The paired 2x2 table of matches."""

    both_pass: int
    a_only: int  # baseline matched, candidate did not (n10)
    b_only: int  # candidate matched, baseline did not (n01)
    both_fail: int

    @property
    def n(self) -> int:
        return self.both_pass + self.a_only + self.b_only + self.both_fail

    @property
    def discordant(self) -> int:
        return self.a_only + self.b_only


@dataclass(frozen=True)
class ExampleDiff:
    """An example whose match verdict changed between the runs, with both answers."""

    example_id: str
    output_a: str | None
    output_b: str | None
    error_a: str | None
    error_b: str | None
    scores_a: dict[str, float | None]
    scores_b: dict[str, float | None]
    pass_a: float | None = None  # with repeats: the share of each run's attempts that passed
    pass_b: float | None = None


@dataclass(frozen=True)
class Power:
    """How many pairs settle a gap of `min_gap`, and what the current pairs can detect."""

    min_gap: float
    power: float
    alpha: float  # two-sided, 1 - the comparison's confidence
    discordance: float  # observed share of discordant pairs
    n_needed: int  # pairs for McNemar to detect min_gap (Connor 1987); discordance floored at min_gap
    min_detectable_gap: float | None  # at the current number of pairs
    repeats: RepeatPower | None = None  # with repeated attempts: examples needed at K, at 1, however many


@dataclass(frozen=True)
class Comparison:
    a: Side
    b: Side
    golden_hashes_differ: bool  # only possible with force=True
    missing_in_a: tuple[str, ...]  # example ids only run B has
    missing_in_b: tuple[str, ...]  # example ids only run A has
    counts: PairedCounts
    mcnemar_p: float  # two-sided p of `test`: McNemar's exact test (a paired t-test with repeats)
    match_diff: Estimate  # p_B - p_A over the pairs
    metric_diffs: dict[str, Estimate]  # mean of B - A per metric, over pairs both answered
    improved: tuple[ExampleDiff, ...]  # B matched, A did not
    regressed: tuple[ExampleDiff, ...]  # A matched, B did not
    power: Power
    min_gap: float
    confidence: float
    seed: int
    test: str = "McNemar exact"

    @property
    def n_pairs(self) -> int:
        return self.counts.n

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types only: NaN becomes None, tuples become lists."""
        d = json_types(asdict(self))
        d["n_pairs"] = self.n_pairs
        for side in ("a", "b"):
            d[side].pop("values", None)
        d["counts"].update(n=self.counts.n, discordant=self.counts.discordant)
        return d


def compare_runs(
    a: pd.DataFrame,
    b: pd.DataFrame,
    *,
    force: bool = False,
    min_gap: float = 0.05,
    seed: int = 0,
    confidence: float = 0.95,
    power: float = 0.8,
    n_resamples: int = 10_000,
    a_side: Side | None = None,
) -> Comparison:
    """Compare baseline run `a` with candidate run `b` (frames from `load_run`), paired by example id.

    Refuses runs over different golden sets (by the manifest's golden hash) unless `force`, in which
    case the shared example ids are compared. `min_gap` is the smallest difference in match rate
    worth acting on; it sets the power computation, at two-sided alpha = 1 - `confidence`. `a_side`:
    `run_side(a)` (with the same confidence, seed and resamples), when `a` is compared with several runs.
    """
    hash_a, hash_b = _golden_hash(a), _golden_hash(b)
    ka, kb = attempts(a), attempts(b)
    repeated = max(ka, kb) > 1
    ea, eb = by_example(a), by_example(b)  # with repeats, one row per example (its pass fraction)
    ids_a, ids_b = [str(i) for i in ea["example_id"]], [str(i) for i in eb["example_id"]]
    set_a, set_b = set(ids_a), set(ids_b)
    if hash_a != hash_b and not force:
        raise EvalsError(
            f"runs {_run_id(a)} and {_run_id(b)} used different golden sets (hash {str(hash_a)[:12]} vs "
            f"{str(hash_b)[:12]}; {len(set_a - set_b)} example(s) only in the first, {len(set_b - set_a)} only in "
            "the second), so their examples cannot be trusted to pair. Re-run both on the same golden set, or "
            "pass --force to compare the example ids they share")
    shared = [i for i in ids_a if i in set_b]
    if not shared:
        raise EvalsError(f"runs {_run_id(a)} and {_run_id(b)} have no example id in common")
    pa, pb = _indexed(ea).loc[shared], _indexed(eb).loc[shared]

    if repeated:  # each example's share of passing attempts; the example is the unit
        fa, fb = pa["passed"].to_numpy(float), pb["passed"].to_numpy(float)
        better, worse, same = fb > fa, fb < fa, fb == fa
        counts = PairedCounts(both_pass=int(np.sum(same & (fa >= 0.5))), a_only=int(worse.sum()),
                              b_only=int(better.sum()), both_fail=int(np.sum(same & (fa < 0.5))))
        match_diff = _estimate(paired_fraction_diff(fa, fb, confidence), len(fa), CLUSTERED)
        test, p_value = PAIRED_T, paired_t_p(fa, fb)
        improved, regressed = _diffs(pa, pb, better, fb - fa), _diffs(pa, pb, worse, fa - fb)
    else:
        pass_a, pass_b = pa["passed"].to_numpy(bool), pb["passed"].to_numpy(bool)
        counts = PairedCounts(
            both_pass=int(np.sum(pass_a & pass_b)),
            a_only=int(np.sum(pass_a & ~pass_b)),
            b_only=int(np.sum(~pass_a & pass_b)),
            both_fail=int(np.sum(~pass_a & ~pass_b)),
        )
        low, high = paired_diff_ci(counts.both_pass, counts.a_only, counts.b_only, counts.both_fail, confidence)
        match_diff = Estimate((counts.b_only - counts.a_only) / counts.n, low, high, counts.n, TANGO)
        test, p_value = MCNEMAR, mcnemar_exact(counts.a_only, counts.b_only)
        improved, regressed = _diffs(pa, pb, ~pass_a & pass_b), _diffs(pa, pb, pass_a & ~pass_b)
    n = counts.n

    scores_a, scores_b = _answered_scores(pa), _answered_scores(pb)
    metric_diffs = {}
    for metric in [m for m in scores_a.columns if m in scores_b.columns]:
        x, y = scores_a[metric].to_numpy(float), scores_b[metric].to_numpy(float)
        both = ~np.isnan(x) & ~np.isnan(y)
        est = paired_bootstrap_ci(x[both], y[both], n_resamples, confidence, seed)
        metric_diffs[metric] = _estimate(est, int(both.sum()), "paired " + mean_ci_method(int(both.sum())))

    discordance = counts.discordant / n
    planned = repeat_power(fa, fb, ka, kb, min_gap, power, 1 - confidence) if repeated else None
    return Comparison(
        a=a_side or run_side(a, confidence, seed, n_resamples),
        b=run_side(b, confidence, seed, n_resamples),
        golden_hashes_differ=hash_a != hash_b,
        missing_in_a=tuple(i for i in ids_b if i not in set_a),
        missing_in_b=tuple(i for i in ids_a if i not in set_b),
        counts=counts,
        mcnemar_p=p_value,
        match_diff=match_diff,
        metric_diffs=metric_diffs,
        improved=improved,
        regressed=regressed,
        power=Power(
            min_gap=min_gap,
            power=power,
            alpha=1 - confidence,
            discordance=discordance,
            n_needed=planned.n_needed if planned else mcnemar_sample_size(min_gap, discordance, power, 1 - confidence),
            min_detectable_gap=planned.min_detectable_gap if planned else min_detectable_gap(
                n, discordance, power, 1 - confidence),
            repeats=planned,
        ),
        test=test,
        min_gap=min_gap,
        confidence=confidence,
        seed=seed,
    )


def _run_id(df: pd.DataFrame) -> str:
    return str(df.attrs.get("run", {}).get("id", "?"))


def _golden_hash(df: pd.DataFrame) -> str | None:
    return ((df.attrs.get("manifest") or {}).get("golden") or {}).get("hash")


def _indexed(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out.index = out["example_id"].astype(str)
    return out


def _answered_scores(df: pd.DataFrame) -> pd.DataFrame:
    """Metric values as floats (columns named by metric id), NaN where the example errored."""
    cols = [c for c in df.columns if c.startswith("score.")]
    scores = df[cols].apply(pd.to_numeric, errors="coerce").astype(float)
    scores.columns = [c.removeprefix("score.") for c in cols]
    scores.loc[df["error"].notna().to_numpy()] = np.nan
    return scores


def _estimate(values: tuple[float, float, float], n: int, method: str) -> Estimate:
    est, low, high = (_num(v) for v in values)
    return Estimate(est, low, high, n, method)


def run_side(df: pd.DataFrame, confidence: float = 0.95, seed: int = 0, n_resamples: int = 10_000) -> Side:
    """One run of a comparison: its summary, metric means with bootstrap CIs, mean tokens and cost."""
    golden_hash = _golden_hash(df)
    df = with_timing_columns(df)
    scores = _answered_scores(by_example(df))  # with repeats, each example's mean: the example is the unit
    metrics = {
        m: _estimate(bootstrap_mean_ci(scores[m].to_numpy(float), n_resamples, confidence, seed),
                     int(scores[m].notna().sum()), mean_ci_method(int(scores[m].notna().sum())))
        for m in scores.columns
    }
    ok = df[df["error"].isna()] if len(df) else df

    def mean_of(col: str) -> float | None:
        values = pd.to_numeric(ok[col], errors="coerce").dropna() if len(ok) else []
        return float(np.mean(values)) if len(values) else None

    mean_cost = mean_of("cost_usd")
    return Side(
        summary=summarize(df),
        metrics=metrics,
        cost_per_1k_usd=mean_cost * 1000 if mean_cost is not None else None,
        mean_input_tokens=mean_of("input_tokens"),
        mean_output_tokens=mean_of("output_tokens"),
        mean_cached_input_tokens=mean_of("cached_input_tokens"),
        mean_cache_write_tokens=mean_of("cache_write_tokens"),
        golden_hash=golden_hash,
        config=dict((df.attrs.get("manifest") or {}).get("model") or {}),
        finetuned=(df.attrs.get("manifest") or {}).get("finetuned"),
        values={m: tuple(float(v) for v in scores[m].dropna()) for m in scores.columns},
    )


def _diffs(pa: pd.DataFrame, pb: pd.DataFrame, mask: np.ndarray,
           change: np.ndarray | None = None) -> tuple[ExampleDiff, ...]:
    """The examples under `mask`, largest `change` first (with repeats: the change in pass fraction)."""
    chosen = np.flatnonzero(mask)
    if change is not None:
        chosen = chosen[np.argsort(-change[chosen], kind="stable")]
    a, b = pa.iloc[chosen], pb.iloc[chosen]  # column by column, not row by row: thousands can change
    sa, sb = _answered_scores(a), _answered_scores(b)

    def column(df: pd.DataFrame, name: str) -> list[Any]:
        return df[name].tolist() if name in df.columns else [None] * len(df)

    def answers(df: pd.DataFrame) -> list[Any]:  # the text, then the function calls (evals.types.answer_shown)
        return [answer_shown(o, c) for o, c in zip(column(df, "output"), column(df, "tool_calls"))]

    def scores(s: pd.DataFrame) -> list[dict[str, float | None]]:
        return [{m: _num(v) for m, v in zip(s.columns, row)} for row in s.itertuples(index=False)]

    repeated = [_num(v) for v in a["passed"]] if change is not None else [None] * len(a), \
        [_num(v) for v in b["passed"]] if change is not None else [None] * len(b)
    return tuple(ExampleDiff(str(i), _text(oa), _text(ob), _text(ea), _text(eb), ca, cb, fa, fb)
                 for i, oa, ob, ea, eb, ca, cb, fa, fb in zip(
                     a.index, answers(a), answers(b), column(a, "error"), column(b, "error"),
                     scores(sa), scores(sb), *repeated, strict=True))


def _text(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def json_types(obj: Any) -> Any:
    """`obj` with plain JSON types only: NaN and inf become None, tuples and numpy values plain."""
    if isinstance(obj, dict):
        return {str(k): json_types(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_types(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _num(obj)
    return obj
