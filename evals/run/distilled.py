"""What a distill produced, from its stored run: the answers kept, every rejection with its reason, what the
teacher and judge used and cost, and (where inputs carry references) how the labels match them; written as a
train file and its provenance manifest beside it."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evals._util import write_atomic
from evals.metrics.structure import NoAnswer, NotJSON, parse_json_answer
from evals.run.distill import DistillPlan, label_matches, prompt_hash
from evals.run.manifest import git_state, package_versions
from evals.run.store import Store
from evals.types import CHECKS, Usage

OVERLAP = "overlaps the golden set"
TEACHER_ERROR = "the teacher's call failed"
NOT_JSON = "not JSON (the task's references are)"


@dataclass(frozen=True)
class Rejection:
    id: str
    line: int
    reason: str  # one of a few kinds, counted: OVERLAP, TEACHER_ERROR, NOT_JSON, "<filter id> failed", ...
    detail: str = ""  # this example's particulars: the filter's explanation, the golden id it repeats

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "line": self.line, "reason": self.reason, "detail": self.detail}


def _plus(u: Usage, calls: int, input_tokens: int, output_tokens: int, cost_usd: float, spent_usd: float) -> Usage:
    return Usage(u.calls + calls, u.input_tokens + input_tokens, u.output_tokens + output_tokens,
                 u.cost_usd + cost_usd, u.spent_usd + spent_usd)


@dataclass
class Distilled:
    run_id: str
    status: str  # the run's: completed, budget-stopped, interrupted
    kept: list[dict[str, Any]] = field(default_factory=list)  # train-file rows, in input order
    rejected: list[Rejection] = field(default_factory=list)
    pending: int = 0  # inputs the teacher has not answered yet (budget, interruption)
    teacher: Usage = field(default_factory=Usage)
    judge: Usage = field(default_factory=Usage)
    model_versions: list[str] = field(default_factory=list)
    matched: dict[str, list[int]] = field(default_factory=dict)  # "labelled" / "kept" -> [matches, n] with references

    @property
    def reasons(self) -> dict[str, int]:
        return dict(Counter(r.reason for r in self.rejected).most_common())


def _rejection(plan: DistillPlan, row: Any, line: int) -> Rejection | None:
    """Why the teacher's answer is not kept, or None when every filter passes."""
    thresholds = {f.id: f.threshold for f in plan.filters}
    if row.error:
        return Rejection(row.example_id, line, TEACHER_ERROR, str(row.error))
    for score_id in (*(f.id for f in plan.filters), CHECKS):
        score = row.scores.get(score_id)
        if score_id == CHECKS and score is None:
            continue
        threshold = thresholds.get(score_id, 1.0)
        if score is None or score.get("error"):
            why = (score or {}).get("error") or "not scored"
            return Rejection(row.example_id, line, f"{score_id} could not score it", str(why))
        if score.get("value") is None or score["value"] < threshold:
            return Rejection(row.example_id, line, f"{score_id} failed", str(score.get("explanation") or ""))
    return None


def collect(plan: DistillPlan, store: Store, run_id: str) -> Distilled:
    """The distill's outcome as its run holds it now (a run stopped early: what it has)."""
    record = store.get_run(run_id)
    frame = store.results_frame(run_id, texts=("output",))
    rows = {r.example_id: r for r in frame.itertuples(index=False)}
    out = Distilled(run_id, record.status)
    for o in plan.overlap:
        out.rejected.append(Rejection(o.train_id, plan.lines[o.train_id], OVERLAP, f"golden {o.golden_id} ({o.how})"))
    versions = set()
    t = plan.task
    for sample in plan.samples:
        row = rows.get(sample.id)
        if row is None:
            out.pending += 1
            continue
        cost = float(row.cost_usd or 0.0)
        out.teacher = _plus(out.teacher, 1, int(row.input_tokens or 0), int(row.output_tokens or 0), cost,
                            0.0 if row.cached else cost)
        for score in row.scores.values():
            if u := score.get("usage"):
                out.judge = _plus(out.judge, u["calls"], u["input_tokens"], u["output_tokens"], u["cost_usd"],
                                  u["spent_usd"])
        if row.model_version:
            versions.add(row.model_version)
        why = _rejection(plan, row, sample.line)
        answer: Any = row.output
        calls = getattr(row, "tool_calls", None)
        if plan.task.tools and isinstance(calls, list) and calls:  # the teacher's calls are the reference
            answer = [{"name": c["name"], "arguments": c["arguments"]} for c in calls]
            answer = answer[0] if len(answer) == 1 else answer
        elif why is None and plan.structured and not plan.task.tools:  # with tools, words are a reference too
            try:
                answer = parse_json_answer(row.output)
            except (NotJSON, NoAnswer) as e:
                why = Rejection(sample.id, sample.line, NOT_JSON, str(e))
        matched = None
        if plan.with_references and sample.reference is not None and not row.error:
            matched = label_matches(plan, row.scores)
            _tally(out.matched, "labelled", matched)
        if why is not None:
            out.rejected.append(why)
            continue
        if matched is not None:
            _tally(out.matched, "kept", matched)
        out.kept.append({t.id_field: sample.id, **sample.fields, t.reference_field: answer})
    out.rejected.sort(key=lambda r: r.line)
    out.model_versions = sorted(versions)
    return out


def _tally(counts: dict[str, list[int]], key: str, matched: bool) -> None:
    pair = counts.setdefault(key, [0, 0])
    pair[0] += matched
    pair[1] += 1


def manifest_path(out: Path) -> Path:
    """FILE.jsonl -> FILE.manifest.json, beside it."""
    return out.with_name(out.name.removesuffix(out.suffix) + ".manifest.json")


def manifest(plan: DistillPlan, done: Distilled, out: Path, quality: dict[str, Any] | None) -> dict[str, Any]:
    """Provenance: who labelled what with which prompt and filters, what was kept and rejected and why, the cost."""
    return {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "task": {"name": plan.task.name, "path": str(plan.task.path), "hash": plan.task.hash},
        "inputs": {"file": str(plan.inputs), "read": len(plan.lines), "hash": plan.inputs_hash},
        "teacher": {"spec": str(plan.teacher.spec), "model_versions": done.model_versions,
                    "params": plan.teacher.params.as_dict(), "prompt_sha256": prompt_hash(plan),
                    "few_shot": plan.teacher.few_shot},
        "run": {"id": done.run_id, "status": done.status},
        "filters": [f.as_dict() for f in plan.filters] + (
            [{"id": CHECKS, "label": "each input's own checks"}] if any(s.checks for s in plan.samples) else []),
        "decontamination": "inputs whose rendered user turn equals a golden input's, exactly or after normalising "
                           "whitespace and case, are dropped (evals/data/contamination.py, as evals finetune)",
        "counts": {"inputs": len(plan.lines), "overlap_dropped": len(plan.overlap), "to_label": len(plan.samples),
                   "labelled": len(plan.samples) - done.pending, "pending": done.pending, "kept": len(done.kept),
                   "rejected": len(done.rejected), "rejected_by_reason": done.reasons},
        "usage": {"teacher": asdict(done.teacher), "judge": asdict(done.judge),
                  "total_cost_usd": done.teacher.cost_usd + done.judge.cost_usd,
                  "note": "cost_usd: as billed when each call was answered; spent_usd: what the calls paid for "
                          "when they were made (a cache hit pays nothing)"},
        "label_quality": quality,
        "rejections": [r.as_dict() for r in done.rejected],
        "output": str(out),
        "versions": package_versions(),
        "git": git_state(plan.task.dir),
    }


def write(plan: DistillPlan, done: Distilled, out: Path, quality: dict[str, Any] | None) -> Path:
    """The train file (kept rows, one JSON object a line) and its manifest, each written whole or not at all."""
    write_atomic(out, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in done.kept))
    path = manifest_path(out)
    write_atomic(path, json.dumps(manifest(plan, done, out, quality), indent=2, sort_keys=True,
                                  ensure_ascii=False) + "\n")
    return path
