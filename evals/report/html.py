"""The comparison report as one self-contained HTML file: the sections of `sections.py` plus figures.

Model output is untrusted: the Jinja2 environment autoescapes every value and nothing from the data
is marked safe. The page carries no script and loads nothing: CSS is inline, figures are PNG data
URIs drawn by matplotlib (imported lazily, Agg, no pyplot state), and a Content-Security-Policy
forbids scripts and any fetch should escaping ever fail.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader

from evals.report.sections import Section, comparison_sections, comparison_title

if TYPE_CHECKING:
    from evals.analyse.compare import Comparison
    from evals.analyse.verdict import Verdict

TEMPLATE = "comparison.html.j2"
COLORS = ("#4c72b0", "#dd8452")  # baseline (A), candidate (B)


@dataclass(frozen=True)
class Figure:
    """A drawn figure (PNG, base64) or, when it cannot be drawn, a note saying why."""

    title: str
    section: str  # the title prefix of the section it belongs under
    png_base64: str = ""
    alt: str = ""
    note: str = ""


def _environment() -> Environment:
    return Environment(loader=PackageLoader("evals.report", "templates"),
                       autoescape=True,
                       trim_blocks=True, lstrip_blocks=True)


def place_figures(sections: Sequence[Section], figures: Sequence[Figure]
                  ) -> tuple[list[tuple[Section, list[Figure]]], list[Figure]]:
    """Each section with the figures shown under it (a figure goes under the first section whose title starts
    with its `section`), and the figures that belong under none."""
    placed: dict[int, list[Figure]] = {}
    rest: list[Figure] = []
    for fig in figures:
        at = next((i for i, s in enumerate(sections) if s.title.startswith(fig.section)), None)
        (rest if at is None else placed.setdefault(at, [])).append(fig)
    return [(s, placed.get(i, [])) for i, s in enumerate(sections)], rest


def render_html(sections: Sequence[Section], title: str, figures: Sequence[Figure] = ()) -> str:
    """Sections and their figures (see `place_figures`) as one page."""
    items, rest = place_figures(sections, figures)
    return _environment().get_template(TEMPLATE).render(title=title, items=items, rest=rest)


def comparison_html(cmp: Comparison, verdict: Verdict, examples: int = 10) -> str:
    return render_html(comparison_sections(cmp, verdict, examples), comparison_title(cmp),
                       comparison_figures(cmp, verdict))


# --- figures ---------------------------------------------------------------------------------------

def comparison_figures(cmp: Comparison, verdict: Verdict) -> list[Figure]:
    try:
        from matplotlib.figure import Figure as MplFigure  # noqa: F401  (lazy: only reports need it)
    except ImportError:
        return [Figure("Figures", "Runs", note="Figures not drawn: matplotlib is not installed.")]
    return [_match_rates(cmp), _metric_distributions(cmp), _paired_counts(cmp), _cost_vs_volume(verdict)]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure as MplFigure

    return MplFigure(figsize=(width, height), layout="constrained")


def _labels(cmp: Comparison) -> tuple[str, str]:
    return f"A: {cmp.a.summary.model}", f"B: {cmp.b.summary.model}"


def _match_rates(cmp: Comparison) -> Figure:
    fig = _new_figure(6, 2.6)
    ax = fig.add_subplot()
    labels = _labels(cmp)
    sides = (cmp.a.summary, cmp.b.summary)
    for y, (s, color) in enumerate(zip(sides, COLORS, strict=True)):
        low, high = s.match_ci
        err = [[max(0.0, s.match_rate - low) * 100], [max(0.0, high - s.match_rate) * 100]]  # >= 0 despite rounding
        ax.errorbar([s.match_rate * 100], [y], xerr=err,
                    fmt="o", color=color, capsize=6, markersize=8)
        ax.annotate(f"{s.matches}/{s.n}  ({low:.0%} to {high:.0%})", (s.match_rate * 100, y),
                    textcoords="offset points", xytext=(0, 9), ha="center", fontsize=9)
    ax.set_yticks([0, 1], [_short(x) for x in labels])
    ax.set_ylim(-0.6, 1.6)
    ax.invert_yaxis()
    lo = min(s.match_ci[0] for s in sides) * 100
    ax.set_xlim(max(0.0, lo - 10), 100)
    ax.set_xlabel("match rate (%), 95% Wilson CI")
    ax.grid(axis="x", alpha=0.3)
    alt = "; ".join(f"{lab}: {s.matches_text}" for lab, s in zip(labels, sides, strict=True))
    return Figure("Match rate per model", "Runs", _png(fig), "Match rate with 95% Wilson intervals. " + alt)


def _metric_distributions(cmp: Comparison) -> Figure:
    metrics = sorted(set(cmp.a.values) | set(cmp.b.values))
    title = "Metric score distributions"
    if not metrics:
        return Figure(title, "Runs", note="No metric scores to plot.")
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig = _new_figure(3.4 * cols, 2.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    labels = _labels(cmp)
    for ax, metric in zip(axes, metrics, strict=False):
        data = [list(side.values.get(metric, ())) for side in (cmp.a, cmp.b)]
        present = [d for d in data if d]
        lo = min((min(d) for d in present), default=0.0)
        hi = max((max(d) for d in present), default=1.0)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        bins = [lo + (hi - lo) * k / 20 for k in range(21)]
        for d, color, label in zip(data, COLORS, labels, strict=True):
            if d:
                ax.hist(d, bins=bins, color=color, alpha=0.5, label=f"{_short(label, 24)} (n={len(d)})")
        ax.set_title(_short(metric, 40), fontsize=10)
        ax.set_xlabel("score")
        ax.set_ylabel("examples")
        ax.legend(fontsize=7)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    alt = "Histograms of each metric's per-example scores for both models: " + ", ".join(metrics) + "."
    return Figure(title, "Runs", _png(fig), alt)


def _paired_counts(cmp: Comparison) -> Figure:
    c = cmp.counts
    names = ("both matched", "A only", "B only", "both missed")
    values = (c.both_pass, c.a_only, c.b_only, c.both_fail)
    fig = _new_figure(6, 2.6)
    ax = fig.add_subplot()
    bars = ax.bar(names, values, color=("#8c8c8c", COLORS[0], COLORS[1], "#c44e52"))
    ax.bar_label(bars, labels=[str(v) for v in values])
    ax.set_ylabel("paired examples")
    ax.set_ylim(0, max(values + (1,)) * 1.18)
    ax.set_title(f"{cmp.test} p = {cmp.mcnemar_p:.3g}", fontsize=10)
    alt = "Paired outcome counts: " + ", ".join(f"{n} {v}" for n, v in zip(names, values, strict=True)) + "."
    return Figure("Paired outcomes", "Paired outcomes", _png(fig), alt)


def _cost_vs_volume(verdict: Verdict) -> Figure:
    title = "Monthly cost vs volume"
    costs = verdict.costs
    if costs is None:
        return Figure(title, "Cost at volume", note="Not drawn: the verdict has no cost projection "
                      "(see its reasons for what is missing).")
    anchors = [r.volume for r in costs.rows] + ([costs.break_even_volume] if costs.break_even_volume else [])
    anchors = [v for v in anchors if v and v > 0] or [1_000.0, 100_000.0]
    lo, hi = min(anchors) / 10, max(anchors) * 10
    volumes = [lo * (hi / lo) ** (k / 200) for k in range(201)]
    fig = _new_figure(6.5, 3.4)
    ax = fig.add_subplot()
    for model, color, role in ((costs.baseline, COLORS[0], "A"), (costs.candidate, COLORS[1], "B")):
        ax.plot(volumes, [model.monthly_usd(v) for v in volumes], color=color,
                label=f"{role}: {_short(model.model, 40)} ({model.hosting})")
    for r in costs.rows:
        ax.axvline(r.volume, color="#bbbbbb", linewidth=0.8, linestyle=":")
    if costs.break_even_volume:
        v = costs.break_even_volume
        ax.axvline(v, color="black", linestyle="--", linewidth=1)
        ax.plot([v], [costs.baseline.monthly_usd(v)], "kD")
        ax.annotate(f"break-even ~{v:,.0f}/month", (v, costs.baseline.monthly_usd(v)),
                    textcoords="offset points", xytext=(6, -14), fontsize=9)
    ax.set_xscale("log")
    ax.set_yscale("log" if all(m.monthly_usd(lo) > 0 for m in (costs.baseline, costs.candidate)) else "linear")
    ax.set_xlabel("calls per month (dotted: the task's volume, 10x, 100x)")
    ax.set_ylabel("USD per month")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    be = (f"break-even at about {costs.break_even_volume:,.0f} calls/month" if costs.break_even_volume
          else "no break-even")
    return Figure(title, "Cost at volume", _png(fig), f"Monthly cost of both options against volume; {be}.")


def _short(text: str, limit: int = 32) -> str:
    """A label for matplotlib: shortened, and '$' escaped so no mathtext is parsed from it."""
    text = text if len(text) <= limit else text[: limit - 1] + "\u2026"
    return text.replace("$", r"\$")
