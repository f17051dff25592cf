"""The comparison report as plain sections (title, lines, a table of strings), rendered by terminal, Markdown and HTML.

Every cell and line is plain text, model output included; each renderer escapes it for its medium
(rich Text for the terminal, HTML entities for Markdown, Jinja2 autoescape for HTML), so none reads
markup from the data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evals.analyse.rates import format_points
from evals.types import CHECK_PREFIX, CHECKS

if TYPE_CHECKING:
    from evals.analyse.compare import Comparison, Estimate, ExampleDiff
    from evals.analyse.paths import PathChoice
    from evals.analyse.summary import RunSummary
    from evals.analyse.verdict import Verdict

OUTPUT_CHARS = 200  # model output shown per example


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    bullets: dict[str, list[str]] = field(default_factory=dict)  # sub-heading -> items


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def _ci(e: Estimate, fmt: str = ".2f") -> str:
    return f"{_num(e.estimate, fmt)} ({_num(e.low, fmt)} to {_num(e.high, fmt)})"


def _points(e: Estimate) -> str:
    return f"{format_points(e.estimate)} points ({format_points(e.low)} to {format_points(e.high)})"


def _money(x: float | None) -> str:
    return "-" if x is None else f"${x:,.4f}" if 0 < x < 1 else f"${x:,.2f}"


def truncate(text: str | None, limit: int = OUTPUT_CHARS) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit] + "..."


def headline_metrics(metric_ids: Iterable[str]) -> list[str]:
    """The metrics shown as columns. An example's own checks show as `checks`, the weighted share passed;
    each single check is listed per example (`evals show`, the viewer, --json)."""
    return sorted(m for m in set(metric_ids) if not m.startswith(CHECK_PREFIX))


def failed_because(scores: Mapping[str, Mapping[str, Any]], limit: int = 300) -> str:
    """Why an example missed: the explanations of its scores below 1 (its failed checks, through `checks`)."""
    reasons = [f"{m}: {s.get('error') or s.get('explanation')}" for m, s in scores.items()
               if (s.get("value") is None or s["value"] < 1) and (s.get("error") or s.get("explanation"))
               and not (m.startswith(CHECK_PREFIX) and CHECKS in scores)]
    return truncate("; ".join(reasons), limit)


def summary_section(summaries: Sequence[RunSummary], title: str = "Summary") -> Section:
    """Runs' summaries in the columns of `evals show` and `evals run` (judge tokens and cost on their own line)."""
    metric_ids = headline_metrics(m for s in summaries for m in s.metrics)
    sec = Section(title, headers=["model", "run", "matches", *metric_ids, "errors", "tokens in/out", "cost", "p50",
                                  "p95", "TTFT p50", "calls/h"])
    for s in summaries:
        status = "" if s.status == "completed" else f" ({s.status}, {s.done}/{s.n * s.repeats})"
        errors = str(s.errors) + "".join(f"\n{m}: {k}" for m, k in s.metric_errors.items())
        tokens, cost = f"{s.input_tokens:,}/{s.output_tokens:,}", f"${s.cost_usd:.4f}" + (" batch" if s.batched else "")
        if s.judge_calls:
            tokens += f"\n+ judge {s.judge_input_tokens:,}/{s.judge_output_tokens:,}"
            cost += f"\n+ judge ${s.judge_cost_usd:.4f}"
        sec.rows.append([s.model, s.run_id, s.matches_text + status, *(_num(s.metrics.get(m)) for m in metric_ids),
                         errors, tokens, cost, seconds(s.latency_p50_s), seconds(s.latency_p95_s),
                         seconds(s.ttft_p50_s), "-" if s.calls_per_hour is None else f"{s.calls_per_hour:,.0f}"])
    return sec


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def runs_section(cmp: Comparison) -> Section:
    metrics = headline_metrics(m for side in (cmp.a, cmp.b) for m in side.metrics)
    s = Section("Runs", headers=["role", "model", "run", "matches (Wilson CI)",
                                 *(f"{m} mean ({cmp.confidence:.0%} CI)" for m in metrics),
                                 "errors", "latency p50", "latency p95"])
    for role, side in (("baseline (A)", cmp.a), ("candidate (B)", cmp.b)):
        r = side.summary
        s.rows.append([role, r.model, r.run_id, r.matches_text,
                       *(_ci(side.metrics[m]) if m in side.metrics else "-" for m in metrics),
                       str(r.errors),
                       "-" if r.latency_p50_s is None else f"{r.latency_p50_s:.2f}s",
                       "-" if r.latency_p95_s is None else f"{r.latency_p95_s:.2f}s"])
    s.lines.append(f"Golden set {str(cmp.a.golden_hash)[:12]}; {cmp.n_pairs} examples paired by id.")
    if cmp.golden_hashes_differ:
        s.lines.append(f"Forced: run B used golden set {str(cmp.b.golden_hash)[:12]}; only shared ids are compared.")
    for ids, where in ((cmp.missing_in_b, "only in run A (missing from B)"), (cmp.missing_in_a, "only in run B (missing from A)")):
        if ids:
            s.lines.append(f"{len(ids)} example(s) {where}: {', '.join(ids[:20])}" + (" ..." if len(ids) > 20 else ""))
    return s


def paired_section(cmp: Comparison) -> Section:
    c = cmp.counts
    repeated = cmp.power.repeats is not None
    headers = (["same, mostly matched", "A passed more attempts", "B passed more attempts", "same, mostly missed"]
               if repeated else ["both matched", "A only", "B only", "both missed"])
    s = Section("Paired outcomes (B - A)", headers=headers,
                rows=[[str(c.both_pass), str(c.a_only), str(c.b_only), str(c.both_fail)]])
    s.lines += [
        f"{cmp.test} p = {cmp.mcnemar_p:.3g} ({c.discordant} " + (f"of {c.n} examples differ)." if repeated
                                                                 else f"discordant of {c.n} pairs)."),
        f"Match-rate difference B - A: {_points(cmp.match_diff)}, {cmp.confidence:.0%} CI by {cmp.match_diff.method}.",
    ]
    for metric, e in cmp.metric_diffs.items():
        s.lines.append(f"{metric} mean difference B - A: {_ci(e, '+.3f')}, {cmp.confidence:.0%} CI by {e.method} "
                       f"over {e.n} pairs (seed {cmp.seed}).")
    return s


EXAMPLE_HEADERS = ("baseline (A) output", "A scores", "candidate (B) output", "B scores")


def examples_section(title: str, diffs: tuple[ExampleDiff, ...], limit: int,
                     headers: tuple[str, str, str, str] = EXAMPLE_HEADERS) -> Section:
    s = Section(f"{title} ({len(diffs)})", headers=["example", *headers])
    for d in diffs[:limit]:
        passed = [] if d.pass_a is None else [f"passed {d.pass_a:.0%} of attempts", f"passed {d.pass_b:.0%} of attempts"]
        s.rows.append([d.example_id,
                       truncate(f"error: {d.error_a}" if d.error_a else d.output_a),
                       "; ".join([*passed[:1], _scores(d.scores_a)]),
                       truncate(f"error: {d.error_b}" if d.error_b else d.output_b),
                       "; ".join([*passed[1:], _scores(d.scores_b)])])
    if diffs and diffs[0].pass_a is not None:
        s.lines.append("With repeats: the first attempt's answers, and each side's share of passing attempts.")
    if len(diffs) > limit:
        s.lines.append(f"{len(diffs) - limit} more not shown (see --json).")
    if not diffs:
        s.headers.clear()  # no empty table, just the word
        s.lines.append("None.")
    return s


def _scores(scores: dict[str, float | None]) -> str:
    return ", ".join(f"{m}={_num(v)}" for m, v in scores.items())


def power_section(cmp: Comparison) -> Section:
    p = cmp.power
    lines = [f"Observed discordance {p.discordance:.0%} of {cmp.n_pairs} pairs.",
             (f"Detecting a {p.min_gap * 100:g}-point gap with {p.power:.0%} power (two-sided alpha {p.alpha:g}) "
              f"takes about {p.n_needed:,} paired examples.")]
    lines.append("The current examples detect gaps of about "
                 f"{p.min_detectable_gap * 100:.1f} points or more." if p.min_detectable_gap is not None
                 else "The current examples are too few to detect any gap.")
    if (r := p.repeats) is not None:
        lines.append(f"With {r.k} attempts per example, {r.within_share:.0%} of the per-example variance of B - A is "
                     f"attempt-to-attempt noise: {r.n_one_attempt:,} examples would be needed at 1 attempt, "
                     f"{r.n_needed:,} at {r.k}, and no number of attempts brings it below {r.n_unlimited:,} (the "
                     "spread between examples). More examples help; more attempts only shrink the noise.")
    return Section("Power", lines=lines)


def cost_section(verdict: Verdict) -> Section:
    costs = verdict.costs
    if costs is None:
        return Section("Cost at volume", lines=["Not projected: see the verdict's reasons."])
    s = Section("Cost at volume", headers=["calls / month", "baseline", "candidate"],
                rows=[[f"{r.volume:,.0f}", _money(r.baseline_usd), _money(r.candidate_usd)] for r in costs.rows])
    if costs.break_even_volume is None:
        s.lines.append(f"Break-even: none (one side is cheaper at every volume; {costs.modes}).")
    else:
        tokens = (f", about {costs.break_even_tokens_per_day:,.0f} tokens/day"
                  if costs.break_even_tokens_per_day is not None else "")
        s.lines.append(f"Break-even: about {costs.break_even_volume:,.0f} calls/month{tokens} ({costs.modes}).")
    if not costs.rows:
        s.lines.append("No decision.volume in task.yaml, so no monthly projection.")
    return s


def verdict_section(verdict: Verdict) -> Section:
    """The answer first: the call, its one-line reason and its date."""
    lines = [verdict.headline] if verdict.headline else []
    if verdict.decided_on:
        lines.append(f"Decided on {verdict.decided_on}; revisit by {verdict.revisit_on}.")
    return Section(f"Verdict: {verdict.label}", lines=lines)


ROLE_LABELS = {"baseline": "baseline (A)", "candidate": "candidate (B)"}


def economics_sections(verdict: Verdict) -> list[Section]:
    """What each side costs and how fast it answers, at a glance: every figure from the verdict's one computation
    of it (`Verdict.sides`), each throughput with where it came from, each latency with where it was measured."""
    sides = verdict.sides.values()
    volume = next((f.volume for f in sides if f.volume), None)
    at = f" at {volume:,.0f} calls" if volume else ""
    cost = Section("Cost", headers=[
        "role", "model", "hosting", "marginal cost / call", "fixed / month", "GPU minimum / month",
        f"monthly{at}", f"all told / call{at}", "calls/hour", "calls/hour from"])
    speed = Section("Latency", headers=["role", "model", "latency p50 / p95", "time to first token p50 / p95",
                                        "output tokens/s", "measured"])
    for f in sides:
        role, lat = ROLE_LABELS[f.role], f.latency
        hosting = f.hosting + (" (excluded)" if f.role in verdict.excluded else "")
        cost.rows.append([role, f.model, hosting, _usd6(f.marginal_per_call_usd), _money(f.fixed_monthly_usd),
                          _money(f.gpu_minimum_monthly_usd), _money(f.monthly_usd), _usd6(f.per_call_at_volume_usd),
                          "-" if not f.calls_per_hour else f"{f.calls_per_hour:,.0f}", f.calls_per_hour_from])
        speed.rows.append([role, f.model, p50_p95(lat.p50_s, lat.p95_s), p50_p95(lat.ttft_p50_s, lat.ttft_p95_s),
                           "-" if lat.tokens_per_s is None else f"{lat.tokens_per_s:,.0f}", f.latency_from])
    for key, why in verdict.excluded.items():
        cost.lines.append(f"The {key} does not qualify: {why}.")
    if verdict.costs is None:
        cost.lines.append("Cost not projected: see the reasons below.")
    cost.lines.append("Monthly = fixed + the larger of marginal cost x calls and the GPU minimum (self-hosted: GPU "
                      "time at the throughput shown, idle hours paid too); every price, measurement and default is "
                      "listed under Assumptions.")
    return [cost, speed]


def _usd6(x: float | None) -> str:
    return "-" if x is None else f"${x:.6f}"


def details_section(verdict: Verdict) -> Section:
    return Section("How the verdict was reached", bullets={"Why": verdict.reasons, "Rules": verdict.rules,
                                                           "Assumptions": verdict.assumptions})


def p50_p95(p50: float | None, p95: float | None) -> str:
    """Two latencies as one cell: '0.91/1.09s', or '-' when not measured."""
    return "-" if p50 is None else f"{p50:.2f}/{p95:.2f}s"


def comparison_title(cmp: Comparison) -> str:
    return f"{cmp.a.summary.model} (A) vs {cmp.b.summary.model} (B)"


def comparison_sections(cmp: Comparison, verdict: Verdict, examples: int = 10) -> list[Section]:
    """The answer first (verdict, cost and latency), then the evidence, then the reasoning in full."""
    return [verdict_section(verdict), *economics_sections(verdict), runs_section(cmp), paired_section(cmp),
            examples_section("Improved: B matched, A did not", cmp.improved, examples),
            examples_section("Regressed: A matched, B did not", cmp.regressed, examples),
            power_section(cmp), cost_section(verdict), details_section(verdict)]


def paths_sections(choice: PathChoice, pairs: Sequence[tuple[str, Comparison, Verdict]],
                   examples: int = 10) -> list[Section]:
    """Several candidates against one baseline: the choice, every option in one cost table, then each pair's
    own report (its sections titled by the candidate)."""
    volume = f"monthly at {choice.volume:,.0f} calls" if choice.volume else "monthly"
    table = Section("Paths side by side", headers=[
        "role", "model", "hosting", "matches", "gain over baseline, points (CI)", "verdict against the baseline",
        "marginal cost / call", "fixed / month (training, operations)", "GPU minimum / month", volume,
        "latency p50 / p95"])
    for r in choice.rows:
        table.rows.append([r.role, r.model, r.hosting + (" (excluded)" if r.excluded else ""), r.matches, r.gain,
                           r.call, _usd6(r.per_call_usd), _money(r.training_monthly_usd),
                           _money(r.gpu_minimum_monthly_usd), _money(r.monthly_usd), r.latency])
    table.lines.append("Each candidate is paired with the baseline on the same examples; each figure is derived "
                       "as its pair's report below states (every price, measurement and default under Assumptions).")
    lines = [choice.headline, *choice.reasons]
    if choice.decided_on:
        lines.append(f"Decided on {choice.decided_on}; revisit by {choice.revisit_on}.")
    out = [Section(f"Verdict: {choice.label}", lines=lines), table]
    for role, cmp, verdict in pairs:
        for s in comparison_sections(cmp, verdict, examples):
            s.title = f"{role} {cmp.b.summary.model}: {s.title}"
            out.append(s)
    return out
