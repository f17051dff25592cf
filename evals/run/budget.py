"""The budget of a set of runs: each call reserves its worst case before it starts, so spending never
passes the limit; and the check, before any call, that the budget fits at least one."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from evals.data.prompts import sample_messages
from evals.errors import EvalsError
from evals.providers.prices import price_for
from evals.types import GenerateParams, Message, ModelConfig, Sample, Task


@dataclass
class Budget:
    """Spending never passes the limit: each call (a run's or a judge's) reserves its worst case before it
    starts. A call that does not fit beside those in flight waits for them to settle, so fewer calls run at
    once near the end; a call is refused only when the money spent plus its own worst case would pass the
    limit, and then the run is `exhausted` (budget-stopped) with that call's example left to do."""

    limit_usd: float | None = None
    spent_usd: float = 0.0
    reserved_usd: float = 0.0
    exhausted: bool = False
    in_flight: int = 0  # reservations not yet settled
    shares: int = 1  # worker processes, each holding an equal share of the limit (--workers)
    max_calls: int | None = None  # calls that may reach a model (`evals optimize --max-calls`); cache hits are free
    calls: int = 0  # reservations made (calls that reached, or are reaching, a model)
    _settled: asyncio.Condition = field(default_factory=asyncio.Condition, repr=False)

    async def reserve(self, estimate: float) -> bool:
        async with self._settled:
            if self.max_calls is not None and self.calls >= self.max_calls:
                self.exhausted = True
                return False
            if self.limit_usd is not None:
                while self.spent_usd + self.reserved_usd + estimate > self.limit_usd:
                    if self.spent_usd + estimate > self.limit_usd:  # it would not fit even alone
                        self.exhausted = True
                        return False
                    if not self.in_flight:  # nothing to wait for (what is reserved is rounding left over)
                        break
                    await self._settled.wait()  # calls in flight release what they reserved beyond their cost
            self.reserved_usd += estimate
            self.in_flight += 1
            self.calls += 1
            return True

    async def settle(self, estimate: float, actual: float) -> None:
        async with self._settled:
            self.in_flight -= 1
            self.reserved_usd = max(0.0, self.reserved_usd - estimate) if self.in_flight else 0.0
            self.spent_usd += actual
            self._settled.notify_all()

    @property
    def left_usd(self) -> float | None:
        return None if self.limit_usd is None else max(0.0, self.limit_usd - self.spent_usd)


def round_up(usd: float) -> str:
    """A budget to suggest: the amount rounded up to two significant digits."""
    if usd <= 0:
        return "0.01"
    digits = max(0, 1 - int(math.floor(math.log10(usd))))
    return f"{math.ceil(usd * 10**digits) / 10**digits:.{digits}f}"


def check_budget(task: Task, samples: Sequence[Sample], configs: Sequence[ModelConfig], limit: float | None) -> None:
    """Refuse, before any call, a budget smaller than the worst case of the cheapest single call."""
    if limit is None or not samples:
        return
    worst = [(estimate_cost(c, sample_messages(task.prompt_for(c), s, c), task.params_for(c)), c)
             for c in configs for s in samples[:200]]
    cheapest, config = min(worst, key=lambda w: w[0])
    if cheapest > limit:
        raise EvalsError(f"--budget ${limit:g} is less than the worst case of a single call (${cheapest:.6f} for "
                         f"{config.spec} with every one of its {config.max_tokens} max_tokens used): no call could "
                         "start. Raise the budget, or lower the model's max_tokens in task.yaml")


def estimate_cost(config: ModelConfig, messages: Sequence[Message], params: GenerateParams) -> float:
    """A call's worst case: about 3 characters per input token (more tokens than text usually has), and
    every one of max_tokens output tokens used; at batch rates for a batched model."""
    text = sum(len(m.content) + sum(len(json.dumps(c.arguments)) + len(c.name) for c in m.tool_calls) for m in messages)
    text += sum(len(json.dumps(t.parameters)) + len(t.description) + len(t.name) for t in params.tools)
    input_tokens = text // 3 + 4 * len(messages) + 8
    return price_for(config).cost(input_tokens, params.max_tokens, batch=config.batch)
