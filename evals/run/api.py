"""The one "run a task" entry below the CLI: which models run (those that cannot run here skipped, the embedded
default when none of the task's can), in this process or over worker processes. `evals run`, `evals check` and
`evals decide` call `execute`; `run` is the public `evals.run` a notebook calls."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import gc
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager

from evals.errors import EvalsError

if TYPE_CHECKING:
    import pandas as pd

    from evals.providers import Provider
    from evals.run.budget import Budget
    from evals.run.cache import ResponseCache
    from evals.run.calls import RunOptions
    from evals.run.progress import RunProgress
    from evals.run.runner import RunOutcome, Skipped
    from evals.run.store import Store
    from evals.types import ModelConfig, Sample, Task

Progress = Callable[[], ContextManager["RunProgress"]]


@dataclass
class Selection:
    """What a run of a task will call: the task (with its judge), its examples, each model's provider, the
    models skipped (and why), and whether the embedded default stands in for a task none of whose models can run."""

    task: Task
    samples: list[Sample]
    ready: list[tuple[ModelConfig, Provider]]
    skipped: list[Skipped] = field(default_factory=list)
    fell_back: bool = False


def select_models(task: Task, models: Sequence[str] | None = None, *, judge: str | None = None,
                  limit: int | None = None, batch: bool = False, prompt: str | None = None,
                  warn: Callable[[str], None] | None = None) -> Selection:
    """The task (with `judge`), its first `limit` examples, and each model's provider: the task's models or
    `models` (each with the named `prompt`), those that cannot run here skipped, the embedded default when none
    of the task's can."""
    from evals.data.golden import load_samples
    from evals.run.runner import DEFAULT_MODEL, open_providers, require_providers

    if judge:
        from evals.metrics import with_judge

        task = with_judge(task, judge)
    samples = load_samples(task, limit=limit)  # bad data fails here, before any model loads
    try:
        configs = [task.model_config(m) for m in models] if models else list(task.models)
    except ValueError as e:
        raise EvalsError(str(e), field="--model") from None
    if batch:
        configs = with_batch(configs, warn)

    def prompted(config: Any) -> Any:
        return config if prompt is None else dataclasses.replace(config, prompt=prompt)

    default = prompted(task.model_config(DEFAULT_MODEL))
    task.prompt_for(default)  # a named prompt the task lacks is refused before any model loads
    configs = [prompted(c) for c in configs]
    ready, skipped = open_providers(configs or [default])
    fell_back = not ready and not models
    if fell_back:
        ready = require_providers([default])
    if not ready:
        raise EvalsError("none of the requested models can run here: "
                         + "; ".join(f"{s.spec}: {s.reason}" for s in skipped))
    return Selection(task, samples, ready, skipped, fell_back)


def with_batch(configs: Sequence[ModelConfig], warn: Callable[[str], None] | None = None) -> list[ModelConfig]:
    """These models with batch on where their provider has a Batch API; the others are named (`warn`) and run as
    usual. When none has one, it is refused before anything is called."""
    from evals.providers import has_batch_api, no_batch_api

    without = [c for c in configs if not has_batch_api(c.spec.provider)]
    if len(without) == len(configs):
        raise EvalsError("; ".join(f"{c.spec}: {no_batch_api(c.spec.provider)}" for c in without), field="--batch")
    for c in without:
        if warn:
            warn(f"{c.spec}: the {c.spec.provider} provider has no Batch API; it runs without --batch")
    return [c if c in without else dataclasses.replace(c, batch=True) for c in configs]


@contextlib.contextmanager
def quiet_progress() -> Iterator[RunProgress]:
    from evals.run.progress import RunProgress

    with RunProgress(mode="none") as bars:
        yield bars


def run_sync(work: Any) -> Any:
    """Run model calls to the end, stopping cleanly on SIGINT or SIGTERM. What is imported before is frozen out
    of the collector, which the run would otherwise walk again at every full collection. Where an event loop
    already runs in this thread (a notebook's), the calls run on a loop of their own in another thread, and an
    interrupt of this one (the kernel's Ctrl-C) winds them down as a signal would."""
    from evals.run.stop import STOP, interruptible

    gc.freeze()
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(interruptible(work))
    loop: concurrent.futures.Future[asyncio.AbstractEventLoop] = concurrent.futures.Future()
    done: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def drive() -> None:
        with asyncio.Runner() as runner:
            loop.set_result(runner.get_loop())
            try:
                done.set_result(runner.run(interruptible(work, handle_signals=False)))
            except BaseException as e:  # noqa: BLE001  (handed to the waiting thread as it is)
                done.set_exception(e)

    threading.Thread(target=drive, name="evals-run", daemon=True).start()
    while True:
        try:
            return done.result()
        except KeyboardInterrupt:
            if STOP.interrupt is None:
                raise
            loop.result().call_soon_threadsafe(STOP.interrupt, signal.SIGINT)


def execute(task: Task, samples: Sequence[Sample], ready: Sequence[tuple[ModelConfig, Provider]], store: Store,
            options: RunOptions, *, cache: ResponseCache | None = None, workers: int = 1,
            budget: Budget | None = None, progress: Progress = quiet_progress,
            warn: Callable[[str], None] | None = None) -> list[RunOutcome]:
    """One new stored run per model: in this process, or with `workers` > 1 over that many processes (each with
    1/N of the concurrency and of what is left of `budget`). `progress` opens the bars (after the fork)."""
    from evals.run.runner import create_runs, run_task

    if workers > 1:
        from evals.run.workers import check_workers, start_workers

        if budget is not None and budget.limit_usd is not None:  # what earlier calls of the command left
            options = dataclasses.replace(options, budget_usd=max(budget.limit_usd - budget.spent_usd, 0.0))
        check_workers(workers, task, samples, ready, options, batch=any(c.batch for c, _ in ready))
        jobs = create_runs(task, samples, ready, store, dataclasses.replace(options, processes=workers))
        pool = start_workers(task, samples, jobs, store, options, cache, workers)
        with progress() as bars:
            return pool.wait(bars, warn or (lambda _: None))
    from evals.run.workers import cpu_bound_hint

    if budget is not None:  # carried into this call's event loop (its condition belongs to the one it was made in)
        from evals.run.budget import Budget

        budget = Budget(limit_usd=budget.limit_usd, spent_usd=budget.spent_usd, max_calls=budget.max_calls,
                        calls=budget.calls)
    with progress() as bars:
        wall, cpu = time.perf_counter(), time.process_time()
        outcomes = run_sync(run_task(task, samples, ready, store, options, cache=cache, progress=bars, warn=warn,
                                     budget=budget))
        hint = cpu_bound_hint(time.process_time() - cpu, time.perf_counter() - wall, ready, os.cpu_count())
        if hint:
            bars.note(hint)
    return outcomes


def run(task: str | Path | Task, models: Sequence[str] | None = None, *, repeats: int | None = None,
        workers: int = 1, budget: float | None = None, store: str | Path | Store | None = None,
        limit: int | None = None, judge: str | None = None, prompt: str | None = None, batch: bool = False,
        concurrency: int | None = None, timeout: float = 300.0, retries: int = 16, retry_for: float = 600.0,
        cache: bool = True, cache_path: str | Path | None = None,
        warn: Callable[[str], None] | None = None) -> list[pd.DataFrame]:
    """Run a task's golden set against its models (or `models`), score and store every answer, as `evals run`
    does; each stored run back as `evals.load_run` reads it. Models that cannot run here are skipped (said
    through `warn`, default: a Python warning); the embedded default runs when none of the task's can."""
    import warnings

    from evals.data.tasks import load_task
    from evals.run.cache import ResponseCache
    from evals.run.calls import RunOptions
    from evals.run.store import Store, load_run

    if warn is None:
        def warn(message: str) -> None:
            warnings.warn(message, stacklevel=3)

    loaded = task if not isinstance(task, str | Path) else load_task(str(task))
    db = store if isinstance(store, Store) else Store(None if store is None else Path(store))
    chosen = select_models(loaded, models, judge=judge, limit=limit, batch=batch, prompt=prompt, warn=warn)
    for s in chosen.skipped:
        warn(f"skipped {s.spec}: {s.reason}")
    if chosen.fell_back:
        warn(f"no model of the task can run here; running the embedded default {chosen.ready[0][0].spec}")
    options = RunOptions(concurrency=concurrency, timeout_s=timeout, max_retries=retries, budget_usd=budget,
                         retry_for_s=retry_for, repeats=repeats)
    response_cache = ResponseCache(None if cache_path is None else Path(cache_path)) if cache else None
    outcomes = execute(chosen.task, chosen.samples, chosen.ready, db, options, cache=response_cache,
                       workers=workers, warn=warn)
    return [load_run(o.run_id, db) for o in outcomes]
