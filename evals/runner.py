"""Async execution of a task against models: concurrency, timeouts, retries, cache, budget, persistence.

Every result is written to the store the moment it completes, so a killed run resumes where it
stopped. A provider's final failure is recorded on the example as data; it never ends the run.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from evals.cache import ResponseCache, cache_key, model_identity
from evals.costs import price_for
from evals.errors import EvalsError, MissingCredentials, ProviderError
from evals.golden import load_samples, samples_hash
from evals.manifest import build_manifest, config_from_dict
from evals.metrics import build_metrics, passes, score_all
from evals.progress import RunProgress
from evals.prompts import render_messages
from evals.providers import Provider, close_provider, create_provider
from evals.store import Store
from evals.tasks import Task, load_task
from evals.types import Completion, ExampleResult, GenerateParams, Message, ModelConfig, Sample, ScoreContext

DEFAULT_MODEL = "local:smollm2"


@dataclass(frozen=True)
class RunOptions:
    concurrency: int | None = None  # None: the provider's own max_concurrency
    timeout_s: float = 300.0
    max_retries: int = 6
    backoff_s: float = 1.0  # first retry waits about this long, doubling up to max_backoff_s
    max_backoff_s: float = 60.0
    budget_usd: float | None = None


@dataclass
class Budget:
    """Stops starting calls whose worst-case cost would take spending past the limit."""

    limit_usd: float | None = None
    spent_usd: float = 0.0
    reserved_usd: float = 0.0
    exhausted: bool = False

    def reserve(self, estimate: float) -> bool:
        if self.limit_usd is not None and self.spent_usd + self.reserved_usd + estimate > self.limit_usd:
            self.exhausted = True
            return False
        self.reserved_usd += estimate
        return True

    def settle(self, estimate: float, actual: float) -> None:
        self.reserved_usd -= estimate
        self.spent_usd += actual


@dataclass
class RunOutcome:
    run_id: str
    model: str
    status: str  # completed, budget-stopped, interrupted
    results: list[ExampleResult] = field(default_factory=list)


def _estimate_cost(config: ModelConfig, messages: Sequence[Message], params: GenerateParams) -> float:
    """An upper-bound guess: about 3 characters per input token, and every output token used."""
    input_tokens = sum(len(m.content) for m in messages) // 3 + 4 * len(messages) + 8
    return price_for(config).cost(input_tokens, params.max_tokens)


def _retryable(e: BaseException) -> bool:
    return isinstance(e, ProviderError) and e.retryable


def _backoff(options: RunOptions):
    """Exponential backoff with jitter, never shorter than the server's retry-after."""

    def wait(state: RetryCallState) -> float:
        ceiling = min(options.max_backoff_s, options.backoff_s * 2 ** (state.attempt_number - 1))
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        error = state.outcome.exception() if state.outcome else None
        retry_after = getattr(error, "retry_after", None)
        return max(delay, retry_after or 0.0)

    return wait


async def complete_with_retries(
    provider: Provider, messages: Sequence[Message], params: GenerateParams, options: RunOptions
) -> Completion:
    """One model call with timeout and retries; a final failure comes back as Completion.error."""

    async def attempt() -> Completion:
        try:
            return await asyncio.wait_for(provider.generate(messages, params), options.timeout_s)
        except TimeoutError:
            raise ProviderError(f"timed out after {options.timeout_s:g}s", retryable=True) from None

    start = time.perf_counter()
    retrying = AsyncRetrying(
        retry=retry_if_exception(_retryable),
        stop=stop_after_attempt(options.max_retries + 1),
        wait=_backoff(options),
        reraise=True,
    )
    try:
        return await retrying(attempt)
    except ProviderError as e:
        error = str(e)
    except Exception as e:  # a provider bug: recorded on the example, the run goes on
        error = f"{type(e).__name__}: {e}"
    return Completion(text="", error=error, latency_s=time.perf_counter() - start)


async def execute_run(
    *,
    task: Task,
    samples: Sequence[Sample],
    config: ModelConfig,
    provider: Provider,
    store: Store,
    run_id: str,
    options: RunOptions,
    budget: Budget,
    cache: ResponseCache | None = None,
    progress: RunProgress | None = None,
) -> RunOutcome:
    """Run every sample not yet finished in `run_id`, writing each result as it completes."""
    done = store.done_ids(run_id)
    todo = [s for s in samples if s.id not in done]
    metric_map = build_metrics(task)
    params = config.params
    identity = model_identity(provider.id, config) if cache else ""
    semaphore = asyncio.Semaphore(options.concurrency or provider.max_concurrency)
    bar = progress.add(str(config.spec), total=len(samples), completed=len(samples) - len(todo)) if progress else None
    outcome = RunOutcome(run_id, str(config.spec), "completed")

    async def one(sample: Sample) -> None:
        messages = render_messages(task.prompt, sample.fields, config.system)
        key = cache_key(identity, messages, params) if cache else ""
        completion = cache.get(key) if cache else None
        if completion is None:
            async with semaphore:
                estimate = _estimate_cost(config, messages, params)
                if budget.exhausted or not budget.reserve(estimate):
                    return
                completion = await complete_with_retries(provider, messages, params, options)
                budget.settle(estimate, completion.cost_usd)
            if cache:
                cache.put(key, provider.id, completion)
        scores = {}
        if completion.error is None:
            scores = await score_all(metric_map, ScoreContext(sample=sample, completion=completion, task=task))
        result = ExampleResult(sample, completion, scores, passes(scores, task.pass_rule) if scores else False)
        store.add_result(run_id, result)
        outcome.results.append(result)
        if progress and bar is not None:
            progress.advance(bar, cost=0.0 if completion.cached else completion.cost_usd,
                             error=completion.error is not None)

    store.set_status(run_id, "running")
    try:
        await asyncio.gather(*(one(s) for s in todo))
    except BaseException:
        store.set_status(run_id, "interrupted")
        raise
    outcome.status = "budget-stopped" if budget.exhausted else "completed"
    store.set_status(run_id, outcome.status)
    return outcome


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


async def run_task(
    task: Task,
    samples: Sequence[Sample],
    providers: Sequence[tuple[ModelConfig, Provider]],
    store: Store,
    options: RunOptions,
    *,
    cache: ResponseCache | None = None,
    progress: RunProgress | None = None,
) -> list[RunOutcome]:
    """One new run per model, all models in parallel, sharing one budget."""
    golden_hash = samples_hash(samples)
    budget = Budget(options.budget_usd)
    jobs = []
    for config, provider in providers:
        manifest = build_manifest(task, config, provider.id, golden_hash, len(samples))
        run_id = store.create_run(task.name, str(config.spec), len(samples), manifest)
        jobs.append(execute_run(task=task, samples=samples, config=config, provider=provider, store=store,
                                run_id=run_id, options=options, budget=budget, cache=cache, progress=progress))
    try:
        return list(await asyncio.gather(*jobs))
    finally:
        for _, provider in providers:
            await close_provider(provider)


async def resume_run(
    run_id: str,
    store: Store,
    options: RunOptions,
    *,
    cache: ResponseCache | None = None,
    progress: RunProgress | None = None,
) -> RunOutcome:
    """Finish an interrupted run: only examples without a stored result (or with an error) are called."""
    record = store.get_run(run_id)
    manifest = record.manifest
    task = load_task(manifest["task"]["path"])
    samples = load_samples(task)
    if samples_hash(samples) != manifest["golden"]["hash"]:
        # A run with `--limit` hashed only its first N examples.
        samples = samples[: manifest["golden"]["n"]]
        if samples_hash(samples) != manifest["golden"]["hash"]:
            raise EvalsError(f"the golden set of task '{task.name}' changed since run {record.id}; "
                             "start a new run instead of resuming")
    config = config_from_dict(manifest["model"])
    provider = create_provider(config)
    try:
        return await execute_run(task=task, samples=samples, config=config, provider=provider, store=store,
                                 run_id=record.id, options=options, budget=Budget(options.budget_usd),
                                 cache=cache, progress=progress)
    finally:
        await close_provider(provider)
