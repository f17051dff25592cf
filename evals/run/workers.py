"""Worker processes, for API runs past what one process can drive (`evals run --workers N`).

One event loop here tops out near 700 calls a second, most of each call's CPU spent inside the SDK. With
`--workers N` this process starts the runs, then forks N workers (after start-up, so none imports the SDK
again): worker i takes every N-th of each run's attempts (skipping those stored), with 1/N of each model's
concurrency and 1/N of the budget, opens its own connections, response cache and store connection, and writes its results
to the same store (SQLite in WAL mode, one short transaction per result). This process shows the progress
the workers report, forwards a stop signal to them, and once they are done sets each run's status and busy
time. Only models that run elsewhere (API providers) are spread: a local model would load once per worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import multiprocessing
import os
import signal
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from evals._util import close_databases
from evals.errors import EvalsError, StorageError
from evals.providers import Provider, as_provider, create_provider
from evals.run.budget import Budget, check_budget
from evals.run.cache import ResponseCache
from evals.run.calls import RunOptions
from evals.run.progress import RunProgress
from evals.run.runner import RunJob, RunOutcome, execute_jobs, shared_calls
from evals.run.settle import settle_run
from evals.run.stop import SIGNALS, STOP, interruptible
from evals.run.store import Store
from evals.types import ModelConfig, Sample, Task

REPORT_EVERY_S = 0.2


def check_workers(workers: int, task: Task, samples: Sequence[Sample], providers: Sequence[tuple[ModelConfig, Provider]],
                  options: RunOptions, *, batch: bool = False) -> None:
    """Refuse, before any run is stored, what worker processes cannot serve: a batch, a model that runs here,
    a budget whose share per worker fits no call."""
    if batch or any(c.batch for c, _ in providers):  # a resumed run that was batched polls its batches as it started
        raise EvalsError("--batch sends a run's calls as one batch from one process; leave out --workers",
                         field="--workers")
    here = [str(c.spec) for c, p in providers if not runs_elsewhere(p)]
    if here:
        raise EvalsError(f"{', '.join(here)} run(s) in this process (each worker would load the model again): "
                         "--workers spreads only API models' calls; leave it out", field="--workers")
    if "fork" not in multiprocessing.get_all_start_methods():
        raise EvalsError("--workers needs fork(), which this platform does not have; leave it out",
                         field="--workers")
    if options.budget_usd is not None:
        share = options.budget_usd / workers
        try:
            check_budget(task, samples, [c for c, _ in providers], share)
        except EvalsError as e:
            raise EvalsError(e.message.replace(f"--budget ${share:g}", f"--budget ${options.budget_usd:g} over "
                                               f"{workers} workers (${share:g} each)"), field="--budget") from None


def cpu_bound_hint(cpu_s: float, wall_s: float, providers: Sequence[tuple[ModelConfig, Provider]],
                   cores: int | None) -> str | None:
    """When this one process's CPU, not the API, bounded a run of API calls (busy nearly all of a run of some
    seconds, on a machine with cores to spare), the suggestion to spread its calls over workers."""
    if wall_s < 5 or not cores or cores < 2 or cpu_s < 0.9 * wall_s:
        return None
    if not providers or not all(runs_elsewhere(p) for _, p in providers):
        return None
    return (f"this process was busy {min(cpu_s / wall_s, 1):.0%} of the run's {wall_s:.1f} s: its own CPU, not "
            f"the API, bounded the calls; `--workers {min(cores, 4)}` spreads them over processes (see "
            "docs/guides/scaling-up.md, Large golden sets)")


def runs_elsewhere(provider: Provider) -> bool:
    """Whether a model runs on someone else's servers (an API), so its calls can come from any process."""
    return (as_provider(provider).hardware or "").startswith("remote:")


class Relay:
    """What a worker tells the process that started it, through RunProgress's calls: progress (batched every
    REPORT_EVERY_S), notes and warnings, then its outcome or its failure."""

    def __init__(self, conn: Connection):
        self._conn = conn
        self._counts: dict[str, list[float]] = {}  # bar label -> [done, errors, cost]

    def add(self, label: str, total: int, completed: int = 0) -> str:
        return label

    def advance(self, bar: str, *, done: int = 1, cost: float = 0.0, errors: int = 0) -> None:
        counts = self._counts.setdefault(bar, [0, 0, 0.0])
        counts[0] += done
        counts[1] += errors
        counts[2] += cost

    def note(self, text: str) -> None:
        self.send("note", text)

    def warn(self, text: str) -> None:
        self.send("warn", text)

    def flush(self) -> None:
        if self._counts:
            self.send("progress", self._counts)
            self._counts = {}

    async def flush_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self.flush()

    def send(self, kind: str, payload: Any) -> None:
        self._conn.send((kind, payload))


@dataclass
class Workers:
    """Forked workers executing `jobs` (stored runs), and what they reported."""

    jobs: Sequence[RunJob]
    samples: Sequence[Sample]
    store: Store
    options: RunOptions
    processes: dict[Connection, multiprocessing.process.BaseProcess]
    stored: dict[str, int]  # run id -> attempts stored before the workers started

    def wait(self, progress: RunProgress, warn: Callable[[str], None]) -> list[RunOutcome]:
        """Show the workers' progress until every one has exited, then settle each run: its status (left to
        the caller when a signal stopped it: see evals.cli.app.running) and its busy time."""
        STOP.runs = [j.run_id for j in self.jobs]
        bars = {str(j.config.spec): progress.add(str(j.config.spec), total=len(self.samples) * j.repeats,
                                                 completed=self.stored[j.run_id]) for j in self.jobs}
        reports: list[dict[str, Any]] = []
        failures: list[tuple[str, str]] = []  # (kind: storage, user, lost or bug; message)
        said: set[Connection] = set()  # workers that reported their outcome or failure
        previous = {sig: signal.signal(sig, self._forward) for sig in SIGNALS}
        try:
            live = dict(self.processes)
            while live:
                for conn in wait(list(live)):
                    try:
                        kind, payload = conn.recv()
                    except EOFError:  # the worker exited
                        process = live.pop(conn)
                        process.join()
                        if conn not in said and STOP.received is None:  # killed (out of memory, say)
                            how = (f"was killed by {signal.Signals(-process.exitcode).name}" if process.exitcode < 0
                                   else f"exited with code {process.exitcode} before reporting")
                            failures.append(("lost", f"worker {process.name} {how}"))
                        continue
                    if kind in ("done", "error"):
                        said.add(conn)
                    if kind == "progress":
                        for label, (done, errors, cost) in payload.items():
                            progress.advance(bars[label], done=int(done), errors=int(errors), cost=cost)
                    elif kind == "note":
                        progress.note(payload)
                    elif kind == "warn":
                        warn(payload)
                    elif kind == "done":
                        reports.append(payload)
                    else:
                        failures.append(payload)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self._settle(reports, failures, warn)

    def _forward(self, sig: int, frame: Any) -> None:
        """A stop signal to this process goes to every worker (they wind down as one process would); a second
        one stops them at once."""
        STOP.received = STOP.received or sig
        for process in self.processes.values():
            if process.is_alive():
                os.kill(process.pid, sig)

    def _settle(self, reports: list[dict[str, Any]], failures: list[tuple[str, str]],
                warn: Callable[[str], None]) -> list[RunOutcome]:
        stopped = STOP.received is not None
        if failures and not stopped:
            for j in self.jobs:
                settle_run(self.store, j.run_id, "interrupted", warn)
            kind, message = failures[0]
            if kind == "lost":  # what the others and it stored is safe
                message += "; every result stored is kept: " + ", ".join(
                    f"resume with `evals run --resume {j.run_id}`" for j in self.jobs)
            raise {"storage": StorageError, "user": EvalsError, "lost": EvalsError}.get(kind, RuntimeError)(message)
        budget = Budget(self.options.budget_usd, spent_usd=sum(r["spent_usd"] for r in reports),
                        shares=len(self.processes))
        outcomes = []
        for j in self.jobs:
            parts = [o for r in reports for o in r["runs"] if o.run_id == j.run_id]
            outcome = RunOutcome(j.run_id, str(j.config.spec), "completed", budget=budget)
            for part in parts:
                outcome.done += part.done
                outcome.errors += part.errors
                outcome.paid += part.paid
                outcome.paid_usd += part.paid_usd
                outcome.left += part.left
                outcome.served += part.served
                outcome.busy_s = max(outcome.busy_s, part.busy_s)  # the workers' calls overlap in time
            statuses = {p.status for p in parts}
            outcome.status = ("interrupted" if stopped or "interrupted" in statuses
                              else "budget-stopped" if "budget-stopped" in statuses else "completed")
            concurrency = self.options.concurrency or j.provider.max_concurrency
            settle_run(self.store, j.run_id, None if stopped else outcome.status, warn, provider=j.provider,
                       concurrency=concurrency, busy_s=outcome.busy_s, served=outcome.served)
            outcomes.append(outcome)
        return outcomes


def start_workers(task: Task, samples: Sequence[Sample], jobs: Sequence[RunJob], store: Store, options: RunOptions,
                  cache: ResponseCache | None, count: int) -> Workers:
    """Fork `count` workers over `jobs`. Call it before any thread starts (the progress bars' included)."""
    share = dataclasses.replace(options, processes=count,
                                budget_usd=None if options.budget_usd is None else options.budget_usd / count)
    stored = {j.run_id: len(store.done(j.run_id)) for j in jobs}
    context = multiprocessing.get_context("fork")
    close_databases()  # no SQLite connection crosses the fork (SQLite's rule: a child would share its locks' state)
    gc.freeze()  # what start-up built stays in pages the workers share, unwritten by their collectors
    processes = {}
    for i in range(count):
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_worker, name=f"{i + 1}/{count}", daemon=True, args=(
            send, (i, count), task, samples, jobs, store.location, cache.path if cache else None, share))
        process.start()
        send.close()
        processes[receive] = process
    store.reopen()
    return Workers(jobs, samples, store, options, processes, stored)


def _worker(conn: Connection, shard: tuple[int, int], task: Task, samples: Sequence[Sample], jobs: Sequence[RunJob],
            store_path: Path | str, cache_path: Path | None, options: RunOptions) -> None:
    os.setpgid(0, 0)  # a terminal's Ctrl-C reaches the parent alone, which forwards it once
    relay = Relay(conn)
    try:
        runs, spent = asyncio.run(interruptible(_work(relay, shard, task, samples, jobs, store_path, cache_path,
                                                      options)))
        relay.flush()
        relay.send("done", {"runs": [dataclasses.replace(o, budget=None) for o in runs], "spent_usd": spent})
    except EvalsError as e:
        relay.flush()
        relay.send("error", ("storage" if isinstance(e, StorageError) else "user", str(e)))
    except (asyncio.CancelledError, KeyboardInterrupt):
        relay.flush()
    except BaseException:  # a bug: its traceback, for the parent to show
        relay.send("error", ("bug", f"worker {shard[0] + 1}/{shard[1]} failed:\n{traceback.format_exc()}"))
    finally:
        conn.close()


async def _work(relay: Relay, shard: tuple[int, int], task: Task, samples: Sequence[Sample], jobs: Sequence[RunJob],
                store_path: Path | str, cache_path: Path | None, options: RunOptions) -> tuple[list[RunOutcome], float]:
    store = Store(store_path)
    cache = ResponseCache(cache_path) if cache_path else None
    jobs = [dataclasses.replace(j, provider=create_provider(j.config)) for j in jobs]  # this process's connections
    warn = relay.warn if shard[0] == 0 else None  # one worker says what every one would
    async with shared_calls(task, samples, [(j.config, j.provider) for j in jobs], store, options, cache, None,
                            warn) as models:
        flusher = asyncio.create_task(relay.flush_every(REPORT_EVERY_S))
        try:
            runs = await execute_jobs(task, samples, jobs, store, models, relay, shard)  # type: ignore[arg-type]
        finally:
            flusher.cancel()
        return runs, models.budget.spent_usd

