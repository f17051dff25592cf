"""The decision: is the candidate (a fine-tune) worth it over the baseline (a prompted API model)?

A cost model for each side (API: recorded tokens x price table; self-hosted: GPU hours plus an
amortised training cost), projected to the team's monthly volume, and a verdict with its reasons,
rules and assumptions spelled out. Settings come from task.yaml's `decision:` mapping, e.g.

    decision:
      baseline: openai:gpt-4o-mini
      candidate: local:smollm2+lora:finetune/adapters/resume-feedback
      min_gap: 0.05            # smallest match-rate gain worth acting on
      volume: 100000           # calls per month
      quality_only: false      # true: ignore cost and latency
      self_hosted: {gpu_hourly_usd: 1.2, calls_per_hour: 3600, training_cost_usd: 50}

A side is self-hosted when its provider is `local` or its spec has a `+lora:` adapter (which also
carries the training cost); any other side is priced as API calls from the price table.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from evals.compare import Comparison, Side, json_types
from evals.costs import price_for
from evals.errors import EvalsError
from evals.manifest import config_from_dict
from evals.stats import mcnemar_sample_size
from evals.types import ModelConfig, ModelSpec, Price

NO_GAP = "no real quality gap: ship the prompted model"
JUSTIFIED = "fine-tuning is justified"
TRADE_OFF = "the fine-tune is better but neither cheaper nor faster: a trade-off for the team to weigh"
INCONCLUSIVE = "inconclusive: about {n} more golden examples needed"
HOURS_PER_MONTH = 730  # 8760 / 12
SELF_HOSTED_KEYS = {"gpu_hourly_usd", "calls_per_hour", "training_cost_usd", "amortize_months",
                    "min_gpu_hours_per_month"}
DECISION_KEYS = {"baseline", "candidate", "min_gap", "volume", "quality_only", "self_hosted"}


@dataclass(frozen=True)
class SelfHosted:
    """How a self-hosted model is paid for: GPU hours at a throughput, plus a one-off training cost."""

    gpu_hourly_usd: float
    calls_per_hour: float | None = None  # None: measured from the run (3600 / median latency)
    training_cost_usd: float = 0.0  # one-off; charged to a side with a LoRA adapter
    amortize_months: float = 12.0
    min_gpu_hours_per_month: float = 0.0  # 0: billed by hours used; 730: an always-on GPU


@dataclass(frozen=True)
class Decision:
    """task.yaml's `decision:` settings, validated."""

    baseline: str | None = None
    candidate: str | None = None
    min_gap: float = 0.05
    volume: float | None = None  # calls per month
    quality_only: bool = False
    self_hosted: SelfHosted | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None, *, min_gap: float = 0.05) -> Decision:
        """Validate task.yaml's `decision:`; a bad value raises EvalsError naming the field."""
        if raw is not None and not isinstance(raw, Mapping):
            raise EvalsError("expected a mapping of decision settings", field="decision")
        raw = dict(raw or {})
        _check_keys(raw, DECISION_KEYS, "decision")
        sh = raw.get("self_hosted")
        if sh is not None:
            if not isinstance(sh, Mapping):
                raise EvalsError("expected a mapping", field="decision.self_hosted")
            _check_keys(sh, SELF_HOSTED_KEYS, "decision.self_hosted")
            if "gpu_hourly_usd" not in sh:
                raise EvalsError("gpu_hourly_usd is required", field="decision.self_hosted")
            sh = SelfHosted(**{k: _number(v, f"decision.self_hosted.{k}", positive=k in
                                          ("calls_per_hour", "amortize_months"))
                               for k, v in sh.items() if not (k == "calls_per_hour" and v is None)})
        for key in ("baseline", "candidate"):
            if raw.get(key) is not None:
                try:
                    raw[key] = str(ModelSpec.parse(str(raw[key])))
                except ValueError as e:
                    raise EvalsError(str(e), field=f"decision.{key}") from None
        gap = _number(raw.get("min_gap", min_gap), "decision.min_gap", positive=True)
        if gap >= 1:
            raise EvalsError(f"a fraction of examples, e.g. 0.05 for 5 points, got {gap}", field="decision.min_gap")
        quality_only = raw.get("quality_only", False)
        if not isinstance(quality_only, bool):
            raise EvalsError(f"expected true or false, got {quality_only!r}", field="decision.quality_only")
        volume = raw.get("volume")
        return cls(raw.get("baseline"), raw.get("candidate"), gap,
                   None if volume is None else _number(volume, "decision.volume", positive=True),
                   quality_only, sh)


@dataclass(frozen=True)
class CostModel:
    """Monthly cost = fixed + max(per_call x volume, floor)."""

    model: str
    hosting: str  # "api" or "self-hosted"
    per_call_usd: float
    fixed_monthly_usd: float = 0.0  # amortised one-off cost (training)
    floor_monthly_usd: float = 0.0  # minimum compute bill (GPU hours paid for even when idle)
    basis: str = ""  # how the numbers were reached, in words

    def monthly_usd(self, volume: float) -> float:
        return self.fixed_monthly_usd + max(self.per_call_usd * volume, self.floor_monthly_usd)


@dataclass(frozen=True)
class CostRow:
    volume: float
    baseline_usd: float
    candidate_usd: float


@dataclass(frozen=True)
class CostProjection:
    baseline: CostModel
    candidate: CostModel
    rows: tuple[CostRow, ...]  # at the volume, 10x and 100x (empty without a volume)
    break_even_volume: float | None  # calls/month where the cheaper side flips; None if it never does


@dataclass(frozen=True)
class Verdict:
    """The call, why (plain words, with the numbers), the rules applied and the assumptions made."""

    label: str
    reasons: list[str]
    assumptions: list[str]
    rules: list[str] = field(default_factory=list)
    more_examples: int | None = None  # when inconclusive
    costs: CostProjection | None = None

    def render(self) -> str:
        parts = [f"Verdict: {self.label}", "", "Why:", *(f"  - {r}" for r in self.reasons),
                 "", "Rules:", *(f"  - {r}" for r in self.rules),
                 "", "Assumptions:", *(f"  - {a}" for a in self.assumptions)]
        return "\n".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return json_types(asdict(self))


def break_even_volume(x: CostModel, y: CostModel) -> float | None:
    """The smallest monthly volume > 0 at which the cheaper of x and y changes; None if it never does.

    Both costs are piecewise linear (a kink where per-call cost reaches the floor), so the
    difference is affine between kinks and each crossing is found exactly.
    """
    kinks = sorted({m.floor_monthly_usd / m.per_call_usd for m in (x, y)
                    if m.per_call_usd > 0 and m.floor_monthly_usd > 0})

    def diff(v: float) -> float:
        return x.monthly_usd(v) - y.monthly_usd(v)

    def sign(v: float) -> int:
        return (v > 1e-12) - (v < -1e-12)

    start = sign(diff(0.0)) or sign(diff(kinks[0] / 2 if kinks else 1.0))  # who is cheaper at low volume
    if not start:
        return None
    lo, f_lo = 0.0, diff(0.0)
    for hi in kinks:
        f_hi = diff(hi)
        if sign(f_hi) == -start:
            return lo + (hi - lo) * f_lo / (f_lo - f_hi)
        lo, f_lo = hi, f_hi
    slope = x.per_call_usd - y.per_call_usd  # past the last kink both are linear
    if sign(slope) == -start and sign(f_lo) != -start:
        return lo - f_lo / slope
    return None


def cost_model(side: Side, settings: SelfHosted | None) -> tuple[CostModel | None, str]:
    """The side's cost model, or None with the reason it cannot be costed."""
    config = _config(side)
    model = str(config.spec)
    if config.spec.provider == "local" or config.spec.adapter:
        if settings is None:
            return None, (f"Cost unknown: {model} is self-hosted and decision.self_hosted "
                          "(gpu_hourly_usd, calls_per_hour) is not set.")
        cph, measured = settings.calls_per_hour, ""
        if cph is None:
            p50 = side.summary.latency_p50_s
            if not p50:
                return None, f"Cost unknown: {model} has no calls_per_hour set and no latency to measure it."
            cph, measured = 3600 / p50, " (measured: 3600 / median latency, one call at a time)"
        trained = bool(config.spec.adapter)
        fixed = settings.training_cost_usd / settings.amortize_months if trained else 0.0
        basis = (f"{model} self-hosted: GPU ${settings.gpu_hourly_usd:g}/hour at {cph:,.0f} calls/hour{measured}"
                 f" = ${settings.gpu_hourly_usd / cph:.6f} per call")
        if trained:
            basis += (f"; training ${settings.training_cost_usd:,.2f} amortised over "
                      f"{settings.amortize_months:g} months")
        basis += (f"; at least {settings.min_gpu_hours_per_month:g} GPU hours a month" if
                  settings.min_gpu_hours_per_month else "; GPU billed only for the hours used")
        return CostModel(model, "self-hosted", settings.gpu_hourly_usd / cph, fixed,
                         settings.gpu_hourly_usd * settings.min_gpu_hours_per_month, basis), ""
    price = price_for(config)
    if price == Price():
        return None, f"Cost unknown: no price known for {model}; add `price:` to its entry in task.yaml."
    if side.mean_input_tokens is None:
        return None, f"Cost unknown: {model} answered no example to take token counts from."
    tin, tout = side.mean_input_tokens, side.mean_output_tokens or 0.0
    per_call = (tin * price.input_per_mtok + tout * price.output_per_mtok) / 1e6
    basis = (f"{model} API: ${price.input_per_mtok:g}/${price.output_per_mtok:g} per million input/output "
             f"tokens x {tin:,.0f}/{tout:,.0f} mean recorded tokens = ${per_call:.6f} per call")
    return CostModel(model, "api", per_call, basis=basis), ""


def project_costs(cmp: Comparison, decision: Decision) -> tuple[CostProjection | None, list[str]]:
    """Both sides' monthly cost at the volume, 10x and 100x, and the break-even volume."""
    (base, why_a), (cand, why_b) = cost_model(cmp.a, decision.self_hosted), cost_model(cmp.b, decision.self_hosted)
    if base is None or cand is None:
        return None, [w for w in (why_a, why_b) if w]
    volumes = [decision.volume * k for k in (1, 10, 100)] if decision.volume else []
    rows = tuple(CostRow(v, base.monthly_usd(v), cand.monthly_usd(v)) for v in volumes)
    return CostProjection(base, cand, rows, break_even_volume(base, cand)), []


def quality_call(low: float, high: float, min_gap: float) -> str:
    """Where the CI of the candidate's advantage lies relative to min_gap: below, above or straddles."""
    return "below" if high < min_gap else "above" if low > min_gap else "straddles"


def decide(cmp: Comparison, decision: Mapping[str, Any] | Decision | None = None) -> Verdict:
    """The verdict on baseline A versus candidate B of `cmp`, under task.yaml's `decision:` settings."""
    d = decision if isinstance(decision, Decision) else Decision.from_mapping(decision, min_gap=cmp.min_gap)
    order_notes = _check_order(cmp, d)
    a, b, c, diff = cmp.a.summary, cmp.b.summary, cmp.counts, cmp.match_diff
    gap, conf = d.min_gap, cmp.confidence
    reasons = [
        f"Matches: baseline {a.model} {a.matches_text}; candidate {b.model} {b.matches_text}.",
        f"On the {c.n} examples both ran, the candidate matched {c.b_only} that the baseline missed and "
        f"missed {c.a_only} that the baseline matched ({c.both_pass} both matched, {c.both_fail} both missed); "
        f"McNemar exact p = {cmp.mcnemar_p:.3g}.",
        f"The candidate's advantage in match rate is {_points(diff.estimate)} points, {conf:.0%} CI "
        f"{_points(diff.low)} to {_points(diff.high)}; the minimum gap worth acting on is {gap * 100:g} points.",
    ]
    call, more = quality_call(diff.low, diff.high, gap), None
    if call == "below":
        reasons.append(f"The whole interval lies below {gap * 100:g} points" + (
            " and below zero: the candidate is worse." if diff.high < 0 else ": any real gain is too small to act on."))
    elif call == "above":
        reasons.append(f"The whole interval lies above {gap * 100:g} points: the quality gain is real.")
    else:
        more, lines = _more_examples(cmp, gap)
        reasons += lines
    costs, cost_notes = project_costs(cmp, d)
    cost_ok, cost_lines = _cost_case(costs, cost_notes)
    latency_ok, latency_lines = _latency_case(cmp)
    reasons += cost_lines + latency_lines

    if call == "below":
        label = NO_GAP
    elif call == "straddles":
        label = INCONCLUSIVE.format(n=f"{more:,}")
    elif d.quality_only:
        label = JUSTIFIED
        reasons.append("decision.quality_only is set, so cost and latency are not weighed.")
    elif cost_ok or latency_ok:
        label = JUSTIFIED
        held = [w for w, ok in (("cost at this volume", cost_ok), ("latency (p95)", latency_ok)) if ok]
        reasons.append("The candidate also wins on " + " and ".join(held) + ".")
    else:
        label = TRADE_OFF
        reasons.append("But the candidate is neither cheaper at this volume nor faster (p95), "
                       "so whether the gain is worth its price is the team's call.")
    reasons += _data_notes(cmp) + order_notes
    return Verdict(label, reasons, _assumptions(cmp, d, costs), _rules(d, conf), more, costs)


def _more_examples(cmp: Comparison, gap: float) -> tuple[int, list[str]]:
    """Paired examples still needed when the CI straddles min_gap, and the reasoning in words."""
    p, n, est = cmp.power, cmp.counts.n, cmp.match_diff.estimate
    needed = mcnemar_sample_size(gap, p.discordance, p.power, p.alpha)
    lines = [f"The interval contains {gap * 100:g} points, so these examples cannot tell a gain "
             "worth acting on from one that is not."]
    if needed > n:
        lines.append(f"With {p.discordance:.0%} of examples discordant, about {needed:,} paired examples "
                     f"detect a {gap * 100:g}-point gap with {p.power:.0%} power; there are {n}.")
    else:  # enough to detect min_gap itself: the observed gap sits close to the threshold
        distance = abs(est - gap)
        needed = max(mcnemar_sample_size(max(distance, 0.005), p.discordance, p.power, p.alpha), n + 1)
        lines.append(f"The observed gap is {distance * 100:.1f} points from the threshold; telling them apart "
                     f"with {p.power:.0%} power takes about {needed:,} paired examples; there are {n}.")
        if distance < 0.005:
            lines.append(f"A gap this close to {gap * 100:g} points may never settle: decide whether a gain of "
                         "about that size is worth acting on.")
    if p.min_detectable_gap is not None:
        lines.append(f"The current {n} examples reliably detect only gaps of about "
                     f"{p.min_detectable_gap * 100:.0f} points or more.")
    return needed - n, lines


def _cost_case(costs: CostProjection | None, notes: list[str]) -> tuple[bool, list[str]]:
    """Whether the candidate costs no more at the volume, and the cost lines for the reasons."""
    if costs is None:
        return False, notes
    lines = [f"At {row.volume:,.0f} calls/month: baseline ${row.baseline_usd:,.2f}, "
             f"candidate ${row.candidate_usd:,.2f}." for row in costs.rows]
    if costs.break_even_volume is not None:
        lines.append(f"The cheaper side flips at about {costs.break_even_volume:,.0f} calls/month.")
    else:
        far_a, far_b = costs.baseline.monthly_usd(1e12), costs.candidate.monthly_usd(1e12)
        lines.append("Both cost the same at every volume." if far_a == far_b else
                     f"The {'candidate' if far_b < far_a else 'baseline'} is cheaper at every volume "
                     "(no break-even).")
    if not costs.rows:
        return False, lines + ["No decision.volume is set, so the cost case is not assessed."]
    return costs.rows[0].candidate_usd <= costs.rows[0].baseline_usd, lines


def _latency_case(cmp: Comparison) -> tuple[bool, list[str]]:
    a, b = cmp.a.summary, cmp.b.summary
    if None in (a.latency_p50_s, a.latency_p95_s, b.latency_p50_s, b.latency_p95_s):
        return False, []
    return b.latency_p95_s < a.latency_p95_s, [
        f"Latency p50/p95: baseline {a.latency_p50_s:.2f}/{a.latency_p95_s:.2f} s, "
        f"candidate {b.latency_p50_s:.2f}/{b.latency_p95_s:.2f} s."]


def _data_notes(cmp: Comparison) -> list[str]:
    notes = []
    for side, name in ((cmp.a.summary, "baseline"), (cmp.b.summary, "candidate")):
        if side.errors:
            notes.append(f"The {name} failed on {side.errors} example(s); they count as misses.")
    missing = len(cmp.missing_in_a) + len(cmp.missing_in_b)
    if missing:
        notes.append(f"{missing} example(s) ran on one side only and are left out of the pairing.")
    if cmp.golden_hashes_differ:
        notes.append("The runs used different golden sets (comparison forced on the shared example ids).")
    return notes


def _rules(d: Decision, conf: float) -> list[str]:
    case = ("quality alone (decision.quality_only)" if d.quality_only else
            "the candidate costs no more at the monthly volume or has a lower p95 latency")
    return [
        f"'{NO_GAP}' when the whole {conf:.0%} CI of the candidate's advantage lies below min_gap "
        f"({d.min_gap:g}).",
        f"'{JUSTIFIED}' when the whole CI lies above min_gap and {case}.",
        *([] if d.quality_only else [f"'{TRADE_OFF}' when the whole CI lies above min_gap but neither holds."]),
        "'inconclusive' otherwise, with the paired examples needed to detect min_gap at the stated power "
        "minus those compared.",
    ]


def _assumptions(cmp: Comparison, d: Decision, costs: CostProjection | None) -> list[str]:
    p = cmp.power
    out = [
        "A = baseline, B = candidate; match-rate CI by Tango's score interval for paired data, "
        f"metric-mean CIs by BCa bootstrap (seed {cmp.seed}).",
        "Errors count as misses; examples present in only one run are left out of the pairing.",
        f"Sample sizes by Connor's (1987) formula for McNemar's test at two-sided alpha {p.alpha:g} and "
        f"{p.power:.0%} power, with the observed discordance ({p.discordance:.0%}, floored at min_gap).",
        "Latency as recorded in the runs, on the machines that ran them (cached calls excluded).",
    ]
    if costs is not None:
        out += [costs.baseline.basis + ".", costs.candidate.basis + ".",
                f"A month is {HOURS_PER_MONTH} hours; volumes are calls per month."]
    return out


def _config(side: Side) -> ModelConfig:
    try:
        return config_from_dict(side.config)
    except (KeyError, TypeError, ValueError):
        return ModelConfig(spec=ModelSpec.parse(side.summary.model))


def _check_order(cmp: Comparison, d: Decision) -> list[str]:
    """Refuse swapped runs (the labels assume A is the prompted model); note runs the decision does not name."""
    runs = (str(_config(cmp.a).spec), str(_config(cmp.b).spec))
    if d.baseline and d.candidate and (d.baseline, d.candidate) == runs[::-1]:
        raise EvalsError(f"decision.baseline is {d.baseline} but it is the second run compared; "
                         "pass the baseline run first and the candidate second")
    return [f"decision.{role} names {named}, but the run compared is {run}." for role, named, run in
            (("baseline", d.baseline, runs[0]), ("candidate", d.candidate, runs[1])) if named and named != run]


def _points(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.1f}"


def _number(value: Any, where: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (positive and value == 0):
        raise EvalsError(f"expected a {'positive' if positive else 'non-negative'} number, got {value!r}",
                         field=where)
    return float(value)


def _check_keys(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in raw:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise EvalsError(f"unknown key '{key}'{hint} Allowed: {', '.join(sorted(allowed))}",
                             field=f"{where}.{key}")
