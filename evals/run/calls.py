"""One model call: the run's options, the timeout, retries bounded by count and by time (exponential
backoff with jitter, never sooner than the server's retry-after), and a circuit breaker per provider."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, stop_after_delay

from evals.errors import ProviderError, RunHalted
from evals.providers import Provider, as_provider
from evals.types import Completion, GenerateParams, Message

THRESHOLD = 8  # retryable failures in a row, across all calls to the provider, that open the breaker
COOLDOWN_S = 1.0
MAX_COOLDOWN_S = 30.0


class Breaker:
    """Pauses every call to a provider that fails everything: after `threshold` retryable failures in a row
    (across all its calls), all wait a cool-down (doubling while the outage lasts, up to a cap), then try again."""

    def __init__(self, label: str, threshold: int = THRESHOLD, cooldown_s: float = COOLDOWN_S,
                 max_cooldown_s: float = MAX_COOLDOWN_S, notice: Callable[[str], None] | None = None):
        self.label = label
        self.threshold, self.cooldown_s, self.max_cooldown_s = threshold, cooldown_s, max_cooldown_s
        self.notice = notice  # told when calls pause and when they resume (the progress line)
        self.failures = 0  # in a row
        self.pauses = 0  # since the last success: each doubles the cool-down
        self.open_until = 0.0

    async def wait(self) -> None:
        """Return when calls may go: at once while closed, after the cool-down while open."""
        while (left := self.open_until - time.monotonic()) > 0:
            await asyncio.sleep(left)

    def record(self, ok: bool, retryable: bool = True) -> None:
        if ok:
            if self.pauses and self.notice:
                self.notice(f"{self.label} answers again: calls resumed")
            self.failures, self.pauses = 0, 0
            return
        if not retryable:  # a bad request says nothing about the provider's health
            return
        self.failures += 1
        if self.failures >= self.threshold and time.monotonic() >= self.open_until:
            pause = min(self.max_cooldown_s, self.cooldown_s * 2**self.pauses)
            self.pauses += 1
            self.failures = 0
            self.open_until = time.monotonic() + pause
            if self.notice:
                self.notice(f"{self.label} failed {self.threshold} calls in a row: all calls paused for {pause:g}s "
                            "(their retries are not spent meanwhile)")


@dataclass(frozen=True)
class RunOptions:
    """How a command calls models: concurrency, per-attempt timeout, retries, backoff and the budget."""

    concurrency: int | None = None  # None: the provider's own max_concurrency
    timeout_s: float = 300.0
    max_retries: int = 16
    retry_for_s: float = 600.0  # retries of one call stop after this long, whatever their count
    backoff_s: float = 1.0  # first retry waits about this long, doubling up to max_backoff_s
    max_backoff_s: float = 60.0
    budget_usd: float | None = None
    repeats: int | None = None  # --repeats: attempts per example for every model (None: as the task says)
    processes: int = 1  # worker processes sharing each model's concurrency (--workers)


def lane_width(options: RunOptions, provider: Provider) -> int:
    """A model's calls in flight in this process: its concurrency, shared by the run's worker processes."""
    return max(1, -(-(options.concurrency or provider.max_concurrency) // options.processes))


def _retryable(e: BaseException) -> bool:
    return isinstance(e, ProviderError) and e.retryable


def _delay(options: RunOptions, failed: int, error: BaseException | None) -> float:
    """Exponential backoff with jitter after the `failed`-th failed attempt, never shorter than the server's
    retry-after."""
    ceiling = min(options.max_backoff_s, options.backoff_s * 2 ** (failed - 1))
    return max(ceiling / 2 + random.uniform(0, ceiling / 2), getattr(error, "retry_after", None) or 0.0)


async def complete_with_retries(
    provider: Provider, messages: Sequence[Message], params: GenerateParams, options: RunOptions,
    breaker: Breaker | None = None,
) -> Completion:
    """One model call with timeout and retries (bounded by count and by time); a final failure comes back as
    Completion.error. With a `breaker`, every attempt waits while the provider's breaker is open. A provider
    whose answers come late by design (a batch's, within its 24 h window) sets its own (BaseProvider.call_timeout_s)."""
    timeout_s = as_provider(provider).call_timeout_s(options.timeout_s)

    async def attempt() -> Completion:
        if breaker:
            await breaker.wait()
        try:
            async with asyncio.timeout(timeout_s):  # unlike wait_for, no task of its own per call
                done = await provider.generate(messages, params)
        except TimeoutError:
            e = ProviderError(f"timed out after {timeout_s:g}s", retryable=True)
            if breaker:
                breaker.record(False)
            raise e from None
        except ProviderError as e:
            if breaker:
                breaker.record(False, e.retryable)
            raise
        if breaker:
            breaker.record(True)
        return done

    start = time.perf_counter()
    try:
        try:
            return await attempt()  # most calls succeed at once: the retry machinery only for those that fail
        except ProviderError as e:
            if not e.retryable or options.max_retries == 0 or time.perf_counter() - start >= options.retry_for_s:
                raise
            await asyncio.sleep(_delay(options, 1, e))
        retrying = AsyncRetrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(options.max_retries) | stop_after_delay(
                max(0.0, options.retry_for_s - (time.perf_counter() - start))),
            wait=lambda state: _delay(options, state.attempt_number + 1,
                                      state.outcome.exception() if state.outcome else None),
            reraise=True,
        )
        return await retrying(attempt)
    except ProviderError as e:
        error = str(e)
    except RunHalted:  # the store could not keep a batch's ids, or a batch cannot be polled: the run stops
        raise
    except Exception as e:  # a provider bug: recorded on the example, the run goes on
        error = f"{type(e).__name__}: {e}"
    return Completion(text="", error=error, latency_s=time.perf_counter() - start)


