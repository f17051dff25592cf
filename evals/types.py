"""Frozen value types shared by every part of evals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from evals.tasks import Task

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Sample:
    """One golden example: the fields the prompt renders, and the reference answer."""

    id: str
    fields: dict[str, Any]
    reference: Any
    line: int = 0  # 1-based line (or row) in the source file, for error messages


@dataclass(frozen=True)
class GenerateParams:
    temperature: float = 0.0
    max_tokens: int = 512
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "stop": list(self.stop),
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Completion:
    """What a provider returned for one request (or why it could not)."""

    text: str
    input_tokens: int = 0  # every prompt token, cached ones included
    output_tokens: int = 0
    latency_s: float = 0.0  # one request's service time: sent (local: its batch started) to last token
    cost_usd: float = 0.0
    error: str | None = None
    model_version: str | None = None  # the model name the API reports back, for drift checks
    finish_reason: str | None = None
    cached: bool = False  # served from the response cache (nothing spent now)
    ttft_s: float | None = None  # time to first token within latency_s; None when not streamed
    queue_s: float = 0.0  # waited in the provider's own queue before service began (local batches)
    cached_input_tokens: int = 0  # of input_tokens, read from the provider's prompt cache
    cache_write_tokens: int = 0  # of input_tokens, written to the provider's prompt cache (Anthropic)


@dataclass(frozen=True)
class Usage:
    """What the model calls made while scoring one example (judges) used; `spent_usd` excludes cache hits."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    spent_usd: float = 0.0

    def add(self, c: Completion) -> Usage:
        return Usage(self.calls + 1, self.input_tokens + c.input_tokens, self.output_tokens + c.output_tokens,
                     self.cost_usd + c.cost_usd, self.spent_usd + (0.0 if c.cached else c.cost_usd))


@dataclass(frozen=True)
class Score:
    """One metric's verdict on one example. `value` is in [0, 1] unless the metric says otherwise."""

    value: float | None
    explanation: str = ""
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    usage: Usage | None = None  # set by the runner when the metric called models (a judge)


class ModelCaller(Protocol):
    """Calls a model from inside a metric (a judge) through the runner: cached, retried, budgeted, counted.
    A failure comes back as `Completion.error`, never raised."""

    async def generate(self, spec: str, messages: Sequence[Message],
                       params: GenerateParams | None = None) -> Completion: ...


@dataclass(frozen=True, kw_only=True)
class ScoreContext:
    """Everything a metric may look at; passed as one keyword-only object so new fields never break metrics."""

    sample: Sample
    completion: Completion
    task: Task | None = None
    models: ModelCaller | None = None  # for metrics that call models (judges); None outside a run


def decode_rate(output_tokens: float, latency_s: float, ttft_s: float | None) -> float | None:
    """Output tokens per second: after the first token when it was timed (streaming), else over the whole call."""
    if ttft_s is not None and output_tokens > 1 and latency_s > ttft_s:
        return (output_tokens - 1) / (latency_s - ttft_s)
    return output_tokens / latency_s if latency_s > 0 and output_tokens > 0 else None


@dataclass(frozen=True)
class Price:
    """USD per million tokens, as billed: fresh input, output, prompt-cache reads and writes; batch discount."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    cached_input_per_mtok: float | None = None  # cache reads; None: billed as fresh input
    cache_write_per_mtok: float | None = None  # cache writes (Anthropic); None: billed as fresh input
    batch_discount: float = 0.5  # share of the price taken off for Batch API calls (both APIs: half price)

    def cost(self, input_tokens: float, output_tokens: float, cached_input_tokens: float = 0,
             cache_write_tokens: float = 0, *, batch: bool = False) -> float:
        """USD for one call; `input_tokens` includes the cached and cache-written tokens."""
        read = self.input_per_mtok if self.cached_input_per_mtok is None else self.cached_input_per_mtok
        write = self.input_per_mtok if self.cache_write_per_mtok is None else self.cache_write_per_mtok
        fresh = max(0.0, input_tokens - cached_input_tokens - cache_write_tokens)
        usd = (fresh * self.input_per_mtok + cached_input_tokens * read + cache_write_tokens * write
               + output_tokens * self.output_per_mtok) / 1e6
        return usd * (1 - self.batch_discount) if batch else usd


@dataclass(frozen=True)
class ModelSpec:
    """`provider:model[+lora:ADAPTER_DIR]`, e.g. `openai:gpt-4o-mini`, `local:smollm2+lora:finetune/adapters/x`."""

    provider: str
    model: str
    adapter: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        provider, sep, rest = text.strip().partition(":")
        if not sep or not provider or not rest:
            raise ValueError(f"model spec '{text}' is not of the form provider:model[+lora:ADAPTER_DIR]")
        model, sep, adapter = rest.partition("+lora:")
        if sep and not adapter:
            raise ValueError(f"model spec '{text}' has '+lora:' with no adapter directory")
        return cls(provider, model, adapter or None)

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}" + (f"+lora:{self.adapter}" if self.adapter else "")


@dataclass(frozen=True)
class ModelConfig:
    """One model of a task: its spec plus per-model settings from task.yaml."""

    spec: ModelSpec
    base_url: str | None = None
    temperature: float = 0.0
    max_tokens: int = 512
    system: str | None = None  # overrides the task's system prompt for this model
    few_shot: bool = True  # False: this model gets no few-shot turns (e.g. a fine-tune that learned the format)
    price: Price | None = None  # overrides the built-in price table
    concurrency: int | None = None  # API: connections; local: batch size
    stream: bool = False  # API: stream the answer, timing the first token (off by default: README, Cost and latency)
    options: dict[str, Any] = field(default_factory=dict)  # provider-specific extras

    @property
    def params(self) -> GenerateParams:
        return GenerateParams(temperature=self.temperature, max_tokens=self.max_tokens)


@dataclass(frozen=True)
class ExampleResult:
    """One example of one run: the model's completion, every metric's score, and the match verdict."""

    sample: Sample
    completion: Completion
    scores: dict[str, Score]
    passed: bool
