"""Rich tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
from rich.console import Group
from rich.table import Table
from rich.text import Text

from evals.store import RunRecord
from evals.summary import RunSummary

if TYPE_CHECKING:
    from evals.report.sections import Section


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def summary_table(summaries: Sequence[RunSummary], title: str = "") -> Table:
    metric_ids = sorted({m for s in summaries for m in s.metrics})
    table = Table(title=title or None, show_lines=False)
    for header in ("model", "run", "matches", *metric_ids, "errors", "tokens in/out", "cost", "p50", "p95"):
        table.add_column(header, justify="left" if header in ("model", "run", "matches") else "right")
    for s in summaries:
        metric_cells = [("-" if s.metrics.get(m) is None else f"{s.metrics[m]:.2f}") for m in metric_ids]
        status = "" if s.status == "completed" else f" [yellow]({s.status}, {s.done}/{s.n})[/]"
        table.add_row(
            s.model, s.run_id, s.matches_text + status, *metric_cells, str(s.errors),
            f"{s.input_tokens:,}/{s.output_tokens:,}", f"${s.cost_usd:.4f}",
            _seconds(s.latency_p50_s), _seconds(s.latency_p95_s),
        )
    return table


def runs_table(records: Sequence[RunRecord]) -> Table:
    table = Table()
    for header in ("run", "task", "model", "status", "done", "errors", "created"):
        table.add_column(header)
    for r in records:
        table.add_row(r.id, r.task, r.model, r.status, f"{r.n_done}/{r.n_samples}", str(r.n_errors), r.created_at)
    return table


def examples_table(df: pd.DataFrame, limit: int) -> Table:
    """The first `limit` examples, failures first: id, verdict, scores, answer (as plain text)."""
    table = Table(show_lines=True)
    for header in ("example", "match", "scores", "answer / error"):
        table.add_column(header, overflow="fold")
    ordered = df.sort_values("passed", kind="stable").head(limit)
    score_cols = [c for c in df.columns if c.startswith("score.")]
    for _, row in ordered.iterrows():
        scores = ", ".join(
            f"{c.removeprefix('score.')}={row[c]:.2f}" for c in score_cols if pd.notna(row[c])
        )
        answer = row["error"] if pd.notna(row["error"]) else (row["output"] or "")
        # model output is data: Text() keeps rich from reading markup in it
        table.add_row(Text(str(row["example_id"])), "yes" if row["passed"] else "no", scores, Text(answer[:400]))
    return table


def sections_renderable(sections: Sequence[Section]) -> Group:
    """Report sections for the terminal; every string from the data becomes Text, so no markup is read."""
    parts: list[Any] = []
    for s in sections:
        parts.append(Text(s.title, style="bold underline"))
        if s.headers:
            table = Table(show_lines=any(len(c) > 60 for row in s.rows for c in row))
            for h in s.headers:
                table.add_column(Text(h), overflow="fold")
            for row in s.rows:
                table.add_row(*(Text(c) for c in row))
            parts.append(table)
        parts += [Text(line) for line in s.lines]
        for heading, items in s.bullets.items():
            parts.append(Text(f"{heading}:", style="bold"))
            parts += [Text(f"  - {item}") for item in items]
        parts.append(Text(""))
    return Group(*parts)
