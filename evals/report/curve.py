"""A learning curve (`evals finetune --curve`, finetune/curve.py) as a report: the answer (labelled
extrapolation), a table per size, and a figure of the measured rates with their intervals, the fitted curve and
its bootstrap band out to 4x the data, and the baseline's rate. Terminal and HTML share the sections; the figure
is a PNG, also drawn in `decide`'s HTML report when the verdict quotes a curve. A stored curve is data: a file
that does not read as one gives a note, never an error."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from evals.analyse.learning_curve import MIN_SIZES, Params
from evals.report.html import Figure, _png, _short, render_html
from evals.report.sections import Section


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _estimate(e: dict[str, Any]) -> str:
    return f"{_pct(e['value'])} (95% CI {_pct(e['low'])} to {_pct(e['high'])})"


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def curve_title(record: dict[str, Any]) -> str:
    ident = record["identity"]
    return f"Learning curve of {ident['task']} on {ident['base']}"


def curve_sections(record: dict[str, Any], where: str) -> list[Section]:
    points, fitted = record["points"], record.get("fit")
    answer = Section("Answer (extrapolation)")
    if fitted is None:
        answer.lines.append(f"No curve is fitted yet: it needs at least {MIN_SIZES} sizes, and {len(points)} "
                            f"{'is' if len(points) == 1 else 'are'} measured.")
    else:
        largest = fitted["largest"]
        answer.lines += [
            f"Expected match rate at 2x the data ({2 * largest:,} examples): {_estimate(fitted['at_2x'])}; at 4x "
            f"({4 * largest:,}): {_estimate(fitted['at_4x'])}; the rate more data approaches: "
            f"{_estimate(fitted['asymptote'])}.",
            *(f"Examples to reach {name} ({t['rate']:.0%}): {t['text']}." for name, t in fitted["targets"].items()),
        ]
        base = fitted.get("baseline")
        answer.lines.append(
            f"Baseline: {base['model']} {base['rate']:.0%} (run {base['run_id']}); min_gap {base['min_gap']:g}."
            if base else "No stored run of decision.baseline on this golden set, so no examples-needed answer: run "
                         "it (`evals run TASK -m SPEC`) and this command again (the trained sizes are kept).")
        p = fitted["params"]
        answer.lines.append(
            f"Fitted rate(n) = {p['a']:.3f} - {p['b'] + 0.0:.3f} n^-{p['c']:.3f}; intervals are bootstrap percentiles over "
            f"the golden examples ({fitted['draws']} draws), which do not include training's run-to-run noise. "
            "Every figure past the largest size is an extrapolation of that curve.")
    metric_ids = sorted({m for pt in points for m in (pt.get("metrics") or {})})
    table = Section("Per size", headers=["examples", "matches (95% CI)", *metric_ids, "training", "tokens",
                                         "training cost", "run"])
    for pt in points:
        low, high = pt["ci95"]
        tr = pt["train"]
        table.rows.append([f"{pt['size']:,}", f"{pt['matches']}/{pt['n']} ({pt['rate']:.0%}, {low:.0%}-{high:.0%})",
                           *("-" if (v := (pt.get("metrics") or {}).get(m)) is None else f"{v:.2f}"
                             for m in metric_ids),
                           f"{_duration(tr.get('wall_seconds'))} on {tr.get('device')}",
                           "-" if tr.get("tokens") is None else f"{tr['tokens']:,}",
                           "-" if tr.get("cost_usd") is None else f"${tr['cost_usd']:.4f}", pt["run_id"]])
    table.lines.append(f"Nested subsets: one seeded order of the training data, size N its first N, the same "
                       f"{len(record['validation_ids'])} held-out examples validating every size. Training cost: "
                       + (points[0]["train"]["cost_basis"] if points else "-") + ". Curve: " + where)
    return [answer, table]


def curve_figure(record: dict[str, Any]) -> Figure:
    """Measured rates with Wilson intervals, the fit with its 95% bootstrap band to 4x the data (dashed past the
    data: extrapolation), and the baseline's rate and baseline + min_gap."""
    try:
        import numpy as np
        from matplotlib.figure import Figure as MplFigure
    except ImportError:
        return Figure("Learning curve", "Per size", note="Not drawn: matplotlib is not installed.")
    fig = MplFigure(figsize=(6.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    points = record["points"]
    sizes = np.array([p["size"] for p in points], float)
    rates = np.array([p["rate"] for p in points])
    err = np.array([[max(0.0, p["rate"] - p["ci95"][0]) for p in points],
                    [max(0.0, p["ci95"][1] - p["rate"]) for p in points]])
    ax.errorbar(sizes, rates * 100, yerr=err * 100, fmt="o", color="#4c72b0", capsize=4, label="measured (95% CI)")
    fitted = record.get("fit")
    if fitted is not None:
        largest = fitted["largest"]
        p = Params(**fitted["params"])
        boot = [Params(*q) for q in fitted["bootstrap_params"]]
        for xs, style in ((np.geomspace(sizes.min(), largest, 50), "-"), (np.geomspace(largest, 4 * largest, 50), "--")):
            band = np.array([[q.rate(x) for x in xs] for q in boot])
            ax.fill_between(xs, np.percentile(band, 2.5, 0) * 100, np.percentile(band, 97.5, 0) * 100,
                            color="#dd8452", alpha=0.2, linewidth=0)
            ax.plot(xs, [p.rate(x) * 100 for x in xs], style, color="#dd8452",
                    label="fit (95% band)" if style == "-" else "extrapolation")
        base = fitted.get("baseline")
        if base:
            ax.axhline(base["rate"] * 100, color="grey", linewidth=1, label=_short(f"baseline {base['model']}", 48))
            ax.axhline((base["rate"] + base["min_gap"]) * 100, color="grey", linewidth=1, linestyle=":",
                       label="baseline + min_gap")
    ax.set_xscale("log")
    ax.set_xlabel("training examples")
    ax.set_ylabel("golden match rate (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    alt = "; ".join(f"{p['size']} examples: {p['matches']}/{p['n']}" for p in points)
    return Figure("Learning curve", "Per size", _png(fig), "Match rate by training-set size. " + alt)


def stored_curve_figure(path: str, section: str) -> Figure:
    """The figure of the curve stored at `path`, placed under the report section titled `section`."""
    try:
        figure = curve_figure(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
        return Figure("Learning curve", section, note=f"Not drawn: {path} does not read as a learning curve ({e}).")
    return Figure(f"Learning curve ({path})", section, figure.png_base64, figure.alt, figure.note)


def write_report(record: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """curve.html (the sections and the figure, self-contained) and curve.png in the curve's folder."""
    from evals._util import write_atomic

    figure = curve_figure(record)
    html, png = folder / "curve.html", folder / "curve.png"
    write_atomic(html, render_html(curve_sections(record, str(folder)), curve_title(record), [figure]))
    if figure.png_base64:
        png.write_bytes(base64.b64decode(figure.png_base64))
    return html, png
