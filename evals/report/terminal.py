"""Rich tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
from rich.console import Group
from rich.table import Table
from rich.text import Text

from evals.analyse.aggregate import Classification
from evals.analyse.summary import RunSummary
from evals.report.sections import failed_because, headline_metrics, p50_p95
from evals.run.store import LatencyProfile, RunRecord

if TYPE_CHECKING:
    from evals.report.sections import Section


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def summary_table(summaries: Sequence[RunSummary], title: str = "") -> Table:
    metric_ids = headline_metrics(m for s in summaries for m in s.metrics)
    table = Table(title=title or None, show_lines=False)
    for header in ("model", "run", "matches", *metric_ids, "errors", "tokens in/out", "cost", "p50", "p95", "TTFT p50",
                   "calls/h"):
        table.add_column(header, justify="left" if header in ("model", "run", "matches") else "right")
    for s in summaries:
        metric_cells = [("-" if s.metrics.get(m) is None else f"{s.metrics[m]:.2f}") for m in metric_ids]
        status = "" if s.status == "completed" else f" [yellow]({s.status}, {s.done}/{s.n})[/]"
        errors = str(s.errors) + "".join(f"\n{m}: {k}" for m, k in s.metric_errors.items())
        tokens, cost = f"{s.input_tokens:,}/{s.output_tokens:,}", f"${s.cost_usd:.4f}" + (" batch" if s.batched else "")
        if s.judge_calls:
            tokens += f"\n+ judge {s.judge_input_tokens:,}/{s.judge_output_tokens:,}"
            cost += f"\n+ judge ${s.judge_cost_usd:.4f}"
        table.add_row(
            Text(s.model), s.run_id, s.matches_text + status, *metric_cells, Text(errors), tokens, cost,
            _seconds(s.latency_p50_s), _seconds(s.latency_p95_s), _seconds(s.ttft_p50_s),
            "-" if s.calls_per_hour is None else f"{s.calls_per_hour:,.0f}",
        )
    return table


def cost_notes(summaries: Sequence[RunSummary]) -> list[str]:
    """One line per run that was batched or read its prompt cache: what that did to its cost."""
    notes = []
    for s in summaries:
        said = []
        if s.batched:
            said.append("calls went through the Batch API, so every cost is at batch prices (half price)")
        if s.cached_input_tokens or s.cache_write_tokens:
            verb, usd = "saved" if s.cache_saved_usd >= 0 else "cost", abs(s.cache_saved_usd)
            said.append(f"the prompt cache {verb} ${usd:.{4 if usd >= 0.01 else 6}f}: {s.cached_input_tokens:,} of "
                        f"{s.input_tokens:,} input tokens read from it, {s.cache_write_tokens:,} written to it "
                        "(against paying them all as fresh input)")
        if said:
            notes.append(f"{s.model} (run {s.run_id}): " + "; ".join(said))
    return notes


def latency_table(profile: LatencyProfile) -> Table:
    """`evals latency`: one row per concurrency level."""
    cost = sum(lv["cost_usd"] for lv in profile.levels)
    table = Table(title=Text(f"{profile.model} on {profile.hardware} ({profile.created_at})"),
                  caption=Text(f"conc: requests in flight (local: batch size); per request, p50/p95; queue: median "
                               f"wait in the model's own queue; tok/s: output tokens a second; cost ${cost:.4f}"))
    for header in ("conc", "n", "err", "TTFT p50/p95", "latency p50/p95", "tok/s", "queue", "calls/h"):
        table.add_column(header, justify="right")
    for lv in profile.levels:
        table.add_row(str(lv["concurrency"]), str(lv["n"]), str(lv["errors"]),
                      p50_p95(lv["ttft_p50_s"], lv["ttft_p95_s"]), p50_p95(lv["latency_p50_s"], lv["latency_p95_s"]),
                      "-" if lv["tokens_per_s"] is None else f"{lv['tokens_per_s']:,.0f}",
                      _seconds(lv["queue_p50_s"]),
                      "-" if lv["calls_per_hour"] is None else f"{lv['calls_per_hour']:,.0f}")
    return table


def classification_table(metric_id: str, c: Classification, model: str = "") -> Table:
    """A label metric over a run: accuracy and macro-F1 in the title, the confusion matrix (rows true)."""
    who = f"{model} - " if model else ""
    table = Table(title=Text(f"{who}{metric_id}: accuracy {c.accuracy:.2f}, macro-F1 {c.macro_f1:.2f} (n={c.n})"),
                  caption="rows: true label, columns: predicted")
    table.add_column("true \\ predicted")
    for column in c.columns:
        table.add_column(Text(column), justify="right")
    table.add_column("recall", justify="right")
    for label, row in zip(c.labels, c.confusion, strict=True):
        recall = c.per_label.get(label, {}).get("recall")
        table.add_row(Text(label), *(str(v) for v in row), "-" if recall is None else f"{recall:.2f}")
    return table


def metrics_list_table(described: Sequence[dict[str, Any]]) -> Table:
    """`evals metrics`: name, description, arguments with defaults, where each is defined."""
    table = Table(show_lines=True)
    for header in ("metric", "description", "arguments", "from"):
        table.add_column(header, overflow="fold")
    for m in described:
        args = ", ".join(a["name"] if a["required"] else f"{a['name']}={a['default']!r}" for a in m["args"])
        source = m["module"].removeprefix("evals.metrics.") if m["module"].startswith("evals.") else m["module"]
        table.add_row(Text(m["name"], style="bold"), Text(m["description"]), Text(args), Text(source))
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
        if not row["passed"] and (why := failed_because(row["scores"])):
            scores += "\n" + why
        answer = row["error"] if pd.notna(row["error"]) else (row["output"] or "")
        # model output is data: Text() keeps rich from reading markup in it
        table.add_row(Text(str(row["example_id"])), "yes" if row["passed"] else "no", Text(scores),
                      Text(answer[:400]))
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
