"""A check and the history of checks as report sections (terminal, HTML), and the trend figure.

The trend plots each check's match rate with its Wilson interval, coloured by status, against the
baseline's match rate (a step line with its interval as a band: the baseline each check compared
with); a second panel shows the key metric means with their bootstrap intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evals._util import write_atomic
from evals.report.html import Figure, render_html
from evals.report.sections import Section, examples_section

if TYPE_CHECKING:
    from evals.analyse.compare import Estimate
    from evals.gate.check import CheckOutcome
    from evals.run.store import CheckRecord

STATUS_COLORS = {"pass": "#55a868", "warn": "#dd8452", "fail": "#c44e52", "error": "#8c8c8c"}
CHECK_HEADERS = ("baseline output", "baseline scores", "this run's output", "this run's scores")
HISTORY_SECTION = "History"


def _ci(e: Estimate | dict[str, Any] | None, fmt: str = ".2f") -> str:
    if e is None:
        return "-"
    est, low, high = (e.get(k) for k in ("estimate", "low", "high")) if isinstance(e, dict) else (e.estimate, e.low,
                                                                                                      e.high)
    if est is None:
        return "-"
    return f"{est:{fmt}}" + ("" if low is None or high is None else f" ({low:{fmt}} to {high:{fmt}})")


def _rate(e: Estimate | dict[str, Any]) -> str:
    est, low, high, n = (e.get(k) for k in ("estimate", "low", "high", "n")) if isinstance(e, dict) else (
        e.estimate, e.low, e.high, e.n)
    if est is None or not n:
        return "-"
    return f"{round(est * n)}/{n} ({est:.0%}, 95% CI {low * 100:.0f}-{high * 100:.0f}%)"


def check_title(outcome: CheckOutcome) -> str:
    return f"Check {outcome.status.upper()}: {outcome.task} on {outcome.model}"


def check_sections(outcome: CheckOutcome, examples: int = 10) -> list[Section]:
    o, s = outcome, outcome.settings
    head = Section(f"Result: {o.status.upper()} - {o.headline}", lines=[
        (f"Task {o.task}, model {o.model}: run {o.run_id} against "
         f"{o.baseline_source or 'baseline ' + o.baseline_run_id}; exit code {o.exit_code}."), *o.notes])
    gates = Section("Gates", headers=["gate", "status", "detail"],
                    rows=[[g.name, g.status.upper(), g.message] for g in o.gates])
    metric_ids = sorted(set(o.metrics) | set(o.baseline_metrics))
    runs = Section("Runs", headers=["role", "run", "matches (95% Wilson CI)",
                                    *(f"{m} mean ({s.confidence:.0%} CI)" for m in metric_ids), "model version"])
    for role, run, rate, metrics, versions in (
            ("baseline", o.baseline_run_id, o.baseline, o.baseline_metrics, o.drift.baseline),
            ("this run", o.run_id, o.current, o.metrics, o.drift.current)):
        runs.rows.append([role, run, _rate(rate), *(_ci(metrics.get(m)) for m in metric_ids),
                          ", ".join(versions) or "-"])
    regressed = examples_section("Regressed: matched in the baseline, not now", o.regressed, examples, CHECK_HEADERS)
    improved = Section(f"Improved: matched now, not in the baseline ({len(o.improved)})",
                       lines=[", ".join(d.example_id for d in o.improved) or "None."])
    if o.flaky or o.noise_floor is not None:
        improved.lines.append(
            (f"Flaky, not counted as regressions ({len(o.flaky)}): {', '.join(d.example_id for d in o.flaky)}; they "
             "passed only some of the baseline's attempts. " if o.flaky else "")
            + (f"Noise floor: two runs of the baseline's model differ by up to {o.noise_floor * 100:.1f} points "
               f"({o.settings.confidence:.0%}) by chance alone." if o.noise_floor is not None else ""))
    changes = Section("Changes since the baseline", lines=[
        *([g.message[0].upper() + g.message[1:] + "." for g in o.gates
           if g.name == "provider model version" and o.drift.changed]),
        *(c[0].upper() + c[1:] + "." for c in o.changes)] or ["None recorded."])
    rules = Section("Rules", bullets={"Gates": [
        (f"match rate: FAIL when it dropped by more than the margin ({s.margin:g}) and McNemar's exact paired test "
         f"finds the drop (two-sided p < {s.alpha:g}); WARN when it dropped past the margin without significance, "
         f"with the paired examples that would settle it at {s.power:.0%} power (Connor 1987); errors count as "
         "misses."),
        *(f"floor {m}: FAIL below {v:g} ({'the match rate' if m == 'match_rate' else 'mean over answered examples'})."
          for m, v in s.floors.items()),
        f"provider model version: {s.drift.upper()} when the version the API reports differs from the baseline's.",
        (f"provider errors: ERROR (exit 2, no verdict) when more than {s.max_error_rate:.0%} of examples failed "
         "after retries."),
        "Exit code 0 for PASS and WARN, 1 for FAIL, 2 for ERROR."]})
    return [head, gates, runs, regressed, improved, changes, rules]


# ---- history ---------------------------------------------------------------------------------------


def history_section(records: Sequence[CheckRecord]) -> Section:
    metric_ids = sorted({m for r in records for m in (r.outcome.get("point") or {}).get("metrics", {})})
    s = Section(HISTORY_SECTION, headers=["check", "when", "model", "run", "status", "matches (95% Wilson CI)",
                                          *(f"{m} (95% CI)" for m in metric_ids), "model version", "baseline"])
    for r in records:
        p = r.outcome.get("point") or {}
        s.rows.append([str(r.id), r.created_at[:16].replace("T", " "), r.model, r.run_id or "-", r.status.upper(),
                       _rate(p["current"]) if p.get("current") else "-",
                       *(_ci((p.get("metrics") or {}).get(m)) for m in metric_ids),
                       ", ".join(p.get("model_versions") or []) + (" (changed)" if p.get("drift") else "") or "-",
                       f"{r.baseline_run_id} " + (_rate(p["baseline"]) if p.get("baseline") else "")])
    if not records:
        s.headers.clear()
        s.lines.append("No checks recorded yet.")
    return s


def trend_figure(records: Sequence[CheckRecord], title: str = "Match rate over time") -> Figure:
    points = [(r, r.outcome.get("point") or {}) for r in records]
    points = [(r, p) for r, p in points if (p.get("current") or {}).get("estimate") is not None]
    if not points:
        return Figure(title, HISTORY_SECTION, note="Not drawn: no check with a match rate yet.")
    try:
        from matplotlib.figure import Figure as MplFigure
    except ImportError:
        return Figure(title, HISTORY_SECTION, note="Not drawn: matplotlib is not installed.")
    from evals.report.html import _png, _short

    metric_ids = sorted({m for _, p in points for m in p.get("metrics", {})})
    fig = MplFigure(figsize=(8, 5.2 if metric_ids else 3.2), layout="constrained")
    axes = fig.subplots(2 if metric_ids else 1, 1, sharex=True, squeeze=False).ravel()
    xs = list(range(len(points)))
    ax = axes[0]
    base = [p.get("baseline") or {} for _, p in points]
    ax.step(xs, [(b.get("estimate") or 0) * 100 for b in base], where="mid", color="black", linestyle="--",
            linewidth=1.2, label="baseline match rate")
    ax.fill_between(xs, [(b.get("low") or 0) * 100 for b in base], [(b.get("high") or 0) * 100 for b in base],
                    step="mid", color="black", alpha=0.08, label="baseline 95% CI")
    for x, (r, p) in zip(xs, points, strict=True):
        c = p["current"]
        est, low, high = c["estimate"] * 100, (c.get("low") or c["estimate"]) * 100, (c.get("high") or
                                                                                        c["estimate"]) * 100
        ax.errorbar([x], [est], yerr=[[max(0.0, est - low)], [max(0.0, high - est)]], fmt="o", capsize=4,
                    color=STATUS_COLORS.get(r.status, "#4c72b0"))
    changed = [x for x, (r, _), prev in zip(xs[1:], points[1:], points[:-1], strict=True)
               if r.baseline_run_id != prev[0].baseline_run_id]
    for x in changed:
        ax.axvline(x - 0.5, color="#4c72b0", linestyle=":", linewidth=1)
        ax.annotate("new baseline", (x - 0.5, ax.get_ylim()[1]), fontsize=8, ha="left", va="top", color="#4c72b0")
    for x, (_, p) in zip(xs, points, strict=True):
        if p.get("drift"):
            ax.annotate("model version changed", (x, p["current"]["estimate"] * 100), textcoords="offset points",
                        xytext=(7, -3), ha="left", fontsize=8, color="#c44e52")
    ax.set_ylabel("match rate (%)")
    ax.set_ylim(max(0.0, ax.get_ylim()[0] - 5), min(105.0, ax.get_ylim()[1] + 5))
    ax.grid(alpha=0.3)
    handles = [ax.plot([], [], "o", color=color, label=status)[0] for status, color in STATUS_COLORS.items()
               if any(r.status == status for r, _ in points)]
    ax.legend(handles=[*ax.get_legend_handles_labels()[0][:2], *handles], fontsize=8, loc="best")
    if metric_ids:
        mx = axes[1]
        for i, m in enumerate(metric_ids):
            vals = [((p.get("metrics") or {}).get(m) or {}) for _, p in points]
            est = [v.get("estimate") for v in vals]
            color = f"C{i}"
            mx.plot(xs, [float("nan") if e is None else e for e in est], "o-", color=color, label=_short(m, 30))
            mx.fill_between(xs, [float("nan") if v.get("low") is None else v["low"] for v in vals],
                            [float("nan") if v.get("high") is None else v["high"] for v in vals],
                            color=color, alpha=0.15)
        mx.set_ylabel("metric mean (95% CI)")
        mx.grid(alpha=0.3)
        mx.legend(fontsize=8, loc="best")
    several = len({r.model for r, _ in points}) > 1  # then each tick names its model
    axes[-1].set_xticks(xs, [f"#{r.id}\n{r.created_at[5:10]}" + (f"\n{_short(r.model, 16)}" if several else "")
                             for r, _ in points], fontsize=8)
    axes[-1].set_xlabel("check (id, date)")
    alt = ("Match rate of each check with its 95% Wilson interval against the baseline's (dashed, shaded): "
           + "; ".join(f"check {r.id} {r.status} {p['current']['estimate']:.0%}" for r, p in points[-10:]) + ".")
    return Figure(title, HISTORY_SECTION, _png(fig), alt)


def history_title(task: str, model: str | None) -> str:
    return f"Check history: {task}" + (f" on {model}" if model else "")


def write_check_html(path: Path, outcome: CheckOutcome, records: Sequence[CheckRecord], examples: int = 10) -> None:
    sections = [*check_sections(outcome, examples), history_section(records)]
    write_atomic(path, render_html(sections, check_title(outcome), [trend_figure(records)]))


def write_history_html(path: Path, task: str, model: str | None, records: Sequence[CheckRecord]) -> None:
    write_atomic(path, render_html([history_section(records)], history_title(task, model), [trend_figure(records)]))
