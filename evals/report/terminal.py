"""Rich tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from evals.analyse.aggregate import Classification
from evals.analyse.summary import RunSummary, present
from evals.report.sections import failed_because, p50_p95, seconds, summary_section
from evals.run.store import LatencyProfile, RunRecord

if TYPE_CHECKING:
    import pandas as pd

    from evals.analyse.judge_agreement import JudgeAgreement
    from evals.report.sections import Section


def summary_table(summaries: Sequence[RunSummary], title: str = "") -> Table:
    """The runs' summaries (see `summary_section`), every cell as plain Text; a run not completed in yellow."""
    section = summary_section(summaries)
    table = Table(title=title or None, show_lines=False)
    for header in section.headers:
        table.add_column(header, justify="left" if header in ("model", "run", "matches") else "right")
    for s, row in zip(summaries, section.rows, strict=True):
        cells = [Text(c) for c in row]
        if s.status != "completed":
            cells[2].stylize("yellow", len(s.matches_text))
        table.add_row(*cells)
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
                      seconds(lv["queue_p50_s"]),
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
        table.add_row(r.id, r.task, r.model, r.status, f"{r.n_done}/{r.n_attempts}", str(r.n_errors), r.created_at)
    return table


def examples_to_show(df: pd.DataFrame, limit: int) -> pd.DataFrame:
    """The first `limit` examples, failures first."""
    return df.sort_values("passed", kind="stable").head(limit)


def examples_table(df: pd.DataFrame, limit: int) -> Table:
    """The first `limit` examples, failures first: id, verdict, scores, answer (as plain text)."""
    table = Table(show_lines=True)
    for header in ("example", "match", "scores", "answer / error"):
        table.add_column(header, overflow="fold")
    ordered = examples_to_show(df, limit)
    score_cols = [c for c in df.columns if c.startswith("score.")]
    for _, row in ordered.iterrows():
        scores = ", ".join(
            f"{c.removeprefix('score.')}={row[c]:.2f}" for c in score_cols if present(row[c])
        )
        if not row["passed"] and (why := failed_because(row["scores"])):
            scores += "\n" + why
        answer = row["error"] if present(row["error"]) else (row["output"] or "")
        # model output is data: Text() keeps rich from reading markup in it
        attempt = f" #{int(row['attempt'])}" if "attempt" in row and df["attempt"].max() > 1 else ""
        table.add_row(Text(f"{row['example_id']}{attempt}"), "yes" if row["passed"] else "no", Text(scores),
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


def judge_agreement_tables(run_id: str, results: Sequence[JudgeAgreement]) -> list[Any]:
    """`evals judge-agreement`: per judge metric, agreement and kappa with CIs, self-consistency, the confusion
    matrix (rows people, columns the judge) and the worst disagreements."""
    summary = Table(title=Text(f"judges of run {run_id} against people"))
    for header in ("judge metric", "scale", "labelled", "same verdict (95% CI)", "kappa (95% CI)",
                   "self-consistency", "warning"):
        summary.add_column(header)
    out: list[Any] = [summary]
    for r in results:
        low, high = r.agree_ci
        kappa = "-" if r.kappa is None else (f"{r.kappa:.2f} ({r.kappa_ci[0]:.2f} to {r.kappa_ci[1]:.2f})"
                                             + (" weighted" if r.weighted else ""))
        alpha = "-" if r.self_consistency is None else f"alpha {r.self_consistency:.2f} over {r.repeats} repeats"
        summary.add_row(r.metric, r.scale, str(r.n), f"{r.agree}/{r.n} ({r.agree / r.n:.0%}, {low:.0%}-{high:.0%})",
                        kappa, alpha, Text("; ".join(r.warnings) or "-"))
        confusion = Table(title=Text(f"{r.metric}: people (rows) x judge (columns)"))
        confusion.add_column("people \\ judge")
        for label in r.labels:
            confusion.add_column(str(label), justify="right")
        for label, row in zip(r.labels, r.confusion, strict=True):
            confusion.add_row(str(label), *(str(v) for v in row))
        out.append(confusion)
        if r.disagreements:
            worst = Table(title=Text(f"{r.metric}: where they disagree most"))
            for header in ("example", "people", "judge", "judge's reasoning"):
                worst.add_column(header, overflow="fold")
            for d in r.disagreements:
                worst.add_row(Text(d["example_id"]), str(d["human"]), str(d["judge"]), Text(d["reasoning"][:300]))
            out.append(worst)
    return out
