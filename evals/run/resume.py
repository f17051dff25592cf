"""Finishing an interrupted run as it started: the same golden set, model settings and metrics."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from evals.data.golden import load_samples, samples_hash
from evals.data.tasks import load_task
from evals.errors import EvalsError
from evals.providers import create_provider
from evals.run.budget import Budget
from evals.run.cache import ResponseCache
from evals.run.calls import RunOptions
from evals.run.manifest import changed_settings, config_to_dict, plain, recorded_metrics
from evals.run.progress import RunProgress
from evals.run.runner import RunJob, RunOutcome, execute_jobs, shared_calls
from evals.run.store import Store
from evals.types import ModelConfig, Sample, Task


def resumed_config(task: Task, recorded: dict, run_id: str) -> ModelConfig:
    """The model as the task configures it now (the manifest holds no secrets to rebuild it from), provided
    every setting the manifest recorded is unchanged: same model, server, params and options."""
    # batching is how the run was asked for (--batch), not a setting of the task: it resumes as it started
    config = dataclasses.replace(task.model_config(recorded["spec"]), batch=bool(recorded.get("batch")))
    now = plain(config_to_dict(config))
    changed = changed_settings(recorded, now)
    if changed:
        raise EvalsError(f"the settings of {config.spec} changed since run {run_id} started ({', '.join(changed)}: "
                         f"now {', '.join(f'{k}={now.get(k)!r}' for k in changed)}); start a new run instead of "
                         "resuming")
    return config


def resume_job(run_id: str, store: Store, task: Task | None = None) -> tuple[Task, list[Sample], RunJob]:
    """An interrupted run as it started: the task with the metrics it was scored with, its golden set (refused
    if changed) and its model (refused if its settings changed). `task`: the task the user named (`decide`
    passes its own); None loads the one the manifest names (`evals run --resume RUN_ID`)."""
    record = store.get_run(run_id)
    manifest = record.manifest
    task = task or load_task(manifest["task"]["path"])
    # score with the metrics the run started with (a --judge override included), not today's task.yaml
    recorded = recorded_metrics(manifest, task, record.id)
    task = dataclasses.replace(task, metrics=recorded or task.metrics,
                               judge=(manifest.get("checks") or {}).get("judge", task.judge))
    samples = load_samples(task, limit=manifest["golden"]["n"])  # a run with `--limit` hashed its first N examples
    if samples_hash(samples) != manifest["golden"]["hash"]:
        raise EvalsError(f"the golden set of task '{task.name}' changed since run {record.id}; "
                         "start a new run instead of resuming")
    config = resumed_config(task, manifest["model"], record.id)
    return task, samples, RunJob(config, create_provider(config), record.id, int(manifest.get("repeats", 1)))


async def resume_run(
    run_id: str,
    store: Store,
    options: RunOptions,
    *,
    cache: ResponseCache | None = None,
    progress: RunProgress | None = None,
    warn: Callable[[str], None] | None = None,
    budget: Budget | None = None,
    task: Task | None = None,
) -> RunOutcome:
    """Finish an interrupted run: only examples without a stored result (or with an error) are called
    (`task`: as resume_job takes it)."""
    task, samples, job = resume_job(run_id, store, task)
    async with shared_calls(task, samples, [(job.config, job.provider)], store, options, cache, budget, warn) as models:
        [outcome] = await execute_jobs(task, samples, [job], store, models, progress)
    return outcome
