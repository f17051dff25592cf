"""Async execution of a task against models: concurrency, timeouts, retries, cache, budget, persistence.

Every result is written to the store the moment it completes, so a killed run resumes where it
stopped. A provider's final failure is recorded on the example as data; it never ends the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evals.data.golden import samples_hash
from evals.data.prompts import check_prompts, sample_messages
from evals.errors import EvalsError, MissingCredentials, RunHalted, StorageError
from evals.metrics import Metric, build_metrics, models_called, passes, runs_read, score_all
from evals.metrics.checks import CheckScorer, pass_rule_for
from evals.providers import Provider, close_provider, create_provider, prepare_provider
from evals.run.budget import Budget, check_budget, estimate_cost, round_up
from evals.run.cache import ResponseCache, cache_key, model_identity
from evals.run.calls import Breaker, RunOptions, complete_with_retries, lane_width
from evals.run.manifest import build_manifest
from evals.run.progress import RunProgress
from evals.run.scoring import StoredAnswers, score_context
from evals.run.settle import settle_run, to_stderr
from evals.run.stop import STOP, stopping
from evals.run.store import Store
from evals.types import (
    CALL_FOR,
    CallFor,
    Completion,
    ExampleResult,
    GenerateParams,
    Message,
    ModelConfig,
    ModelSpec,
    Sample,
    Score,
    Task,
)

DEFAULT_MODEL = "local:smollm2"


class BusyClock:
    """Wall time with at least one model call in flight: the denominator of a run's measured throughput."""

    def __init__(self) -> None:
        self.busy_s = 0.0
        self.served = 0  # calls answered without error
        self._in_flight = 0
        self._since = 0.0

    def start(self) -> None:
        if self._in_flight == 0:
            self._since = time.perf_counter()
        self._in_flight += 1

    def stop(self, served: bool) -> None:
        self._in_flight -= 1
        self.served += served
        if self._in_flight == 0:
            self.busy_s += time.perf_counter() - self._since


@dataclass
class RunOutcome:
    run_id: str
    model: str
    status: str  # completed, budget-stopped, interrupted
    done: int = 0  # results this session stored (counts only: a run of 100,000 examples holds none of them)
    errors: int = 0  # of them, calls that failed after retries
    paid: int = 0  # answered calls that were paid for (not cache hits)
    paid_usd: float = 0.0  # what they cost, their judges' calls included
    left: int = 0  # examples still to do (budget-stopped)
    budget: Budget | None = None  # the budget it shared
    busy_s: float = 0.0  # this session's wall time with a call in flight, and the calls it answered
    served: int = 0

    def count(self, result: ExampleResult) -> None:
        self.done += 1
        self.errors += result.completion.error is not None
        if result.completion.error is None and not result.completion.cached:
            self.paid += 1
            self.paid_usd += result.completion.cost_usd + sum(s.usage.spent_usd for s in result.scores.values()
                                                              if s.usage)

    def budget_note(self) -> str:
        """For a budget-stopped run: what was spent, what is left, and what the rest would cost."""
        b = self.budget
        rest = self.paid_usd / self.paid * self.left if self.paid else None
        note = (f"run {self.run_id} stopped with {self.left} example(s) to do: spent ${b.spent_usd:.6f} of the "
                f"${b.limit_usd:g} budget (${b.left_usd:.6f} left, " + (
                    f"split over {b.shares} workers, each share less than one more call's worst case)"
                    if b.shares > 1 else "less than one more call's worst case)"))
        if rest is not None:
            note += (f"; the rest would cost about ${rest:.6f} at the mean of the {self.paid} answered call(s), so "
                     f"continue with `evals run --resume {self.run_id} --budget {round_up(rest * 1.2 + b.left_usd)}`")
        else:
            note += f"; continue with `evals run --resume {self.run_id} --budget <more>`"
        return note


REFUSED = "not called: the run's budget is reached, or the run is stopping"


class ModelCalls:
    """Every model call of a set of runs, their own and their judges': each provider opened once (a judge
    reuses a run's provider when the spec is the same), the response cache, concurrency, the shared budget,
    timeout, retries and circuit breaker. A judge that cannot run here, or fails, answers with Completion.error."""

    def __init__(self, task: Task | None, options: RunOptions, budget: Budget, cache: ResponseCache | None = None,
                 shared: Mapping[str, Provider] | None = None, warn: Callable[[str], None] | None = None):
        self._task = task
        self.warn = warn or to_stderr  # what a run says outside its progress (a bookkeeping write that failed)
        self.options = options
        self.budget = budget
        self._cache = cache
        self._providers: dict[str, Provider | str] = dict(shared or {})  # spec -> provider, or why it can't run
        self._owned: list[Provider] = []
        self._lanes: dict[str, tuple[asyncio.Semaphore, str, Breaker]] = {}  # spec -> calls in flight, cache
        self.notices: dict[str, Callable[[str], None]] = {}  # spec -> where its breaker's pauses are said
        self.halted: RunHalted | None = None  # the store failed, or a batch cannot be polled: no new call starts
        self.stored_answers = StoredAnswers()  # stored runs a metric compares against, each read once
        self._lock = asyncio.Lock()

    def config(self, spec: str) -> ModelConfig:
        return self._task.model_config(spec) if self._task else ModelConfig(spec=ModelSpec.parse(spec))

    async def open(self, spec: str) -> Provider | str:
        """The provider for `spec`, or the reason it cannot run here."""
        async with self._lock:
            if spec not in self._providers:
                try:
                    provider = create_provider(self.config(spec))
                    self._owned.append(provider)
                    self._providers[spec] = provider
                except (EvalsError, ValueError) as e:  # MissingCredentials, a bad spec or option
                    self._providers[spec] = f"cannot run here: {e}"
            return self._providers[spec]

    @functools.cached_property
    def metrics(self) -> dict[str, Metric]:
        """The task's metrics, built once for every run these calls serve."""
        return build_metrics(self._task) if self._task else {}

    @functools.cached_property
    def checks(self) -> CheckScorer | None:
        """The scorer of examples' own checks, sharing each check metric between the runs these calls serve."""
        return CheckScorer(self._task) if self._task and self._task.checks_field else None

    async def score(self, sample: Sample, completion: Completion) -> dict[str, Score]:
        """The task's metrics and the example's own checks on one answer."""
        ctx = score_context(sample, completion, self._task, self, self.stored_answers)
        scores = await score_all(self.metrics, ctx)
        if sample.checks and self.checks is not None:
            scores |= await self.checks.score(sample.checks, ctx)
        return scores

    async def unavailable(self, metric_map: Mapping[str, Metric] | None = None) -> list[str]:
        """One line per model a metric (by default, of the task) needs that cannot run here, opened now, and per
        stored run it compares against that cannot be read."""
        problems = []
        for metric_id, metric in (self.metrics if metric_map is None else metric_map).items():
            for spec in models_called(metric):
                opened = await self.open(spec)
                if isinstance(opened, str):
                    problems.append(f"metric '{metric_id}' needs {spec}, which {opened}")
            for run_id, path in runs_read(metric):
                try:
                    self.stored_answers(run_id, path)
                except EvalsError as e:
                    problems.append(f"metric '{metric_id}' compares against run {run_id}: {e.message}")
        return problems

    async def call(self, provider: Provider, config: ModelConfig, messages: Sequence[Message],
                   params: GenerateParams, clock: BusyClock | None = None, attempt: int = 1) -> Completion | None:
        """The one model-call path, for a run's own calls and its judges' alike: the response cache (an entry
        per attempt), the model's connections (or batch) in flight, the budget, timeout and retries, then the
        cache again. None when the budget leaves no room for the call; `clock` times calls that reach the model."""
        spec = str(config.spec)
        if spec not in self._lanes:  # computed once per model: the identity hashes an adapter's files
            self._lanes[spec] = (asyncio.Semaphore(lane_width(self.options, provider)),
                                 model_identity(provider.id, config) if self._cache else "",
                                 Breaker(spec, notice=lambda text: self.say(spec, text)))
        semaphore, identity, breaker = self._lanes[spec]
        key = cache_key(identity, messages, params, attempt) if self._cache else ""
        if self._cache and (hit := self._cache.get(key)) is not None:
            return hit
        async with semaphore:
            if stopping() or self.halted:  # a signal asked the run to stop, or the store failed: no new call
                return None
            estimate = estimate_cost(config, messages, params)
            if not await self.budget.reserve(estimate):
                return None
            completion = None
            if clock:
                clock.start()
            try:
                completion = await complete_with_retries(provider, messages, params, self.options, breaker)
            except RunHalted as e:  # a batch's ids could not be kept, or its polls kept failing: no new call starts
                self.halted = self.halted or e
            finally:
                if clock:
                    clock.stop(served=completion is not None and completion.error is None)
                await self.budget.settle(estimate, completion.cost_usd if completion else 0.0)
        if completion is None:
            return None
        if self._cache:
            try:
                self._cache.put(key, provider.id, completion)
            except StorageError as e:  # the cache only saves money later: this run goes on without it
                self._cache = None
                self.say(spec, f"{e}; the response cache is off for the rest of the run")
        return completion

    def say(self, spec: str, text: str) -> None:
        """An event of `spec`'s calls, to the progress of its run (if it has one)."""
        if (notice := self.notices.get(spec)) is not None:
            notice(text)

    async def generate(self, spec: str, messages: Sequence[Message],
                       params: GenerateParams | None = None) -> Completion:
        provider = await self.open(spec)
        if isinstance(provider, str):
            return Completion(text="", error=f"{spec} {provider}")
        config = self.config(spec)
        done = await self.call(provider, config, messages, params or config.params)
        return done or Completion(text="", error=REFUSED)

    async def aclose(self) -> None:
        for provider in self._owned:
            await close_provider(provider)
        self._owned.clear()


async def execute_run(
    *,
    task: Task,
    samples: Sequence[Sample],
    config: ModelConfig,
    provider: Provider,
    store: Store,
    run_id: str,
    models: ModelCalls,
    progress: RunProgress | None = None,
    repeats: int = 1,
    shard: tuple[int, int] | None = None,
) -> RunOutcome:
    """Ask every sample `repeats` times, each attempt not yet finished in `run_id`, writing each result as it
    completes. Every model call, the run's own and its judges', goes through `models` (cache, concurrency,
    budget, retries). A `shard` (i, n) of a worker process takes its share (`attempts_to_do`) and leaves the
    run's status and busy time to the process that started the workers."""
    STOP.runs.append(run_id)
    done = store.done(run_id)
    todo = attempts_to_do(samples, repeats, done, shard)
    own = shard is None
    concurrency = lane_width(models.options, provider)
    clock = BusyClock()
    total = len(samples) * repeats
    bar = progress.add(str(config.spec), total=total, completed=total - len(todo)) if progress else None
    if progress is not None and bar is not None:
        models.notices[str(config.spec)] = progress.note
    outcome = RunOutcome(run_id, str(config.spec), "completed")
    unsaved: list[ExampleResult] = []  # answered (and paid for) but not written: the store failed

    async def one(sample: Sample, attempt: int) -> None:
        CALL_FOR.set(CallFor(run_id, sample.id, attempt))  # whom this attempt's calls serve (a batch's custom_id)
        messages = sample_messages(task.prompt_for(config), sample, config)
        params = attempt_params(task.params_for(config), attempt)
        completion = await models.call(provider, config, messages, params, clock, attempt)
        if completion is None:  # the budget is reached, a signal or the store stopped the run: still to do
            return
        scores = {}
        if completion.error is None:
            scores = await models.score(sample, completion)
            if any(REFUSED in (s.error or "") for s in scores.values()):  # a judge was not called: still to do
                return
        result = ExampleResult(sample, completion, scores, passes(scores, pass_rule_for(task, sample)) if scores
                               else False, attempt)
        try:
            if store.remote:  # a server's round trip is waited for off the event loop: the other calls go on
                await asyncio.to_thread(store.add_result, run_id, result)
            else:
                store.add_result(run_id, result)
        except StorageError as e:  # no new call starts; the calls in flight finish and are kept here
            models.halted = models.halted or e
            unsaved.append(result)
            return
        outcome.count(result)
        if progress and bar is not None:
            judged = sum(s.usage.spent_usd for s in scores.values() if s.usage)
            progress.advance(bar, cost=(0.0 if completion.cached else completion.cost_usd) + judged,
                             errors=int(completion.error is not None))

    try:
        if own:
            store.set_status(run_id, "running")
    except StorageError as e:
        raise _halted(store, run_id, e, []) from None
    queue = iter(todo)

    def busy() -> dict[str, Any]:
        return {"provider": provider, "concurrency": concurrency, "busy_s": clock.busy_s, "served": clock.served}

    async def worker() -> None:  # as many as can be in flight, each taking the next attempt: no task per example
        for sample, attempt in queue:
            if stopping() or models.halted:  # a signal or a store failure: what is left stays to do
                return
            await one(sample, attempt)

    try:
        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(todo)))))
    except BaseException:
        if own:
            settle_run(store, run_id, "interrupted", models.warn, **busy())
        raise
    outcome.busy_s, outcome.served = clock.busy_s, clock.served
    if models.halted is not None:
        if own:  # the store's failure is said once, by _halted
            settle_run(store, run_id, None, lambda _: None, **busy())
        raise _halted(store, run_id, models.halted, unsaved, own)
    outcome.left, outcome.budget = len(todo) - outcome.done, models.budget
    outcome.status = "completed" if not outcome.left else "interrupted" if stopping() else "budget-stopped"
    if own:
        settle_run(store, run_id, outcome.status, models.warn, **busy())
    return outcome


def attempts_to_do(samples: Sequence[Sample], repeats: int, done: set[tuple[str, int]],
                   shard: tuple[int, int] | None = None) -> list[tuple[Sample, int]]:
    """The (sample, attempt) pairs not yet done, attempt by attempt (a run stopped early has whole passes over the
    golden set). A shard (i, n) is every n-th of all the run's attempts from the i-th, fixed by position among
    all of them, not among those still to do, which the other workers shrink while it starts."""
    attempts = [(s, a) for a in range(1, repeats + 1) for s in samples]
    if shard is not None:
        attempts = attempts[shard[0]::shard[1]]
    return [(s, a) for s, a in attempts if (s.id, a) not in done]


def attempt_params(params: GenerateParams, attempt: int) -> GenerateParams:
    """The first attempt as configured; each later one with its own seed, for providers that take one."""
    return params if attempt == 1 else dataclasses.replace(params, seed=(params.seed or 0) + attempt - 1)


def _quietly(write: Callable[..., Any], *args: Any) -> None:
    """A bookkeeping write that may fail when the store already has (the failure is reported once)."""
    try:
        write(*args)
    except StorageError:
        pass


def _halted(store: Store, run_id: str, failure: RunHalted, unsaved: list[ExampleResult],
            own: bool = True) -> RunHalted:
    """The run stopped mid-way (the store failed, a batch cannot be polled): write what is still in memory if it
    can now, mark the run interrupted, then say in one line what is safe, what is lost and how to resume."""
    lost = 0
    for result in unsaved:
        try:
            store.add_result(run_id, result)
        except StorageError:
            lost += 1
    if own:
        _quietly(store.set_status, run_id, "interrupted")
    try:
        safe = f"{len(store.done(run_id))} result(s) of run {run_id} are safely stored"
    except StorageError:
        safe = f"the results of run {run_id} written before it are safe"
    paid = f"; {lost} answer(s) already paid for could not be written and are lost" if lost else ""
    return type(failure)(f"{failure.message}. {safe}{paid}; {failure.resume.format(run_id=run_id)}",
                         file=failure.file)


@dataclass(frozen=True)
class Skipped:
    spec: str
    reason: str


def open_providers(configs: Sequence[ModelConfig]) -> tuple[list[tuple[ModelConfig, Provider]], list[Skipped]]:
    """Build each model's provider; those that cannot run here (no key, no package) are skipped."""
    ready, skipped = [], []
    for config in configs:
        try:
            ready.append((config, create_provider(config)))
        except MissingCredentials as e:
            skipped.append(Skipped(str(config.spec), e.message))
    return ready, skipped


def require_providers(configs: Sequence[ModelConfig]) -> list[tuple[ModelConfig, Provider]]:
    """Every model's provider, or an error naming the first model that cannot run here."""
    ready, skipped = open_providers(configs)
    for s in skipped:
        raise EvalsError(f"{s.spec}: {s.reason}")
    return ready


@dataclass(frozen=True)
class RunJob:
    """A stored run and what executes it: its model, provider and attempts per example."""

    config: ModelConfig
    provider: Provider
    run_id: str
    repeats: int


def create_runs(task: Task, samples: Sequence[Sample], providers: Sequence[tuple[ModelConfig, Provider]],
                store: Store, options: RunOptions, open_run: Callable[..., str] | None = None) -> list[RunJob]:
    """One new stored run (status running, with its manifest) per model, once every example's prompt renders
    (`open_run(task, model, n_samples, manifest)`: how a run is stored; a shard joins its group's)."""
    for config, _ in providers:
        check_prompts(task.prompt_for(config), samples, [config])
    golden_hash = samples_hash(samples)
    jobs = []
    for config, provider in providers:
        repeats = task.repeats_for(config, options.repeats)
        manifest = build_manifest(task, config, provider.id, golden_hash, len(samples)) | {"repeats": repeats}
        if options.processes > 1:
            manifest["workers"] = options.processes  # the processes its calls are spread over
        try:
            run_id = (open_run or store.create_run)(task.name, str(config.spec), len(samples), manifest)
        except StorageError as e:
            raise StorageError(f"{e.message}. No run was started and no model was called", file=e.file) from None
        jobs.append(RunJob(config, provider, run_id, repeats))
    return jobs


async def run_task(
    task: Task,
    samples: Sequence[Sample],
    providers: Sequence[tuple[ModelConfig, Provider]],
    store: Store,
    options: RunOptions,
    *,
    cache: ResponseCache | None = None,
    progress: RunProgress | None = None,
    warn: Callable[[str], None] | None = None,
    budget: Budget | None = None,
) -> list[RunOutcome]:
    """One new run per model, all models in parallel, sharing one budget and the judges' providers.
    A judge that cannot run here is reported through `warn` before any call; its scores become errors."""
    async with shared_calls(task, samples, providers, store, options, cache, budget, warn,
                            " (choose a judge with --judge SPEC or $EVALS_JUDGE)") as models:
        jobs = create_runs(task, samples, providers, store, options)
        return await execute_jobs(task, samples, jobs, store, models, progress)


async def execute_jobs(task: Task, samples: Sequence[Sample], jobs: Sequence[RunJob], store: Store,
                       models: ModelCalls, progress: RunProgress | None = None,
                       shard: tuple[int, int] | None = None) -> list[RunOutcome]:
    """Stored runs side by side (a worker process: their `shard` only), sharing `models`."""
    done = await asyncio.gather(*(  # every model's run winds down first
        execute_run(task=task, samples=samples, config=j.config, provider=j.provider, store=store, run_id=j.run_id,
                    models=models, progress=progress, repeats=j.repeats, shard=shard)
        for j in jobs), return_exceptions=True)
    for failed in done:
        if isinstance(failed, BaseException):
            raise failed  # the first failure (a storage fault stops every run alike)
    return list(done)


@contextlib.asynccontextmanager
async def shared_calls(task: Task, samples: Sequence[Sample], providers: Sequence[tuple[ModelConfig, Provider]],
                        store: Store, options: RunOptions, cache: ResponseCache | None, budget: Budget | None,
                        warn: Callable[[str], None] | None, hint: str = "") -> AsyncIterator[ModelCalls]:
    """The calls a set of runs shares: a budget that fits at least one call (checked before any), each provider
    prepared (a batch provider keeps its batches in the store, or refuses a server without a Batch API), the
    judges opened (one that cannot run here is said through `warn`), and every provider closed at the end."""
    budget = budget or Budget(options.budget_usd)
    check_budget(task, samples, [c for c, _ in providers], budget.left_usd)
    models = ModelCalls(task, options, budget, cache, {str(c.spec): p for c, p in providers}, warn)
    try:
        for config, provider in providers:
            await prepare_provider(provider, store, functools.partial(models.say, str(config.spec)),
                                   max_retries=options.max_retries, retry_for_s=options.retry_for_s)
        checked = models.checks.metrics(samples) if models.checks else {}
        for problem in await models.unavailable({**models.metrics, **checked}):
            if warn:
                warn(f"{problem}; its scores will be errors{hint}")
        yield models
    finally:
        await models.aclose()
        for _, provider in providers:
            await close_provider(provider)
