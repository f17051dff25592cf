"""Baselines: the run a team accepted for a task and model, which `evals check` compares new runs with.

A baseline is a completed run, marked with `evals baseline set TASK RUN_ID`; marking another run for
the same task and model replaces it (earlier marks stay in the store as history). `--baseline latest`
instead takes the newest completed run of the model on the same golden set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evals.data.golden import samples_hash
from evals.data.tasks import declared_name, find_task_file, load_task
from evals.errors import EvalsError
from evals.run.store import BaselineRecord, RunRecord, Store
from evals.types import ModelSpec, Sample, Task

LATEST = "latest"


def find_task(name_or_path: str) -> Task | None:
    """The task TASK names, or None when its files are gone (its runs and baselines may still be stored)."""
    try:
        find_task_file(name_or_path)
    except EvalsError:
        return None
    return load_task(name_or_path)


def task_name(name_or_path: str) -> str:
    """The task's name when TASK names a task folder or file (read without loading the task, so reading the
    store's baselines and history imports nothing); otherwise TASK itself."""
    return declared_name(name_or_path) or name_or_path


def normalize_spec(spec: str) -> str:
    try:
        return str(ModelSpec.parse(spec))
    except ValueError as e:
        raise EvalsError(str(e)) from None


def set_baseline(store: Store, task: str, run: str, *, model: str | None = None,
                 note: str | None = None) -> BaselineRecord:
    """Accept a completed run of `task` as its model's baseline: a run id, or `latest`, the newest completed run
    of `model` (default: the task's check.model, else its only model with a completed run)."""
    loaded = find_task(task)
    name = loaded.name if loaded else task
    if run == LATEST:
        if model is None and loaded is not None:
            model = loaded.check.model
        if model is None:
            models = sorted({r.model for r in store.list_runs(name, None, completed=True)})
            if len(models) != 1:
                raise EvalsError(f"`latest` needs --model: task '{name}' has completed runs of "
                                 f"{', '.join(models) or 'no model'}")
            model = models[0]
        record = newest_completed_run(store, name, normalize_spec(model))
        if record is None:
            raise EvalsError(f"task '{name}' has no completed run of {model} to accept "
                             f"(see `evals runs --task {name}`)")
    else:
        record = store.get_run(run)
    if record.task != name:
        raise EvalsError(f"run {record.id} is a run of task '{record.task}', not '{name}'")
    if record.status != "completed":
        raise EvalsError(f"run {record.id} is {record.status} ({record.n_done}/{record.n_attempts} results): "
                         f"only a completed run can be a baseline; finish it with `evals run --resume {record.id}`")
    if model is not None and normalize_spec(model) != record.model:
        raise EvalsError(f"run {record.id} ran {record.model}, not {model}")
    return store.set_baseline(name, record.model, record.id, note)


def newest_completed_run(store: Store, task: str, model: str, *, golden_hash: str | None = None,
                         exclude: Sequence[str] = ()) -> RunRecord | None:
    for record in store.list_runs(task, None, model=model, completed=True):
        if record.id not in exclude and golden_hash in (None, (record.manifest.get("golden") or {}).get("hash")):
            return record
    return None


@dataclass(frozen=True)
class ResolvedBaseline:
    run: RunRecord
    model: str  # the model to check
    source: str  # how the baseline was chosen, in words


def resolve_baseline(store: Store, task: Task, samples: Sequence[Sample], *, model: str | None = None,
                     baseline: str | None = None) -> ResolvedBaseline:
    """The baseline run and the model to check: --model, else check.model, else the baseline's model.

    `baseline` is None (the accepted baseline of the task and model), `latest` (the newest completed
    run of the model on this golden set) or a run id.
    """
    spec = normalize_spec(model or task.check.model) if (model or task.check.model) else None
    if baseline not in (None, LATEST):
        record = store.get_run(baseline)
        if record.task != task.name:
            raise EvalsError(f"run {record.id} is a run of task '{record.task}', not '{task.name}'")
        if record.status != "completed":
            raise EvalsError(f"baseline run {record.id} is {record.status}; compare with a completed run")
        return ResolvedBaseline(record, spec or record.model, f"run {record.id} (--baseline)")
    if baseline == LATEST:
        if spec is None:
            raise EvalsError(f"--baseline latest needs a model: pass --model or set check.model in {task.path}")
        golden = samples_hash(samples)
        record = newest_completed_run(store, task.name, spec, golden_hash=golden)
        if record is None:
            raise EvalsError(f"no earlier completed run of {spec} on this golden set of task '{task.name}' to "
                             "compare with; run the task once first (`evals run`)")
        return ResolvedBaseline(record, spec, f"the newest completed run of {spec}, {record.id} (--baseline latest)")
    current = store.baselines(task.name, spec)
    if not current:
        hint = f"`evals baseline set {task.name} RUN_ID` accepts a completed run" + (
            f" (recent runs of {spec}: {', '.join(_recent(store, task.name, spec)) or 'none'})" if spec else "")
        which = f"task '{task.name}' and model {spec}" if spec else f"task '{task.name}'"
        raise EvalsError(f"no baseline for {which} in {store.path}: {hint}, or compare with the newest "
                         "earlier run with --baseline latest")
    if spec is None and len(current) > 1:
        raise EvalsError(f"task '{task.name}' has baselines for several models ({', '.join(b.model for b in current)});"
                         f" pass --model or set check.model in {task.path}")
    chosen = current[0]
    note = f" ({chosen.note})" if chosen.note else ""
    return ResolvedBaseline(store.get_run(chosen.run_id), chosen.model,
                            f"baseline {chosen.run_id} of {chosen.model}, set {chosen.set_at}{note}")


def _recent(store: Store, task: str, model: str, n: int = 5) -> list[str]:
    return [r.id for r in store.list_runs(task, n, model=model, completed=True)]


def paired_samples(samples: Sequence[Sample], baseline: RunRecord) -> list[Sample]:
    """The samples the baseline ran (all, or its first N with `--limit`), refusing a changed golden set."""
    golden = baseline.manifest.get("golden") or {}
    for candidate in (list(samples), list(samples[: int(golden.get("n") or 0)])):
        if candidate and samples_hash(candidate) == golden.get("hash"):
            return candidate
    raise EvalsError(f"the golden set changed since baseline run {baseline.id} (hash {str(golden.get('hash'))[:12]}, "
                     f"now {samples_hash(samples)[:12]}): a check pairs the same examples, so accept a run on the "
                     "current golden set as the new baseline (`evals run`, then `evals baseline set`)")
