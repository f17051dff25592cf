"""An optimisation on the terminal: the candidates with their dev (selection) figures, then the golden result."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from evals.analyse.rates import format_points


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.0f}%"


def _paired(p: Any) -> str:
    if not p:
        return "-"
    estimate, low, high = p
    return f"{format_points(estimate)} ({format_points(low)} to {format_points(high)})"


def optimization_table(result: dict[str, Any]) -> Table:
    table = Table(title=f"evals optimize {result['optimization']}: {result['task']} / {result['model']} - "
                        f"selection figures on the dev part of {result['split']}")
    for header in ("candidate", "dev matches (95% CI)", "vs seed, points (paired 95% CI)", "tokens in/call",
                   "cost/call", "calls", "spent", ""):
        table.add_column(header, justify="left" if header in ("candidate", "") else "right")
    for r in result["candidates"]:
        matches = (f"{r['matches']}/{r['n']} ({_pct(r['rate'])}, {_pct(r['low'])}-{_pct(r['high'])})"
                   + (f", {r['errors']} errors" if r.get("errors") else "") if r["rate"] is not None else r["status"])
        mark = "winner" if r["winner"] else "tied" if r["tied"] else ""
        versus = "(the seed)" if r["family"] == "seed" else _paired(r["vs_seed"])
        cells = [Text(r["name"]), Text(matches), Text(versus), Text(f"{r['input_tokens']:,.0f}"),
                 Text(f"${r['cost_per_call']:.6f}"), Text(str(r["calls"])), Text(f"${r['spent_usd']:.4f}"), Text(mark)]
        if r["winner"]:
            cells[0].stylize("bold")
        table.add_row(*cells)
    return table


def optimization_lines(result: dict[str, Any]) -> list[str]:
    """The result (golden, paired), what the winner costs at volume, what was spent, and where it was written."""
    g = result["golden"]
    lines: list[str] = []
    if g is None:
        return [f"Stopped by the budget after {result['search_calls']} search calls (${result['spent_usd']:.4f}): "
                "no winner chosen, task.yaml untouched; run the same command with a larger --budget to go on."]
    seed = g["seed"]
    side = "{matches}/{n} ({rate}, 95% CI {low}-{high})"

    def fmt(s: dict[str, Any]) -> str:
        return side.format(matches=s["matches"], n=s["n"], rate=_pct(s["rate"]), low=_pct(s["low"]),
                           high=_pct(s["high"])) + ("" if s["complete"] else
                                                    f" (incomplete: {s.get('errors', 0)} provider errors)")

    if "winner" in g:
        lines.append(f"Result on the golden set (scored once each, paired): seed {fmt(seed)}, winner "
                     f"{result['winner']} {fmt(g['winner'])}; winner - seed {_paired(g.get('paired'))} points.")
    else:
        lines.append(f"Result on the golden set: the seed prompt won the selection; seed {fmt(seed)}.")
    if result.get("monthly_added_usd") is not None:
        added = result["monthly_added_usd"]
        lines.append(f"At decision.volume {result['volume']:,.0f} calls/month the winner's prompt "
                     f"{'adds' if added >= 0 else 'saves'} ${abs(added):,.2f} a month over the seed's (tokens per "
                     "call measured on dev, at the task's prices).")
    lines.append(f"Search: {result['search_calls']} model calls on train.jsonl only, "
                 f"${result['search_spent_usd']:.4f}; "
                 f"in all ${result['spent_usd']:.4f} this session, {result['wall_s']:.1f} s.")
    if result.get("written"):
        lines.append(f"Wrote {result['written']}: run it with `evals run {result['task']} --prompt optimized`, or "
                     "`prompt: optimized` on a model entry (your `prompt:` is unchanged).")
    return lines


def optimizations_table(results: list[dict[str, Any]]) -> Table:
    """One row per finished optimisation (its candidates are stored runs: `evals runs --task TASK@optimize`)."""
    table = Table(title="optimisations (dev: selection figures; golden: the result)")
    for header in ("id", "on", "task", "model", "split", "candidates", "winner", "dev winner / seed",
                   "golden seed -> winner", "search calls"):
        table.add_column(header)
    for r in results:
        rows = {c["name"]: c for c in r["candidates"]}
        win, seed, g = rows[r["winner"]], rows["seed"], r["golden"]
        golden = f"{g['seed']['matches']}/{g['n']}" + (f" -> {g['winner']['matches']}/{g['n']}" if "winner" in g
                                                      else " (seed kept)")
        table.add_row(*(Text(str(v)) for v in (
            r["optimization"], r["optimized_on"], r["task"], r["model"], r["split"], len(rows), r["winner"],
            f"{win['matches']}/{win['n']} / {seed['matches']}/{seed['n']}", golden, r["search_calls"])))
    return table
