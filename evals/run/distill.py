"""`evals distill`: label inputs with a teacher model and keep the answers that pass reference-free filters.

The teacher is asked with the task's prompt through the runner, as one stored run (cache, concurrency, budget,
retries, progress; an identical command continues its unfinished run). Inputs that overlap the golden set are
dropped first, by the rules `evals finetune` refuses them by (evals/data/contamination.py). An answer is kept when
every filter passes: metrics that read only the answer (json_valid, json_schema, regex), the input's own checks,
and a judge's score. Which answers were kept, what was rejected and why, and what it cost is `Distilled`;
evals/run/distilled.py writes it out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.data.contamination import Overlap, find_overlap
from evals.data.golden import load_samples, read_rows, samples_hash
from evals.data.tools import check_reference, line_history
from evals.errors import EvalsError
from evals.metrics import build_metrics, metrics, names_code, passes
from evals.metrics.checks import parse_checks
from evals.run.budget import Budget
from evals.run.cache import ResponseCache
from evals.run.calls import RunOptions
from evals.run.manifest import build_manifest, changed_settings
from evals.run.progress import RunProgress
from evals.run.runner import RunJob, RunOutcome, create_runs, execute_jobs, require_providers, shared_calls
from evals.run.store import Store
from evals.types import CHECKS, MetricSpec, ModelConfig, Sample, Task

FILTER = "filter."  # a filter's score id: filter.<name>; the judge's is filter.judge
JUDGE = FILTER + "judge"
REFERENCE_FREE = ("json_valid", "json_schema", "regex", "answer_judge", "openai_tools_call")  # metrics that never read a reference
DEFAULT_RUBRIC = ("The answer does what the instructions ask for this input: correct, complete, and in the "
                  "format asked for.")
SAME_RUN = ("model", "prompt", "params", "metrics", "pass")  # what an unfinished run must share to be continued


@dataclass(frozen=True)
class Filter:
    """One reference-free filter: its score id, the metric (name and arguments) and the score that passes."""

    id: str
    metric: MetricSpec
    threshold: float = 1.0
    label: str = ""  # how it reads in the manifest: "json_valid", "judge openai:gpt-4o >= 4 of 1-5"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "metric": self.metric.name, "args": self.metric.args, "threshold": self.threshold,
                "label": self.label}


@dataclass(frozen=True)
class DistillPlan:
    """What a distill labels and how: the task as the run scores it (filters, then the task's own metrics when
    inputs carry references), the teacher, the inputs left after decontamination, and those dropped."""

    task: Task  # the original task
    run_task: Task  # named <task>.distill, scored with the filters (and the task's metrics, for label quality)
    teacher: ModelConfig
    inputs: Path
    samples: list[Sample]  # to label, in input order
    overlap: list[Overlap]  # inputs dropped: they are golden inputs
    lines: dict[str, int]  # input id -> its line, for every input read
    filters: list[Filter]
    with_references: bool
    structured: bool  # the task's references are JSON: the teacher's answer is kept parsed

    @property
    def inputs_hash(self) -> str:
        return samples_hash(self.samples)

    @property
    def reference_rule(self) -> dict[str, float]:
        """The task's own pass rule, without examples' checks: a label's match with the input's reference."""
        return {k: v for k, v in self.task.pass_rule.items() if k != CHECKS}


def read_inputs(task: Task, path: Path) -> tuple[list[Sample], dict[str, int]]:
    """The inputs to label: each line needs the task's prompt fields; an id and a reference are optional (a line
    without an id is known as line-N), and the task's checks field, where a line has one, holds its own checks."""
    rows, lines, where = read_rows(path, "inputs file")
    samples, seen, built = [], {}, set()
    for row, line in zip(rows, lines, strict=True):
        for name in task.input_fields:
            if row.get(name) is None or row.get(name) == "":
                raise EvalsError("missing or empty", file=where, line=line, field=name)
        raw_id = row.get(task.id_field)
        sample_id = f"line-{line}" if raw_id is None or raw_id == "" else str(raw_id)
        if sample_id in seen:
            raise EvalsError(f"duplicate id '{sample_id}' (first on line {seen[sample_id]})", file=where, line=line,
                             field=task.id_field)
        seen[sample_id] = line
        checks = ()
        if task.checks_field and row.get(task.checks_field) is not None:
            checks = parse_checks(row[task.checks_field], task, file=where, line=line, built=built)
        reference = row.get(task.reference_field)
        skip = (task.id_field, task.reference_field, task.checks_field, task.human_field)
        history = line_history(row, task, file=where, line=line)
        if task.tools and reference not in (None, ""):
            check_reference(reference, task, file=where, line=line, field=task.reference_field)
        samples.append(Sample(id=sample_id, fields={k: v for k, v in row.items() if k not in skip},
                              reference=None if reference == "" else reference, line=line, checks=checks,
                              messages=history))
    if not samples:
        raise EvalsError("no inputs to label", file=where)
    return samples, seen


def _argument(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_filter(text: str, task: Task) -> Filter:
    """`--filter NAME` or `NAME,key=value,...`: one of the task's metrics by id, or a registered metric by name,
    either of which must never read the reference (REFERENCE_FREE)."""
    name, _, rest = text.strip().partition(",")
    args = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise EvalsError(f"'{text}': expected NAME or NAME,key=value,... (e.g. json_schema,schema=schema.json)",
                             field="--filter")
        args[key.strip()] = _argument(value.strip())
    own = next((m for m in task.metrics if m.id == name), None)
    spec = own if own is not None and not args else MetricSpec(id=name, name=name, args=args)
    if names_code(spec.name) and own is None:
        raise EvalsError(f"'{name}' names code; a filter is one of the task's metrics or a registered metric",
                         field="--filter")
    if spec.name not in REFERENCE_FREE and not names_code(spec.name):
        metrics.get(spec.name)  # an unknown name: the registry's "did you mean"
        raise EvalsError(f"'{name}' ({spec.name}) compares the answer with a reference, which a new input lacks; "
                         f"reference-free filters: {', '.join(REFERENCE_FREE)} (or --judge SPEC --min-score X)",
                         field="--filter")
    return Filter(FILTER + name, dataclasses.replace(spec, id=FILTER + name), 1.0, name + "".join(
        f" {k}={v}" for k, v in spec.args.items()))


def judge_filter(task: Task, judge: str, min_score: float, rubric: str | None) -> Filter:
    """The judge's 1-5 score of each answer, seeing only the input and the answer (answer_judge), kept from
    `min_score` up. The rubric: --rubric (text or a file), else the task's first judge metric's, else a plain one."""
    if not 1 <= min_score <= 5:
        raise EvalsError(f"--min-score is on the judge's 1-5 scale, got {min_score:g}", field="--min-score")
    if rubric is not None and Path(rubric).is_file():
        rubric = Path(rubric).read_text(encoding="utf-8")
    if rubric is None:
        rubric = next((m.args["rubric"] for m in task.metrics if m.name in ("rubric_judge", "answer_judge")
                       and isinstance(m.args.get("rubric"), str)), DEFAULT_RUBRIC)
    spec = MetricSpec(JUDGE, "answer_judge", {"rubric": rubric, "judge": judge, "scale": "1-5"})
    return Filter(JUDGE, spec, (min_score - 1) / 4, f"judge {judge} >= {min_score:g} of 1-5")


def plan_distill(task: Task, teacher: str, *, inputs: Path | None = None, n: int | None = None,
                 filters: Sequence[str] = (), judge: str | None = None, min_score: float | None = None,
                 rubric: str | None = None, prompt_of: str | None = None) -> DistillPlan:
    """Check everything before a call: the inputs (file, line and field of a mistake), the filters, the teacher.
    `prompt_of`: the task entry whose prompt settings (system prompt, few-shot turns) the teacher gets."""
    if inputs is None:
        if not task.train:
            raise EvalsError("no --inputs given and the task has no train file to take inputs from",
                             file=task.path, field="dataset.train")
        inputs = task.dir / task.train
    try:
        config = task.model_config(teacher)
        variant = task.model_config(prompt_of) if prompt_of else config
    except ValueError as e:
        raise EvalsError(str(e), field="--teacher") from None
    config = dataclasses.replace(config, system=variant.system, few_shot=variant.few_shot)
    samples, lines = read_inputs(task, inputs)
    golden = load_samples(task)
    overlap = find_overlap(task, samples, golden)
    dropped = {o.train_id for o in overlap}
    samples = [s for s in samples if s.id not in dropped][:n]
    if not samples:
        raise EvalsError("every input overlaps the golden set: nothing is left to label", file=inputs)
    chosen = [parse_filter(f, task) for f in filters]
    if min_score is not None and judge is None:
        raise EvalsError("--min-score needs --judge SPEC (the model that scores each answer)", field="--min-score")
    if judge is not None:
        chosen.append(judge_filter(task, judge, 4.0 if min_score is None else min_score, rubric))
    if len({f.id for f in chosen}) < len(chosen):
        raise EvalsError("a filter is named twice", field="--filter")
    with_references = any(s.reference is not None for s in samples)
    run_task = dataclasses.replace(
        task, name=f"{task.name}.distill",
        metrics=tuple(f.metric for f in chosen) + (task.metrics if with_references else ()),
        pass_rule={f.id: f.threshold for f in chosen})
    build_metrics(run_task)  # a bad argument or an unknown metric, now rather than after the teacher was paid
    structured = isinstance(golden[0].reference, (dict, list))
    return DistillPlan(task, run_task, config, inputs, samples, overlap, lines, chosen, with_references, structured)


def unfinished_run(store: Store, plan: DistillPlan) -> tuple[str, str] | None:
    """(run id, status) of the newest run of this very distill (same inputs, teacher settings, prompt, filters)."""
    wanted = build_manifest(plan.run_task, plan.teacher, "", plan.inputs_hash, len(plan.samples))
    for record in store.list_runs(plan.run_task.name, None, model=str(plan.teacher.spec)):
        m = record.manifest
        if (m.get("golden") or {}).get("hash") == plan.inputs_hash and not changed_settings(
                {k: m.get(k) for k in SAME_RUN}, {k: wanted.get(k) for k in SAME_RUN}):
            return record.id, record.status
    return None


async def label(plan: DistillPlan, store: Store, options: RunOptions, *, cache: ResponseCache | None = None,
                progress: RunProgress | None = None, warn: Callable[[str], None] | None = None,
                budget: Budget | None = None, on_start: Callable[[str, str | None], None] | None = None) -> RunOutcome:
    """Ask the teacher every input not yet answered in this distill's run (a new one, or the newest unfinished or
    finished one of the same distill, which is continued), scoring each answer with the filters.
    `on_start(run_id, status it had or None)` is told which run before any call."""
    [(config, provider)] = require_providers([plan.teacher])
    options = dataclasses.replace(options, repeats=1)  # one label an input, whatever the task's `repeats`
    found = unfinished_run(store, plan)
    async with shared_calls(plan.run_task, plan.samples, [(config, provider)], store, options, cache, budget, warn,
                            " (choose the judge with --judge SPEC)") as models:
        if found:
            jobs = [RunJob(config, provider, found[0], 1)]
        else:
            jobs = create_runs(plan.run_task, plan.samples, [(config, provider)], store, options)
        if on_start:
            on_start(jobs[0].run_id, found[1] if found else None)
        [outcome] = await execute_jobs(plan.run_task, plan.samples, jobs, store, models, progress)
    return outcome


def prompt_hash(plan: DistillPlan) -> str:
    """sha256 of the prompt the teacher got: system prompt, user template and few-shot turns."""
    m = build_manifest(plan.run_task, plan.teacher, "", "", 0)["prompt"]
    if not plan.teacher.few_shot:
        m["few_shot"] = []
    return hashlib.sha256(json.dumps(m, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def label_matches(plan: DistillPlan, scores: dict[str, Any]) -> bool:
    """Whether the teacher's answer matches the input's reference by the task's own pass rule."""
    from evals.types import Score

    return passes({k: Score(v.get("value")) for k, v in scores.items()}, plan.reference_rule)
