"""Several paths at once: a prompted baseline against each candidate (say a hosted fine-tune and a
self-hosted LoRA, `decision.candidate` as a list). Each pair is compared and decided on its own (paired on
the same examples, verdict.py); this picks the path and lays every option out in one cost table:

- the candidates whose whole CI of the gain over the baseline lies above min_gap (and that no constraint
  excludes) clear the gap; the cheapest of them at the monthly volume is the answer;
- else, while any candidate's interval straddles min_gap, the answer is inconclusive (with the fewest
  more examples that would settle one);
- else the prompted baseline ships.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from evals.analyse.compare import Comparison, json_types
from evals.analyse.rates import format_points
from evals.analyse.verdict import Verdict, quality_call
from evals.types import Decision

SHIP_BASELINE = "prompted {model}: ship it"
CHEAPEST = "{model} is the cheapest option that clears the gap"
CHEAPEST_QUALIFYING = "{model} is the cheapest option that qualifies"
INCONCLUSIVE = "inconclusive: no option clears the gap yet; about {n} more golden examples needed"
NONE_QUALIFIES = "no option qualifies under the decision's constraints"


@dataclass(frozen=True)
class PathRow:
    """One option in the side-by-side table; costs None where they could not be projected."""

    role: str
    model: str
    hosting: str
    matches: str
    gain: str  # the match-rate gain over the baseline with its CI ('-' for the baseline)
    call: str  # where that CI lies against min_gap, or the pair's own verdict
    per_call_usd: float | None  # marginal: as billed (API), or GPU time (self-hosted)
    training_monthly_usd: float | None  # amortised one-off training (and operations, self-hosted)
    monthly_usd: float | None  # at decision.volume
    latency: str
    excluded: str = ""
    gpu_minimum_monthly_usd: float | None = None  # GPU hours paid each month however few the calls


@dataclass(frozen=True)
class PathChoice:
    label: str
    headline: str
    reasons: list[str]
    rows: list[PathRow]
    volume: float | None
    decided_on: str = ""
    revisit_on: str = ""

    def as_dict(self) -> dict[str, Any]:
        return json_types(asdict(self))


def _call(cmp: Comparison, gap: float) -> str:
    low, high = cmp.match_diff.low, cmp.match_diff.high
    return "straddles" if low is None or high is None else quality_call(low, high, gap)


def _monthly(verdict: Verdict, volume: float | None, side: str = "candidate") -> float | None:
    model = getattr(verdict.costs, side) if verdict.costs else None
    if model is None:
        return None
    return model.monthly_usd(volume) if volume else model.per_call_usd


def _rows(pairs: Sequence[tuple[str, Comparison, Verdict]], d: Decision) -> list[PathRow]:
    """Each option's row, its figures those of its pair's verdict (`Verdict.sides`): one computation per side."""
    def row(role: str, cmp: Comparison, v: Verdict, side: str, gain: str, call: str) -> PathRow:
        f = v.sides[side]
        lat = "-" if f.latency.p50_s is None else f"{f.latency.p50_s:.2f}/{f.latency.p95_s:.2f}s"
        summary = cmp.a.summary if side == "baseline" else cmp.b.summary
        return PathRow(role, f.model, f.hosting, summary.matches_text, gain, call, f.marginal_per_call_usd,
                       f.fixed_monthly_usd, f.monthly_usd, lat, v.excluded.get(side, ""), f.gpu_minimum_monthly_usd)

    _, cmp0, v0 = pairs[0]
    rows = [row("baseline", cmp0, v0, "baseline", "-", "-")]
    for role, cmp, v in pairs:
        diff = cmp.match_diff
        gain = f"{format_points(diff.estimate)} ({format_points(diff.low)} to {format_points(diff.high)})"
        rows.append(row(role, cmp, v, "candidate", gain, v.label))
    return rows


def choose_path(pairs: Sequence[tuple[str, Comparison, Verdict]], d: Decision) -> PathChoice:
    """The path to take, given each candidate's comparison with the baseline and its verdict (role, cmp, verdict)."""
    gap, volume = d.min_gap, d.volume
    baseline = pairs[0][1].a.summary.model
    cost_words = f"a month at {volume:,.0f} calls" if volume else "a call (no decision.volume: training not weighed)"
    words = {"above": "clears", "below": "lies below", "straddles": "straddles"}
    reasons = [f"{cmp.b.summary.model}: {format_points(cmp.match_diff.estimate)} points over {baseline} "
               f"({cmp.confidence:.0%} CI {format_points(cmp.match_diff.low)} to {format_points(cmp.match_diff.high)}), "
               f"which {words[_call(cmp, gap)]} the {gap * 100:g}-point minimum; against {baseline} alone: {v.label}."
               for _, cmp, v in pairs]
    qualifying = [(cmp, v) for _, cmp, v in pairs if "candidate" not in v.excluded]
    baseline_out = pairs[0][2].excluded.get("baseline")
    clears = [(cmp, v) for cmp, v in qualifying if _call(cmp, gap) == "above"]
    pool = clears if clears or not baseline_out else qualifying
    if pool:
        costed = [(cmp, v) for cmp, v in pool if _monthly(v, volume) is not None]
        if costed:
            cmp, v = min(costed, key=lambda p: _monthly(p[1], volume))
            how = f"costs least: ${_monthly(v, volume):,.4f} {cost_words}"
            if len(costed) < len(pool):
                how += f" ({len(pool) - len(costed)} other option(s) could not be costed)"
        else:
            cmp, v = max(pool, key=lambda p: p[0].match_diff.estimate or 0.0)
            how = "could not be costed, nor could the others, so the largest gain is taken"
        model = cmp.b.summary.model
        if clears:
            label = CHEAPEST.format(model=model)
            headline = (f"{len(clears)} of {len(pairs)} candidates clear the {gap * 100:g}-point gap over {baseline}; "
                        f"{model} {how}. Against {baseline} alone: {v.label}.")
        else:
            label = CHEAPEST_QUALIFYING.format(model=model)
            headline = f"The baseline does not qualify ({baseline_out}); of the candidates, {model} {how}."
    elif baseline_out:
        label, headline = NONE_QUALIFIES, f"The baseline does not qualify ({baseline_out}), and no candidate does."
    else:
        open_ = [v.more_examples for cmp, v in qualifying if _call(cmp, gap) == "straddles" and v.more_examples]
        if open_:
            label = INCONCLUSIVE.format(n=f"{min(open_):,}")
            headline = (f"No candidate's whole interval lies above the {gap * 100:g}-point minimum, and "
                        f"{len(open_)} straddle{'s' if len(open_) == 1 else ''} it; about {min(open_):,} more paired examples settle the closest.")
        else:
            label = SHIP_BASELINE.format(model=baseline)
            headline = f"No candidate clears the {gap * 100:g}-point gap over {baseline}."
    v0 = pairs[0][2]
    return PathChoice(label, headline, reasons, _rows(pairs, d), volume, v0.decided_on, v0.revisit_on)
