"""The `evals route` report: sections for the terminal and Markdown, and for HTML the frontier figure
(share kept on the cheap model against the blended match rate with its CI band, cost on a second axis)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evals.analyse.rates import format_points
from evals.report.sections import Section, p50_p95

if TYPE_CHECKING:
    from evals.analyse.route import Option, Routing

MAX_ROWS = 15  # thresholds shown in a table; --json has them all


def routing_title(r: Routing) -> str:
    return f"Routing {r.cheap_model} (cheap) and {r.strong_model} (strong) on {r.signal}"


def routing_sections(r: Routing) -> list[Section]:
    """The answer first, then the thresholds, then how the recommendation was reached."""
    answer = Section(f"Routing: {r.label}", lines=[r.headline, (
        f"Signal: {r.signal_description}. Cheap run {r.cheap_run} ({r.cheap_model}), strong run {r.strong_run} "
        f"({r.strong_model}), {r.n} examples paired by id.")])
    volume = f"monthly at {r.volume:,.0f} calls" if r.volume else "monthly"
    table = Section("Thresholds", headers=[
        "option", "kept on cheap", "matches", f"vs strong, points ({r.confidence:.0%} CI)", "non-inferior",
        "cost / call", volume, "latency p50 / p95"])
    shown = _shown(r)
    for o in (r.strong, r.cheap, *shown):
        name = "everything strong" if o is r.strong else "everything cheap" if o is r.cheap else f">= {o.threshold:g}"
        if o is r.recommended:
            name += " (recommended)"
        table.rows.append([name, f"{o.kept}/{r.n} ({o.share_cheap:.0%})", f"{o.matches}/{r.n} ({o.match_rate:.0%})",
                           "-" if o is r.strong else _points(o), "reference" if o is r.strong else
                           "yes" if o.non_inferior else "no", _usd(o.cost_per_call_usd, 6), _usd(o.monthly_usd, 2),
                           p50_p95(o.latency_p50_s, o.latency_p95_s)])
    table.lines.append(f"A threshold keeps a call on the cheap model when the signal is at least that value; "
                       f"non-inferior: the CI's lower bound lies above -{r.min_gap * 100:g} points (decision.min_gap).")
    if len(shown) < len(r.thresholds):
        table.lines.append(f"{len(r.thresholds) - len(shown)} more thresholds not shown (see --json).")
    details = Section("How the recommendation was reached", bullets={"Why": r.reasons, "Assumptions": r.assumptions})
    return [answer, table, details]


def _shown(r: Routing) -> list[Option]:
    """All thresholds, or at most MAX_ROWS spread over the shares kept on the cheap model (the recommended one kept)."""
    if len(r.thresholds) <= MAX_ROWS:
        return list(r.thresholds)
    wanted = {min(range(len(r.thresholds)), key=lambda i: abs(r.thresholds[i].share_cheap - k / (MAX_ROWS - 2)))
              for k in range(MAX_ROWS - 1)}
    wanted |= {i for i, o in enumerate(r.thresholds) if o is r.recommended}
    return [r.thresholds[i] for i in sorted(wanted)]


def _points(o: Option) -> str:
    e = o.vs_strong
    return f"{format_points(e.estimate)} ({format_points(e.low)} to {format_points(e.high)})"


def _usd(x: float | None, digits: int) -> str:
    return "-" if x is None else f"${x:,.{digits}f}"


def frontier_figure(r: Routing):
    from evals.report.html import COLORS, Figure, _new_figure, _png, _short

    title = "Share kept on the cheap model vs blended match rate"
    try:
        fig = _new_figure(7, 3.8)
    except ImportError:
        return Figure(title, "Thresholds", note="Not drawn: matplotlib is not installed.")
    options = sorted((r.strong, *r.thresholds), key=lambda o: o.share_cheap)
    x = [o.share_cheap * 100 for o in options]
    base = r.strong.match_rate * 100
    ax = fig.add_subplot()
    ax.fill_between(x, [max(0.0, base + (o.vs_strong.low or 0) * 100) for o in options],
                    [min(100.0, base + (o.vs_strong.high or 0) * 100) for o in options], color=COLORS[0], alpha=0.2,
                    label=f"{r.confidence:.0%} CI (strong + paired difference)")
    ax.plot(x, [o.match_rate * 100 for o in options], "o-", color=COLORS[0], label="blended match rate")
    ax.axhline(base - r.min_gap * 100, color="#c44e52", linestyle="--", linewidth=1,
               label=f"strong - min_gap ({base - r.min_gap * 100:.0f}%)")
    if r.recommended is not None:
        ax.plot([r.recommended.share_cheap * 100], [r.recommended.match_rate * 100], "k*", markersize=14,
                label="recommended")
    ax.set_xlabel(f"calls kept on {_short(r.cheap_model, 30)} (%)")
    ax.set_ylabel("match rate (%)")
    ax.set_xlim(-2, 102)
    ax.grid(alpha=0.3)
    costs = [(o.share_cheap * 100, o.monthly_usd if r.volume else o.cost_per_call_usd) for o in options]
    costs = [(share, c) for share, c in costs if c is not None]
    if costs:
        cost_ax = ax.twinx()
        cost_ax.plot([s for s, _ in costs], [c for _, c in costs], "s:", color=COLORS[1], label="cost")
        cost_ax.set_ylabel(f"USD per month at {r.volume:,.0f} calls" if r.volume else "USD per call", color=COLORS[1])
    ax.legend(fontsize=7, loc="lower left")
    alt = (f"Blended match rate against the share of calls kept on the cheap model, {len(r.thresholds)} thresholds "
           f"of {r.signal}; {r.label}.")
    return Figure(title, "Thresholds", _png(fig), alt)
