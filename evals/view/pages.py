"""The viewer's pages: each gathers what it shows from the store (read-only) and renders one template.

The numbers are those of `evals show`, `evals compare` and `evals history`, computed by the same code
(summarize, compare_stored, the report sections and figures) and memoised per run state."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.errors import EvalsError, StorageError
from evals.run.store import Store
from evals.view import queries
from evals.types import ToolCall
from evals.view.present import LINE_DIFF_MAX, WORD_DIFF_MAX, Diff, Memo, diff_pieces, pretty, prompt_messages

OUTCOMES = {"changed": "improved and regressed", "regressed": "regressed (A matched, B did not)",
            "improved": "improved (B matched, A did not)", "both-missed": "both missed"}


class NotFound(EvalsError):
    """A run, example or task the store does not hold (a 404 page)."""


@dataclass
class Viewer:
    """The store the pages read (read-only), the writer labels go through, and the memoised numbers."""

    path: Path | str  # a SQLite file, or a postgresql:// URL (shown as store.path, without its password)
    token: str  # the per-session secret every write must carry
    store: Store = field(init=False)
    memo: Memo = field(default_factory=Memo)
    diffs: Memo = field(default_factory=lambda: Memo(128))  # per pair of answers: two pages of the compare page
    _writer: Store | None = None

    def __post_init__(self) -> None:
        if isinstance(self.path, Path) and not self.path.is_file():
            raise EvalsError(f"no run store at {self.path}: run a task first (`evals run TASK`), or name one with "
                             "--store (a CI artifact's evals.db, say)")
        self.store = Store(self.path, readonly=True)
        import evals.analyse.summary  # noqa: F401  (pandas, now rather than in the first page's time)

    def writer(self) -> Store:
        """The store opened for writing, only when a reviewer first saves a label."""
        if self._writer is None:
            self._writer = Store(self.path)
        return self._writer

    def run(self, run_id: str) -> Any:
        try:
            return self.store.get_run(run_id)
        except StorageError:
            raise
        except EvalsError as e:
            raise NotFound(str(e)) from None

    def diff(self, a: str, b: str) -> Diff:
        """The two answers' differences, memoised per pair (keyed by their digests, not the texts)."""
        key = tuple(hashlib.blake2b(t.encode(), digest_size=16).digest() for t in (a, b))
        return self.diffs.get(key, lambda: diff_pieces(a, b))

    def summary(self, run_id: str) -> Any:
        from evals.analyse.summary import summarize_stored

        return self.memo.get(("summary", run_id, queries.run_state(self.store, run_id)),
                             lambda: summarize_stored(run_id, self.store))


def runs_page(v: Viewer, params: dict[str, str]) -> dict[str, Any]:
    sort = params.get("sort", "created") if params.get("sort") in queries.RUN_SORTS else "created"
    descending = params.get("order", "desc") != "asc"
    rows = queries.list_runs(v.store, task=params.get("task", ""), model=params.get("model", ""),
                             status=params.get("status", ""), sort=sort, descending=descending)
    return {"title": "Runs", "runs": rows, "choices": queries.distinct_values(v.store), "params": params,
            "sort": sort, "descending": descending, "sorts": list(queries.RUN_SORTS)}


def example_filter(params: dict[str, str]) -> queries.ExampleFilter:
    below = params.get("below", "").strip()
    try:
        value = float(below) if below else None
    except ValueError:
        raise EvalsError(f"'below' takes a number, got '{below}'", field="below") from None
    return queries.ExampleFilter(failures=bool(params.get("failures")), errors=bool(params.get("errors")),
                                 metric=params.get("metric", ""), below=value, search=params.get("q", "").strip())


def run_page(v: Viewer, run_id: str, params: dict[str, str]) -> dict[str, Any]:
    from evals.report.sections import summary_section

    record = v.run(run_id)
    summary = v.summary(record.id)
    flt = example_filter(params)
    page = queries.examples_page(v.store, record.id, flt, _int(params.get("page"), 1))
    labels = {(lab.example_id, lab.attempt): lab for lab in v.store.labels(record.id)}  # the rows' attempt or 1
    throughput = (f"throughput {summary.calls_per_hour:,.0f} calls/hour ({summary.busy_s:,.1f} s busy) at "
                  f"concurrency {summary.concurrency} on {summary.hardware}" if summary.calls_per_hour else "")
    return {"title": f"Run {record.id}", "run": record, "summary": summary_section([summary]),
            "throughput": throughput, "metrics": sorted(summary.metrics), "page": page, "filter": flt,
            "params": params, "labels": labels, "agreement": _agreement(v, record, labels),
            "manifest": json.dumps(record.manifest, indent=2, sort_keys=True, default=str)}


def _agreement(v: Viewer, record: Any, labels: dict[tuple[str, int], Any]) -> list[Any]:
    from evals.analyse.agreement import agreement

    if not labels:
        return []
    found = v.store.outputs(record.id, labels)
    return agreement([{**found[key], "label": lab.label} for key, lab in labels.items() if key in found],
                     record.manifest.get("pass") or {})


def example_page(v: Viewer, run_id: str, example_id: str) -> dict[str, Any]:
    record = v.run(run_id)
    attempts = queries.example_attempts(v.store, record.id, example_id)
    if not attempts:
        raise NotFound(f"run {record.id} has no example '{example_id}'")
    first = attempts[0]
    messages, prompt_note = prompt_messages(record.manifest, first["input"] or {})
    labels = {lab.attempt: lab for lab in v.store.labels(record.id, example_id)}
    shown = []
    for row in attempts:
        text, is_json = pretty(row["output"])
        scores = [{"id": k, **(s or {}), "details_text": pretty((s or {}).get("details") or None)[0],
                   "reasoning": _reasoning(s or {})} for k, s in (row["scores"] or {}).items()]
        stored = row.get("tool_calls")
        calls = [ToolCall.of(c).shown() for c in (stored if isinstance(stored, list) else ())]
        shown.append({"row": row, "output": text, "output_is_json": is_json, "scores": scores,
                      "label": labels.get(row["attempt"]), "calls": calls})
    before, after = queries.neighbours(v.store, record.id, example_id)
    return {"title": f"Example {example_id} of run {record.id}", "run": record, "example_id": example_id,
            "attempts": shown, "several": len(attempts) > 1, "messages": messages, "prompt_note": prompt_note,
            "fields": pretty(first["input"])[0], "reference": pretty(first["reference"])[0],
            "labelled": [a for a in shown if a["label"]], "before": before, "after": after}


def _reasoning(score: dict[str, Any]) -> list[str]:
    """A judge's reasoning from a score's details (one string, or one per order asked)."""
    found = (score.get("details") or {}).get("reasoning")
    return [str(r) for r in found] if isinstance(found, list) else [str(found)] if found else []


def compare_page(v: Viewer, run_a: str, run_b: str, params: dict[str, str]) -> dict[str, Any]:
    from evals.report.html import place_figures

    a, b = v.run(run_a), v.run(run_b)
    key = ("compare", a.id, b.id, queries.run_state(v.store, a.id), queries.run_state(v.store, b.id))
    source, sections, figures, counts = v.memo.get(key, lambda: _comparison(v, a.id, b.id))
    outcome = params.get("outcome", "changed") if params.get("outcome") in OUTCOMES else "changed"
    page = queries.outcomes_page(v.store, a.id, b.id, ("regressed", "improved") if outcome == "changed"
                                 else (outcome,), counts, _int(params.get("page"), 1))
    items, rest = place_figures(sections, figures)
    return {"title": f"{a.model} (A) vs {b.model} (B)", "a": a, "b": b, "items": items, "rest": rest,
            "source": source, "outcome": outcome, "outcomes": OUTCOMES, "page": page,
            "rows": _side_by_side(v, a.id, b.id, page.rows), "params": params,
            "repeated": queries.repeated(v.store, a.id) or queries.repeated(v.store, b.id),
            "word_diff_max": WORD_DIFF_MAX, "line_diff_max": LINE_DIFF_MAX}


def _comparison(v: Viewer, run_a: str, run_b: str) -> tuple[str, list[Any], list[Any], dict[str, int]]:
    """What the compare page shows of `evals compare`: where the settings came from, the sections, the figures;
    and the examples per outcome."""
    from evals.analyse.decide import compare_stored
    from evals.report.html import comparison_figures
    from evals.report.sections import comparison_sections

    cmp, verdict, source = compare_stored(run_a, run_b, v.store)
    sections = [s for s in comparison_sections(cmp, verdict, 0) if not s.title.startswith(("Improved", "Regressed"))]
    return source, sections, comparison_figures(cmp, verdict), queries.outcome_counts(v.store, run_a, run_b)


def _side_by_side(v: Viewer, run_a: str, run_b: str, rows: list[queries.OutcomeRow]) -> list[dict[str, Any]]:
    """The page's examples with both runs' answers (their first attempts), what differs marked (see diff_pieces)."""
    def side(found: dict[str, Any]) -> str:
        return f"error: {found['error']}" if found.get("error") else found.get("output") or ""

    found_a = v.store.outputs(run_a, [(r.example_id, r.attempt_a) for r in rows])
    found_b = v.store.outputs(run_b, [(r.example_id, r.attempt_b) for r in rows])
    shown = []
    for r in rows:
        oa, ob = found_a.get((r.example_id, r.attempt_a), {}), found_b.get((r.example_id, r.attempt_b), {})
        diff = v.diff(side(oa), side(ob))
        shown.append({"id": r.example_id, "outcome": r.outcome.replace("-", " "), "a": diff.a, "b": diff.b,
                      "by": diff.by, "scores_a": oa.get("scores", {}), "scores_b": ob.get("scores", {}),
                      "pass_a": r.pass_a, "pass_b": r.pass_b})
    return shown


def checks_index(v: Viewer) -> dict[str, Any]:
    tasks = [r[0] for r in v.store.database.execute(
        "SELECT task FROM checks UNION SELECT task FROM baselines ORDER BY 1")]
    return {"title": "Checks", "tasks": tasks}


def checks_page(v: Viewer, task: str) -> dict[str, Any]:
    from evals.report.check import history_section, history_title, trend_figure
    from evals.report.html import place_figures

    records = v.store.checks(task)
    baselines = v.store.baselines(task, current_only=False)
    current = {b.id for b in v.store.baselines(task)}
    key = ("trend", task, records[-1].id if records else None)
    figure = v.memo.get(key, lambda: trend_figure(records))
    items, rest = place_figures([history_section(records)], [figure])
    return {"title": history_title(task, None), "task": task, "items": items, "rest": rest,
            "checks": list(reversed(records)), "baselines": baselines, "current": current}


def curves_page(v: Viewer, root: Path | None = None) -> dict[str, Any]:
    """Every learning curve in finetune/curves/ below where the viewer runs (`evals finetune --curve`): its answer,
    table and figure, memoised per file version. A file that does not read as a curve is named with why."""
    from evals.analyse.learning_curve import CURVES_ROOT
    from evals.report.curve import curve_figure, curve_sections, curve_title
    from evals.report.html import place_figures

    shown = []
    for file in sorted((root or CURVES_ROOT).glob("*/curve.json")):
        try:
            stamp = file.stat().st_mtime_ns
            record = json.loads(file.read_text(encoding="utf-8"))
            items, rest = v.memo.get(("curve", str(file), stamp), lambda r=record, f=file: place_figures(
                curve_sections(r, str(f)), [curve_figure(r)]))
            shown.append({"file": str(file), "title": curve_title(record), "sections": items, "rest": rest})
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
            shown.append({"file": str(file), "title": str(file), "error": f"not a learning curve ({e})"})
    return {"title": "Learning curves", "curves": shown}


def labels_jsonl(v: Viewer, run_id: str | None) -> str:
    """Every current human label (of one run, if given) as JSON lines, with the run's task and model."""
    runs: dict[str, Any] = {}
    lines = []
    for lab in v.store.labels(v.run(run_id).id if run_id else None):
        if lab.run_id not in runs:
            runs[lab.run_id] = v.store.get_run(lab.run_id)
        r = runs[lab.run_id]
        lines.append(json.dumps({"run_id": lab.run_id, "task": r.task, "model": r.model, "example_id": lab.example_id,
                                 "attempt": lab.attempt, "label": lab.label, "comment": lab.comment,
                                 "labelled_at": lab.labelled_at}, ensure_ascii=False))
    return "".join(line + "\n" for line in lines)


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default
