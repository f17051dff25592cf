"""The decision: is the candidate (a fine-tune) worth it over the baseline (a prompted API model)?

Quality first (the paired CI of the match-rate gain against `min_gap`), then the constraints the
numbers cannot weigh (data that may not leave the team's infrastructure, latency ceilings), then cost
at the team's volume and latency (economics.py). Every reason carries its numbers; every assumption,
input and default is listed. Settings come from task.yaml's `decision:` block (decision.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from evals.analyse.compare import Comparison, json_types
from evals.analyse.economics import (
    CostProjection,
    Latency,
    is_self_hosted,
    managed_mode,
    SideFigures,
    profile_latency,
    project_costs,
    run_latency,
    side_figures,
    side_config,
)
from evals.analyse.rates import format_points
from evals.analyse.stats import mcnemar_sample_size
from evals.errors import EvalsError
from evals.run.hardware import on_cpu
from evals.settings import validated
from evals.types import HOURS_PER_MONTH, Decision

if TYPE_CHECKING:
    from evals.run.store import LatencyProfile

NO_GAP = "no real quality gap: ship the prompted model"
JUSTIFIED = "fine-tuning is justified"
TRADE_OFF = "the fine-tune is better but neither cheaper nor faster: a trade-off for the team to weigh"
# The same three when the candidate is not a fine-tune (a bigger model, another provider, another prompt)
NO_GAP_OTHER = "no real quality gap: keep the baseline"
JUSTIFIED_OTHER = "the candidate is worth the switch"
TRADE_OFF_OTHER = "the candidate is better but neither cheaper nor faster: a trade-off for the team to weigh"
INCONCLUSIVE = "inconclusive: about {n} more golden examples needed"
ONLY = "only the {role} qualifies: {model}"
NEITHER = "neither side qualifies under the decision's constraints"
ROLES = ("baseline", "candidate")


@dataclass(frozen=True)
class Verdict:
    """The call, its one-line reason, why (plain words, with the numbers), the rules and the assumptions."""

    label: str
    reasons: list[str]
    assumptions: list[str]
    rules: list[str] = field(default_factory=list)
    more_examples: int | None = None  # when inconclusive
    costs: CostProjection | None = None
    headline: str = ""  # the one-line reason
    latency: dict[str, Latency] = field(default_factory=dict)  # role -> what its latency figures rest on
    excluded: dict[str, str] = field(default_factory=dict)  # role -> why it does not qualify
    decided_on: str = ""  # ISO date
    revisit_on: str = ""  # ISO date: prices and models move
    sides: dict[str, SideFigures] = field(default_factory=dict)  # role -> every figure the reports show for it
    curve: str | None = None  # the learning curve (curve.json) whose answer the reasons quote

    def render(self) -> str:
        parts = [f"Verdict: {self.label}", *([self.headline] if self.headline else []), "",
                 "Why:", *(f"  - {r}" for r in self.reasons),
                 "", "Rules:", *(f"  - {r}" for r in self.rules),
                 "", "Assumptions:", *(f"  - {a}" for a in self.assumptions)]
        return "\n".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return json_types(asdict(self))


def quality_call(low: float, high: float, min_gap: float) -> str:
    """Where the CI of the candidate's advantage lies relative to min_gap: below, above or straddles."""
    return "below" if high < min_gap else "above" if low > min_gap else "straddles"


def decide(cmp: Comparison, decision: Mapping[str, Any] | Decision | None = None, *,
           profiles: Mapping[str, LatencyProfile | None] | None = None, today: date | None = None) -> Verdict:
    """The verdict on baseline A versus candidate B of `cmp`, under task.yaml's `decision:` settings.
    `profiles` (role -> the newest `evals latency` profile of its model) take precedence over the runs'
    own latency and throughput. Refuses (EvalsError) when a side's provider errors exceed max_error_rate."""
    d = decision if isinstance(decision, Decision) else validated(
        Decision, {"min_gap": cmp.min_gap, **(decision or {})}, "decision")
    check_error_rates(cmp, d)
    order_notes = _check_order(cmp, d)
    a, b, c, diff = cmp.a.summary, cmp.b.summary, cmp.counts, cmp.match_diff
    gap, conf = d.min_gap, cmp.confidence
    reasons = [
        f"Matches: baseline {a.model} {a.matches_text}; candidate {b.model} {b.matches_text}.",
        (f"On the {c.n} examples both ran, the candidate passed more of its attempts than the baseline on "
         f"{c.b_only} and fewer on {c.a_only} ({c.both_pass + c.both_fail} the same); {cmp.test} p = "
         f"{cmp.mcnemar_p:.3g}." if cmp.power.repeats else
         f"On the {c.n} examples both ran, the candidate matched {c.b_only} that the baseline missed and "
         f"missed {c.a_only} that the baseline matched ({c.both_pass} both matched, {c.both_fail} both missed); "
         f"{cmp.test} p = {cmp.mcnemar_p:.3g}."),
        f"The candidate's advantage in match rate is {format_points(diff.estimate)} points, {conf:.0%} CI "
        f"{format_points(diff.low)} to {format_points(diff.high)}; the minimum gap worth acting on is {gap * 100:g} points.",
    ]
    interval = f"{format_points(diff.estimate)} points ({conf:.0%} CI {format_points(diff.low)} to {format_points(diff.high)})"
    call, more = quality_call(diff.low, diff.high, gap), None
    if call == "below":
        reasons.append(f"The whole interval lies below {gap * 100:g} points" + (
            " and below zero: the candidate is worse." if diff.high < 0 else ": any real gain is too small to act on."))
        headline = f"The candidate's advantage, {interval}, lies below the {gap * 100:g}-point minimum."
    elif call == "above":
        reasons.append(f"The whole interval lies above {gap * 100:g} points: the quality gain is real.")
        headline = f"The candidate's advantage, {interval}, lies above the {gap * 100:g}-point minimum"
    else:
        more, lines = _more_examples(cmp, gap)
        reasons += lines
        headline = (f"The candidate's advantage, {interval}, straddles the {gap * 100:g}-point minimum; about "
                    f"{more:,} more paired examples settle it.")

    roles = by_role(cmp)
    latency, profile_notes = {}, []
    for role, side in roles.items():
        profile = (profiles or {}).get(role)
        if profile is None:
            latency[role] = run_latency(side)
        else:
            latency[role], note = profile_latency(profile, d)
            profile_notes.append(note)
    excluded, constraint_lines = _constraints(roles, latency, d)
    costs, cost_notes = project_costs(cmp, d, (latency["baseline"], latency["candidate"]))
    cost_ok, cost_lines = _cost_case(costs, cost_notes)
    latency_ok, latency_lines = _latency_case(latency)
    reasons += cost_lines + latency_lines + profile_notes + constraint_lines
    labels = _labels(cmp, d)
    no_gap, justified, trade_off = labels

    if excluded:
        ok = [r for r in ROLES if r not in excluded]
        label = ONLY.format(role=ok[0], model=roles[ok[0]].summary.model) if ok else NEITHER
        headline = "; ".join(f"The {r} does not qualify: {why}" for r, why in excluded.items()) + "."
    elif call == "below":
        label = no_gap
    elif call == "straddles":
        label = INCONCLUSIVE.format(n=f"{more:,}")
    elif d.quality_only:
        label = justified
        reasons.append("decision.quality_only is set, so cost and latency are not weighed.")
        headline += " (quality alone is weighed)."
    elif cost_ok or latency_ok:
        label = justified
        held = [w for w, ok in (("cost at this volume", cost_ok), ("latency (p95)", latency_ok)) if ok]
        reasons.append("The candidate also wins on " + " and ".join(held) + ".")
        headline += ", and it also wins on " + " and ".join(held) + "."
    else:
        label = trade_off
        reasons.append("But the candidate is neither cheaper at this volume nor faster (p95), "
                       "so whether the gain is worth its price is the team's call.")
        headline += ", but it is neither cheaper at this volume nor faster (p95)."
    reasons += _data_notes(cmp) + order_notes
    today = today or date.today()
    revisit = today + timedelta(days=round(d.revisit_months * 365.25 / 12))
    reasons.append(f"Decided on {today.isoformat()}; revisit by {revisit.isoformat()} "
                   f"(decision.revisit_months {d.revisit_months:g}): prices and models move.")
    sides = {role: side_figures(role, side, getattr(costs, role) if costs else None, latency[role], d.volume)
             for role, side in roles.items()}
    return Verdict(label, reasons, _assumptions(cmp, d, costs, latency), _rules(d, conf, labels), more, costs,
                   headline, latency, excluded, today.isoformat(), revisit.isoformat(), sides)


def by_role(cmp: Comparison) -> dict[str, Any]:
    """{"baseline": run A's side, "candidate": run B's side}."""
    return dict(zip(ROLES, (cmp.a, cmp.b)))


def check_error_rates(cmp: Comparison, d: Decision) -> None:
    """Refuse a comparison in which a side's provider failed too often: its errors would count as misses."""
    for role, side in by_role(cmp).items():
        s = side.summary
        rate = s.errors / s.n if s.n else 0.0
        if rate > d.max_error_rate:
            raise EvalsError(
                f"the {role} run {s.run_id} ({s.model}) failed on {s.errors} of {s.n} examples ({rate:.0%}), above "
                f"decision.max_error_rate {d.max_error_rate:.0%}: provider errors would count as wrong answers and "
                f"bias the comparison. Retry them with `evals run --resume {s.run_id}` (`evals decide` retries them "
                "itself), or raise decision.max_error_rate")


def _constraints(roles: Mapping[str, Any], latency: Mapping[str, Latency], d: Decision
                 ) -> tuple[dict[str, str], list[str]]:
    """Sides excluded by the decision's constraints (role -> why), and lines on ceilings that went unchecked."""
    excluded, notes = {}, []
    for role, side in roles.items():
        why = []
        config = side_config(side)
        managed = managed_mode(config, d.managed) is not None
        if d.in_house_only and (managed or not is_self_hosted(config, d.self_hosted)):
            why.append("data may not leave the team's infrastructure (decision.in_house_only"
                       + (f": {d.in_house_reason})" if d.in_house_reason else ")") + f" and {side.summary.model} "
                       + ("is served by a managed host" if managed else "is an API model"))
        lat = latency[role]
        for value, ceiling, name, key in ((lat.p95_s, d.max_p95_s, "p95 latency", "max_p95_s"),
                                          (lat.ttft_p95_s, d.max_ttft_p95_s, "p95 time to first token",
                                           "max_ttft_p95_s")):
            if ceiling is None:
                continue
            if value is None:
                notes.append(f"The {role}'s {name} was not measured ({lat.source}), so decision.{key} "
                             f"({ceiling:g} s) is unchecked for it: stream the run (`stream: true`) or measure it "
                             "with `evals latency`.")
            elif value > ceiling:
                why.append(f"its {name} {value:.2f} s is above decision.{key} {ceiling:g} s, measured {lat.where}")
        if why:
            excluded[role] = "; ".join(why)
    return excluded, notes


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
        tokens = (f" (about {costs.break_even_tokens_per_day:,.0f} tokens/day)"
                  if costs.break_even_tokens_per_day is not None else "")
        lines.append(f"The cheaper side flips at about {costs.break_even_volume:,.0f} calls/month{tokens} "
                     f"({costs.modes}).")
    else:
        far_a, far_b = costs.baseline.monthly_usd(1e12), costs.candidate.monthly_usd(1e12)
        lines.append("Both cost the same at every volume." if far_a == far_b else
                     f"The {'candidate' if far_b < far_a else 'baseline'} is cheaper at every volume "
                     f"(no break-even; {costs.modes}).")
    if not costs.rows:
        return False, lines + ["No decision.volume is set, so the cost case is not assessed."]
    return costs.rows[0].candidate_usd <= costs.rows[0].baseline_usd, lines


def _latency_case(latency: Mapping[str, Latency]) -> tuple[bool, list[str]]:
    a, b = latency["baseline"], latency["candidate"]
    lines = [f"Latency per request, {role}: {_latency_text(lat)}, measured {lat.where}."
             for role, lat in latency.items() if lat.p50_s is not None]
    if None in (a.p95_s, b.p95_s):
        return False, lines
    return b.p95_s < a.p95_s, lines


def _latency_text(lat: Latency) -> str:
    text = f"p50/p95 {lat.p50_s:.2f}/{lat.p95_s:.2f} s"
    if lat.ttft_p50_s is not None:
        text += f", time to first token p50/p95 {lat.ttft_p50_s:.2f}/{lat.ttft_p95_s:.2f} s"
    if lat.tokens_per_s is not None:
        text += f", {lat.tokens_per_s:,.0f} output tokens/s"
    return text


def _data_notes(cmp: Comparison) -> list[str]:
    notes = [f"The {name} failed on {side.errors} example(s); they count as misses."
             for side, name in ((cmp.a.summary, "baseline"), (cmp.b.summary, "candidate")) if side.errors]
    return notes + pairing_notes(cmp)


def pairing_notes(cmp: Comparison) -> list[str]:
    """What the pairing of two runs left out: examples on one side only, and a forced pairing."""
    notes = []
    missing = len(cmp.missing_in_a) + len(cmp.missing_in_b)
    if missing:
        notes.append(f"{missing} example(s) ran on one side only and are left out of the pairing.")
    if cmp.golden_hashes_differ:
        notes.append("The runs used different golden sets (comparison forced on the shared example ids).")
    return notes


def _labels(cmp: Comparison, d: Decision) -> tuple[str, str, str]:
    """(no gap, justified, trade-off) in the words that fit the candidate: a fine-tune's or any other's."""
    from evals.analyse.provenance import is_finetune

    if is_finetune({"model": cmp.b.config, "finetuned": cmp.b.finetuned}, d):
        return NO_GAP, JUSTIFIED, TRADE_OFF
    return NO_GAP_OTHER, JUSTIFIED_OTHER, TRADE_OFF_OTHER


def _rules(d: Decision, conf: float, labels: tuple[str, str, str]) -> list[str]:
    no_gap, justified, trade_off = labels
    case = ("quality alone (decision.quality_only)" if d.quality_only else
            "the candidate costs no more at the monthly volume or has a lower p95 latency")
    return [
        "A side excluded by a constraint (decision.in_house_only, max_p95_s, max_ttft_p95_s) does not qualify; "
        f"'{ONLY.format(role='<role>', model='<model>')}' when one side is left, '{NEITHER}' when none is.",
        f"'{no_gap}' when the whole {conf:.0%} CI of the candidate's advantage lies below min_gap "
        f"({d.min_gap:g}).",
        f"'{justified}' when the whole CI lies above min_gap and {case}.",
        *([] if d.quality_only else [f"'{trade_off}' when the whole CI lies above min_gap but neither holds."]),
        "'inconclusive' otherwise, with the paired examples needed to detect min_gap at the stated power "
        "minus those compared.",
        f"No verdict when a side's provider failed on more than decision.max_error_rate ({d.max_error_rate:.0%}) "
        "of the examples.",
    ]


def _assumptions(cmp: Comparison, d: Decision, costs: CostProjection | None,
                 latency: Mapping[str, Latency]) -> list[str]:
    p = cmp.power
    out = [
        "A = baseline, B = candidate; match-rate CI by Tango's score interval for paired data, "
        f"metric-mean CIs by BCa bootstrap (seed {cmp.seed}).",
        "Errors count as misses; examples present in only one run are left out of the pairing.",
        f"Sample sizes by Connor's (1987) formula for McNemar's test at two-sided alpha {p.alpha:g} and "
        f"{p.power:.0%} power, with the observed discordance ({p.discordance:.0%}, floored at min_gap).",
        "Latency is one request's service time (sent, or its local batch started, to the last token; queue "
        "waits and cached answers excluded); time to first token only where the answer was streamed.",
    ]
    if costs is not None:
        out += [costs.baseline.basis + ".", costs.candidate.basis + ".",
                f"A month is {HOURS_PER_MONTH} hours; volumes are calls per month."]
        if costs.break_even_tokens_per_day is not None:
            out.append("Break-even in tokens/day uses the API side's mean tokens per call.")
    hosted = {role: side for role, side in by_role(cmp).items()
              if is_self_hosted(side_config(side), d.self_hosted)}
    if d.self_hosted is not None and hosted:
        given = d.self_hosted.model_fields_set
        out.append("Self-hosting inputs: " + "; ".join(
            f"{name} {getattr(d.self_hosted, name)!r} ({'given' if name in given else 'default'})"
            for name in type(d.self_hosted).model_fields if name not in ("models", "trained", "hardware")) + ".")
        for role in hosted:
            lat = latency[role]
            if d.self_hosted.calls_per_hour is None and lat.calls_per_hour and on_cpu(lat.hardware):
                out.append(f"The {role}'s throughput was measured on {lat.hardware}, not on the GPU production would "
                           "use: its cost is likely an overestimate; measure the serving hardware with `evals "
                           "latency` (or set decision.self_hosted.calls_per_hour).")
    dedicated = [role for role, side in by_role(cmp).items()
                 if managed_mode(side_config(side), d.managed) == "dedicated"]
    if d.managed is not None and dedicated:
        given = d.managed.model_fields_set
        out.append("Managed-hosting inputs (dedicated endpoint): " + "; ".join(
            f"{name} {getattr(d.managed, name)!r} ({'given' if name in given else 'default'})"
            for name in type(d.managed).model_fields if name not in ("models", "dedicated", "hardware")) + ".")
    return out


def _check_order(cmp: Comparison, d: Decision) -> list[str]:
    """Refuse swapped runs (the labels assume A is the prompted model); note runs the decision does not name."""
    runs = (str(side_config(cmp.a).spec), str(side_config(cmp.b).spec))
    if d.baseline and runs[1] == d.baseline and runs[0] in d.candidates:
        raise EvalsError(f"decision.baseline is {d.baseline} but it is the second run compared; "
                         "pass the baseline run first and the candidate second")
    named = (("baseline", d.baseline, runs[0], (d.baseline,)), ("candidate", " or ".join(d.candidates), runs[1],
                                                                 d.candidates))
    return [f"decision.{role} names {text}, but the run compared is {run}." for role, text, run, specs in named
            if text and run not in specs]
