"""`fake:` scripted answers for tests and dry runs; no network, no cost.

Models: `fake:echo` repeats the last user message; any other name answers from `responses`
(task.yaml `options: {responses: [...]}`, cycled; default "{}"). Tests `enqueue()` answers or
exceptions and read `history`, the messages of every call made (and `sent`, the params of each).
Offered tools, an answer of the form `{"tool_calls": [{"name": ..., "arguments": {...}}, ...]}` is those calls
(with no text), as an API returns them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import deque
from collections.abc import Iterable, Sequence

from pydantic import Field

from evals.providers import BaseProvider, NoOptions, register_provider
from evals.providers.prices import price_for
from evals.types import Completion, GenerateParams, Message, ModelConfig, ModelSpec, ToolCall


class FakeOptions(NoOptions):
    responses: list[str] = Field(["{}"], description="Answers, cycled (models other than echo).")
    latency_s: float = Field(0.0, ge=0, description="Seconds each answer takes.")


@register_provider("fake")
class FakeProvider(BaseProvider):
    options = FakeOptions
    tools = True

    @classmethod
    def from_config(cls, config: ModelConfig) -> FakeProvider:
        opts = config.options
        return cls(config.spec.model, opts.get("responses", ["{}"]), latency_s=float(opts.get("latency_s", 0.0)),
                   max_concurrency=config.concurrency or 8, config=config)

    def __init__(
        self,
        model: str = "scripted",
        responses: Iterable[str] = ("{}",),
        *,
        latency_s: float = 0.0,
        max_concurrency: int = 8,
        config: ModelConfig | None = None,
    ):
        self.model = model
        self.id = f"fake:{model}"
        self.max_concurrency = max_concurrency
        self.latency_s = latency_s
        self.history: list[list[Message]] = []
        self.sent: list[GenerateParams] = []
        self._queue: deque[str | BaseException] = deque()
        self._default = itertools.cycle(list(responses) or ["{}"])
        self._config = config or ModelConfig(spec=ModelSpec("fake", model))

    def enqueue(self, *items: str | BaseException) -> None:
        """Answer the next calls with these texts, or raise these exceptions, in order."""
        self._queue.extend(items)

    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion:
        self.history.append(list(messages))
        self.sent.append(params)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        item = self._queue.popleft() if self._queue else None
        if isinstance(item, BaseException):
            raise item
        if item is not None:
            text = item
        elif self.model == "echo":
            text = next((m.content for m in reversed(messages) if m.role == "user"), "")
        else:
            text = next(self._default)
        text = text[: params.max_tokens * 4]
        input_tokens = sum(len(m.content.split()) for m in messages)
        output_tokens = len(text.split())
        calls = _calls(text) if params.tools else ()
        return Completion(
            text="" if calls else text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            latency_s=self.latency_s,
            cost_usd=price_for(self._config).cost(input_tokens, output_tokens),
            model_version=self.model,
            finish_reason="tool_calls" if calls else "stop",
            tool_calls=calls,
        )


def _calls(text: str) -> tuple[ToolCall, ...]:
    """The calls a scripted answer stands for: `{"tool_calls": [...]}`; none for any other text."""
    try:
        value = json.loads(text)
    except ValueError:
        return ()
    if not isinstance(value, dict) or not isinstance(value.get("tool_calls"), list):
        return ()
    return tuple(ToolCall.of(c) if isinstance(c, dict) else ToolCall(str(c)) for c in value["tool_calls"])
