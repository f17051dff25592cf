"""The comparison report as plain sections (title, lines, a table of strings), rendered by terminal, Markdown and HTML.

Every cell and line is plain text, model output included; each renderer escapes it for its medium
(rich Text for the terminal, HTML entities for Markdown, Jinja2 autoescape for HTML), so none reads
markup from the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evals.compare import Comparison, Estimate, ExampleDiff
    from evals.verdict import Verdict

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
    def p(x: float | None) -> str:
        return "n/a" if x is None else f"{x * 100:+.1f}"

    return f"{p(e.estimate)} points ({p(e.low)} to {p(e.high)})"


def _money(x: float | None) -> str:
    return "-" if x is None else f"${x:,.4f}" if x < 1 else f"${x:,.2f}"


def truncate(text: str | None, limit: int = OUTPUT_CHARS) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit] + "..."


def runs_section(cmp: Comparison) -> Section:
    metrics = sorted({m for side in (cmp.a, cmp.b) for m in side.metrics})
    s = Section("Runs", headers=["role", "model", "run", "matches (Wilson CI)",
                                 *(f"{m} mean ({cmp.confidence:.0%} CI)" for m in metrics),
                                 "errors", "cost / 1,000 calls", "latency p50", "latency p95"])
    for role, side in (("baseline (A)", cmp.a), ("candidate (B)", cmp.b)):
        r = side.summary
        s.rows.append([role, r.model, r.run_id, r.matches_text,
                       *(_ci(side.metrics[m]) if m in side.metrics else "-" for m in metrics),
                       str(r.errors), _money(side.cost_per_1k_usd),
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
    s = Section("Paired outcomes (B - A)", headers=["both matched", "A only", "B only", "both missed"],
                rows=[[str(c.both_pass), str(c.a_only), str(c.b_only), str(c.both_fail)]])
    s.lines += [
        f"McNemar exact p = {cmp.mcnemar_p:.3g} ({c.discordant} discordant of {c.n} pairs).",
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
        s.rows.append([d.example_id,
                       truncate(f"error: {d.error_a}" if d.error_a else d.output_a), _scores(d.scores_a),
                       truncate(f"error: {d.error_b}" if d.error_b else d.output_b), _scores(d.scores_b)])
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
    lines = [f"Observed discordance {p.discordance:.0%} of {p.n_pairs} pairs.",
             (f"Detecting a {p.min_gap * 100:g}-point gap with {p.power:.0%} power (two-sided alpha {p.alpha:g}) "
              f"takes about {p.n_needed:,} paired examples.")]
    lines.append("The current examples detect gaps of about "
                 f"{p.min_detectable_gap * 100:.1f} points or more." if p.min_detectable_gap is not None
                 else "The current examples are too few to detect any gap.")
    return Section("Power", lines=lines)


def cost_section(verdict: Verdict) -> Section:
    costs = verdict.costs
    if costs is None:
        return Section("Cost at volume", lines=["Not projected: see the verdict's reasons."])
    s = Section("Cost at volume", headers=["calls / month", "baseline", "candidate"],
                rows=[[f"{r.volume:,.0f}", _money(r.baseline_usd), _money(r.candidate_usd)] for r in costs.rows])
    s.lines.append("Break-even: " + (f"about {costs.break_even_volume:,.0f} calls/month."
                                     if costs.break_even_volume is not None else "none (one side is cheaper at every volume)."))
    if not costs.rows:
        s.lines.append("No decision.volume in task.yaml, so no monthly projection.")
    return s


def verdict_section(verdict: Verdict) -> Section:
    return Section(f"Verdict: {verdict.label}",
                   bullets={"Why": verdict.reasons, "Rules": verdict.rules, "Assumptions": verdict.assumptions})


def comparison_title(cmp: Comparison) -> str:
    return f"{cmp.a.summary.model} (A) vs {cmp.b.summary.model} (B)"


def comparison_sections(cmp: Comparison, verdict: Verdict, examples: int = 10) -> list[Section]:
    return [runs_section(cmp), paired_section(cmp),
            examples_section("Improved: B matched, A did not", cmp.improved, examples),
            examples_section("Regressed: A matched, B did not", cmp.regressed, examples),
            power_section(cmp), cost_section(verdict), verdict_section(verdict)]
