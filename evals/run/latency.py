"""`evals latency`: one model measured at several concurrencies, stored as a profile that `decide` uses.

At each concurrency the first N golden examples (at least as many as the concurrency, so it is
reached) are sent with that many requests in flight (a local model: that batch size), streamed
where the provider can, never from the cache, after one warm-up call that is not counted (model
load, connection set-up). Per level: time to first token and total latency p50/p95, output tokens/s,
queue wait, errors, and calls/hour = answered calls / busy hours, on the hardware named.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from evals._util import decode_rate, dir_hash, percentile, redact_secrets
from evals.data.prompts import sample_messages
from evals.providers import close_provider, create_provider
from evals.run.calls import RunOptions, complete_with_retries
from evals.run.hardware import hardware_of
from evals.run.progress import RunProgress
from evals.run.runner import BusyClock
from evals.run.store import LatencyProfile, Store
from evals.types import Completion, ModelConfig, Sample, Task

DEFAULT_LEVELS = (1, 8, 32)
DEFAULT_N = 16


def profile_identity(config: ModelConfig) -> str:
    """What a latency profile must share with a run to stand for it: spec, server, options, adapter content,
    as a hash of their redacted form (the same whether built from task.yaml or from a run's manifest)."""
    parts = [str(config.spec), redact_secrets(config.base_url), redact_secrets(config.options),
             dir_hash(config.adapter_dir) if config.adapter_dir else None]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


async def measure_level(task: Task, config: ModelConfig, samples: Sequence[Sample], concurrency: int, n: int,
                        options: RunOptions, progress: RunProgress | None = None) -> tuple[dict[str, Any], str]:
    """One concurrency level: its figures, and the hardware it ran on."""
    config = dataclasses.replace(config, concurrency=concurrency, stream=True, batch=False)  # one request's time
    provider = create_provider(config)
    count = max(n, concurrency)
    chats = [sample_messages(task.prompt_for(config), samples[i % len(samples)], config) for i in range(count)]
    bar = progress.add(f"{config.spec} @ {concurrency}", total=count) if progress else None
    try:
        await complete_with_retries(provider, chats[0], task.params_for(config), options)  # warm-up, not counted
        semaphore, clock = asyncio.Semaphore(concurrency), BusyClock()

        async def one(messages: Any) -> Completion:
            async with semaphore:
                clock.start()
                done = await complete_with_retries(provider, messages, task.params_for(config), options)
                clock.stop(served=done.error is None)
            if progress and bar is not None:
                progress.advance(bar, cost=done.cost_usd, errors=int(done.error is not None))
            return done

        completions = await asyncio.gather(*(one(m) for m in chats))
        return level_figures(concurrency, completions, clock), hardware_of(provider)
    finally:
        await close_provider(provider)


def level_figures(concurrency: int, completions: Sequence[Completion], clock: BusyClock) -> dict[str, Any]:
    ok = [c for c in completions if c.error is None]
    ttfts = [c.ttft_s for c in ok if c.ttft_s is not None]
    rates = [r for r in (decode_rate(c.output_tokens, c.latency_s, c.ttft_s) for c in ok) if r is not None]
    return {
        "concurrency": concurrency,
        "n": len(completions),
        "errors": len(completions) - len(ok),
        "latency_p50_s": percentile([c.latency_s for c in ok], 50),
        "latency_p95_s": percentile([c.latency_s for c in ok], 95),
        "ttft_p50_s": percentile(ttfts, 50),
        "ttft_p95_s": percentile(ttfts, 95),
        "tokens_per_s": percentile(rates, 50),
        "queue_p50_s": percentile([c.queue_s for c in ok], 50),
        "calls_per_hour": clock.served / clock.busy_s * 3600 if clock.busy_s and clock.served else None,
        "cost_usd": sum(c.cost_usd for c in completions),
    }


async def measure_latency(task: Task, config: ModelConfig, samples: Sequence[Sample], store: Store,
                          levels: Sequence[int] = DEFAULT_LEVELS, n: int = DEFAULT_N,
                          options: RunOptions | None = None, progress: RunProgress | None = None,
                          hardware: str | None = None) -> LatencyProfile:
    """Measure every level in turn (never two at once: they would share the hardware) and store the profile."""
    options = options or RunOptions()
    figures, seen = [], None
    for concurrency in levels:
        level, seen = await measure_level(task, config, samples, concurrency, n, options, progress)
        figures.append(level)
    return store.add_latency_profile(task.name, str(config.spec), profile_identity(config), hardware or seen or "",
                                     figures)
