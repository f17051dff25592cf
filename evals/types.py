"""Frozen value types shared by every part of evals: messages, completions, scores, model and task specs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

# What one model request is made of (messages, tools, calls, params) lives in evals.chat; re-exported here.
from evals.chat import (  # noqa: F401
    TOOL_CHOICES, GenerateParams, Message, Role, Tool, ToolCall, answer_shown, parse_arguments)
from evals.managed import Managed


@dataclass(frozen=True)
class Sample:
    """One golden example: the fields the prompt renders, and the reference answer."""

    id: str
    fields: dict[str, Any]
    reference: Any
    line: int = 0  # 1-based line (or row) in the source file, for error messages
    checks: tuple[Check, ...] = ()  # the example's own assertions about its answer (see evals.metrics.checks)
    human: Any = None  # a person's label of the answer, on the judge's scale (task.yaml dataset.human)
    file: str = ""  # the source file (or hub dataset) of `line`, for error messages
    messages: tuple[Message, ...] = ()  # the line's chat history (`messages`); the model answers its last turn


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
    mean_logprob: float | None = None  # mean log-probability of the answer's tokens (local; openai if asked)
    tool_calls: tuple[ToolCall, ...] = ()  # the functions it called, in order (its text is then often empty)

    def __post_init__(self) -> None:  # read back from JSON (the cache, a batch's result): calls as mappings
        if self.tool_calls and not all(isinstance(c, ToolCall) for c in self.tool_calls):
            object.__setattr__(self, "tool_calls", tuple(ToolCall.of(c) for c in self.tool_calls))


@dataclass(frozen=True)
class CallFor:
    """What a model call is for: an example of a run. The runner sets it (CALL_FOR) around each example's
    calls; a provider may label its requests with it (a batch's custom_id) and keep them per run."""

    run_id: str
    example_id: str
    attempt: int = 1


CALL_FOR: ContextVar[CallFor | None] = ContextVar("CALL_FOR", default=None)


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

    def as_dict(self) -> dict[str, Any]:
        """As the store keeps it (dataclasses.asdict's result, without its deep copy: one is written per call)."""
        return {"value": self.value, "explanation": self.explanation, "error": self.error, "details": self.details,
                "usage": dataclasses.asdict(self.usage) if self.usage is not None else None}


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
    # for judges, from the run (else None): the messages a spec's model is sent (no spec: the task's prompt), and a
    # stored run's answers by example id from (run id, store path or None): see evals.run.scoring
    render: Callable[[str | None], Sequence[Message]] | None = None
    stored_answers: Callable[[str, str | None], Mapping[str, str | None]] | None = None


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
    stream: bool = False  # API: stream the answer, timing the first token (off by default: docs/guides/costs-and-latency.md)
    batch: bool = False  # API: send the calls through the provider's Batch API (half price, answers within 24 h)
    options: dict[str, Any] = field(default_factory=dict)  # provider-specific extras
    repeats: int | None = None  # attempts per example for this model (None: the task's `repeats`)
    adapter: str | None = None  # the LoRA adapter folder a server of your own serves as this model (vLLM --lora-modules)
    prompt: str | None = None  # a named prompt of the task (task.yaml `prompts:`) in place of its `prompt:`

    @property
    def adapter_dir(self) -> str | None:
        """The LoRA adapter behind this model's answers: the spec's `+lora:`, else the one declared beside it,
        whose files are hashed into manifests, cache keys and latency profiles (a server cannot say what it loaded)."""
        return self.spec.adapter or self.adapter

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
    attempt: int = 1  # which of the example's repeated attempts (1..K)


# ---- a task as task.yaml states it (loaded and validated by evals.data.tasks) -------------------------
# Pydantic blocks validate themselves; evals.settings maps their errors to lines and their descriptions to the docs' settings tables.

HOURS_PER_MONTH = 730  # 8760 / 12
DAYS_PER_MONTH = HOURS_PER_MONTH / 24


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SelfHosted(_Settings):
    """How a self-hosted model is paid for: GPU hours at a throughput and utilisation, operations, training."""

    gpu_hourly_usd: float = Field(gt=0, description="Price of one GPU hour (USD), as the cloud or the team pays it.")
    calls_per_hour: float | None = Field(
        None, gt=0, description="Calls one GPU serves per hour at the serving concurrency. Default: measured "
                                "(the newest `evals latency` profile of the model, else the run itself).")
    utilisation: float = Field(0.7, gt=0, le=1, description="Share of paid GPU hours that serve calls; idle hours "
                                                            "are paid too.")
    min_gpu_hours_per_month: float = Field(0.0, ge=0, le=HOURS_PER_MONTH * 1000, description=(
        "GPU hours paid each month however few the calls (730: one GPU always on)."))
    ops_monthly_usd: float = Field(0.0, ge=0, description="Engineering and operations cost per month (on-call, "
                                                          "upgrades, monitoring).")
    training_cost_usd: float = Field(0.0, ge=0, description="What training the adapter costs, once (GPU hours, "
                                                            "data work); charged to a side with a LoRA adapter.")
    amortize_months: float = Field(12.0, gt=0, description="Months a one-off training cost is spread over.")
    retrain_every_months: float | None = Field(
        None, gt=0, description="Retrain (and pay training again) every N months; replaces amortize_months.")
    models: tuple[str, ...] = Field((), description="Other model specs to cost as self-hosted, e.g. an openai: "
                                                    "spec whose base_url is your vLLM server.")
    trained: tuple[str, ...] = Field((), description="Self-hosted specs without a +lora: adapter that are "
                                                     "fine-tunes all the same (a LoRA served by vLLM): charged the "
                                                     "training cost too.")
    hardware: str | None = Field(None, description="What production serves on (e.g. '1x L4 24GB'); printed beside "
                                                   "a given calls_per_hour.")

    @field_validator("models", "trained", mode="before")
    @classmethod
    def _specs(cls, value: Any) -> Any:
        if isinstance(value, list):
            value = tuple(value)
        if isinstance(value, tuple):
            return tuple(_spec(v) for v in value)
        return value

    @property
    def training_months(self) -> float:
        """Months one training is paid over: the retraining interval, else the amortisation period."""
        return self.retrain_every_months or self.amortize_months


class Decision(_Settings):
    """task.yaml's `decision:` settings."""

    baseline: str | None = Field(None, description="The prompted model (spec), e.g. openai:gpt-4o-mini.")
    candidate: str | tuple[str, ...] | None = Field(
        None, description="The alternative (spec), e.g. a local LoRA fine-tune; or a list of them (say a hosted and "
                          "a local fine-tune), each paired with the baseline in one report with one cost table.")
    min_gap: float = Field(0.05, gt=0, lt=1, description="Smallest gain in match rate worth acting on (0.05: 5 "
                                                         "points).")
    volume: float | None = Field(None, gt=0, description="Calls per month; costs are projected at 1x, 10x, 100x.")
    quality_only: bool = Field(False, description="Decide on quality alone; cost and latency are shown, not weighed.")
    api_batch: bool = Field(False, description="Price API sides at Batch API rates (half price), for work that can "
                                               "wait up to a day.")
    max_error_rate: float = Field(0.05, ge=0, le=1, description=(
        "Refuse to compare when a side's provider failed on more than this share of examples (errors would "
        "count as misses and bias the comparison)."))
    in_house_only: bool = Field(False, description="Data may not leave the team's infrastructure: API sides are "
                                                   "excluded.")
    in_house_reason: str | None = Field(None, description="Why (printed with the exclusion), e.g. 'resumes are "
                                                          "personal data'.")
    max_p95_s: float | None = Field(None, gt=0, description="Latency ceiling: a side whose p95 total latency is "
                                                            "above it does not qualify.")
    max_ttft_p95_s: float | None = Field(None, gt=0, description="Ceiling on time to first token (p95), for "
                                                                 "streamed use.")
    revisit_months: float = Field(6.0, gt=0, description="When the decision is due again (prices and models move); "
                                                         "`evals check` says when.")
    self_hosted: SelfHosted | None = Field(None, description="How self-hosted sides are paid for (see below).")
    managed: Managed | None = Field(None, description="How managed-hosting sides are paid for: serverless per token, "
                                                      "or a dedicated endpoint per hour (see below).")

    _managed = field_validator("managed", mode="after")(lambda cls, v: v and v.with_specs(_spec))

    @field_validator("baseline", "candidate", mode="before")
    @classmethod
    def _model_spec(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            if not value:
                raise ValueError("expected a model spec or a non-empty list of them")
            specs = tuple(_spec(v) for v in value)
            return specs[0] if len(specs) == 1 else specs
        return _spec(value) if isinstance(value, str) else value

    @property
    def candidates(self) -> tuple[str, ...]:
        """Every candidate named, in order (one or several)."""
        c = self.candidate
        return () if c is None else (c,) if isinstance(c, str) else c


def _spec(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return str(ModelSpec.parse(value))
    except ValueError as e:
        raise ValueError(str(e)) from None



TASK_FILE = "task.yaml"
MATCH_RATE = "match_rate"  # a floor on the match rate itself, beside floors on metric means
CHECKS = "checks"  # the score of an example's own checks: the weighted share that passed
CHECK_PREFIX = "check."  # each of an example's checks is scored as check.<type or id>
DRIFT_ACTIONS = ("warn", "fail", "ignore")


@dataclass(frozen=True)
class MetricSpec:
    """A metric as written in task.yaml: registered name, the id its scores go under, factory kwargs."""

    id: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    """One assertion a golden line makes about its own answer: a metric (seeing `reference` in place of the
    example's when `has_reference`), passed when its value reaches `threshold`, or stays below it if `negate`."""

    id: str  # the score id, "check.<type>" ("#2" for a second of the same type on one example)
    metric: MetricSpec
    label: str  # how the check reads in explanations: "icontains 'Dónde está'"
    reference: Any = None
    has_reference: bool = False
    negate: bool = False
    threshold: float = 1.0
    weight: float = 1.0
    field: str | None = None  # the metric sees this JSON field of the answer as the answer
    transform: tuple[str, ...] = ()  # promptfoo JavaScript transforms, in order: the metric sees what they return
    parts: tuple[Check, ...] = ()  # an assert-set's checks: it passes when `threshold` of their weight does

    def passed(self, value: float) -> bool:
        return value < self.threshold if self.negate else value >= self.threshold


@dataclass(frozen=True)
class FewShot:
    fields: dict[str, Any]
    answer: str


MAX_REPEATS = 1_000  # attempts per example (task.yaml repeats, --repeats): more is a typo, not a plan
MAX_PROMPT_CHARS = 1_000_000  # the default cap on a rendered prompt (task.yaml prompt.max_chars)


@dataclass(frozen=True)
class PromptSpec:
    system: str
    user: str
    few_shot: tuple[FewShot, ...] = ()
    retrieve: int = 0  # few_shot: {retrieve: k}: per example, the k nearest examples of `pool` (by embedding)
    pool: tuple[FewShot, ...] = field(default=(), repr=False)  # what `retrieve` draws from: the train set
    max_chars: int = MAX_PROMPT_CHARS  # the chat rendered for one example, every message together


def _in(low: float, high: float, *, closed_low: bool = False, closed_high: bool = False) -> Any:
    """A float validator for a range, saying the range as an interval: (0, 1), [0, 1), [0, 1]."""

    def check(value: float) -> float:
        above = value >= low if closed_low else value > low
        below = value <= high if closed_high else value < high
        if not (above and below):
            span = f"{'[' if closed_low else '('}{low:g}, {high:g}{']' if closed_high else ')'}"
            raise ValueError(f"expected a number in {span}, got {value!r}")
        return float(value)

    return AfterValidator(check)


Fraction = Annotated[float, _in(0, 1)]


def _floor(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"a floor must be a number, got {value!r}")
    return float(value)


class CheckSettings(_Settings):
    """task.yaml's `check:` block: how `evals check` judges a new run against the accepted baseline."""

    model: str | None = Field(None, description="The model checked when --model is not given.")
    margin: Annotated[float, _in(0, 1, closed_low=True)] = Field(
        0.05, description="A drop in match rate up to this is tolerated; past it, a significant drop fails.")
    confidence: Fraction = Field(0.95, description="1 - alpha of the paired test (McNemar exact, two-sided).")
    power: Fraction = Field(0.8, description="For the examples that would settle a non-significant drop.")
    floors: dict[str, Annotated[Any, AfterValidator(_floor)]] = Field(
        {}, description="Metric id (or match_rate) -> lowest acceptable mean.")
    max_error_rate: Annotated[float, _in(0, 1, closed_low=True, closed_high=True)] = Field(
        0.2, description="More examples failing after retries than this: an error (exit 2), no verdict.")
    drift: str = Field("warn", description="A changed provider model version: warn, fail or ignore.")

    _model = field_validator("model", mode="before")(lambda cls, v: _spec(v))

    @field_validator("drift")
    @classmethod
    def _drift(cls, drift: str) -> str:
        if drift not in DRIFT_ACTIONS:
            raise ValueError(f"expected one of {', '.join(DRIFT_ACTIONS)}, got {drift!r}")
        return drift

    @property
    def alpha(self) -> float:
        return 1 - self.confidence


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    dir: Path
    golden: str  # file name in dir, or a hub id
    train: str | None
    id_field: str
    reference_field: str
    input_fields: tuple[str, ...]
    prompt: PromptSpec
    models: tuple[ModelConfig, ...]
    metrics: tuple[MetricSpec, ...]
    pass_rule: dict[str, float]
    decision: Decision
    hash: str  # task.yaml plus every file its metrics name
    check: CheckSettings = field(default_factory=CheckSettings)
    file: str = TASK_FILE  # the task file's name in dir (a task may be any .yaml file)
    checks_field: str | None = None  # the golden-line field holding each example's own checks
    human_field: str | None = None  # the golden-line field holding people's labels, for judge agreement
    repeats: int = 1  # attempts per example (task.yaml `repeats:`; a model's own `repeats`, --repeats override it)
    judge: str | None = None  # --judge: the judge model of every judge metric and check
    prompts: dict[str, PromptSpec] = field(default_factory=dict)  # named prompts (`prompts:`), e.g. "optimized"
    # a model the task does not list: its defaults, with the server it reaches (the loader's: evals.providers)
    default_config: Callable[[ModelSpec], ModelConfig] = ModelConfig
    tools: tuple[Tool, ...] = ()  # the functions its models may call (`tools:`); references may then be calls
    tool_choice: str | None = None  # `tool_choice:` auto, none, required, or a function's name
    parallel_tool_calls: bool | None = None  # `parallel_tool_calls:`
    messages_field: str = "messages"  # the golden-line field holding a chat history (`dataset.messages`)

    def params_for(self, config: ModelConfig) -> GenerateParams:
        """What this model's calls for the task are sent with: its sampling settings and the task's tools."""
        params = config.params
        if not self.tools:
            return params
        return dataclasses.replace(params, tools=self.tools, tool_choice=self.tool_choice,
                                   parallel_tool_calls=self.parallel_tool_calls)

    def tool(self, name: str) -> Tool | None:
        return next((t for t in self.tools if t.name == name), None)

    @property
    def path(self) -> Path:
        return self.dir / self.file

    def prompt_for(self, config: ModelConfig | None) -> PromptSpec:
        """The prompt this model runs with: its named prompt (`prompt: NAME`, `--prompt NAME`), else the task's."""
        name = config.prompt if config is not None else None
        if name is None:
            return self.prompt
        if name not in self.prompts:
            from evals.errors import EvalsError

            known = ", ".join(sorted(self.prompts)) or "none"
            raise EvalsError(f"task '{self.name}' has no prompt named '{name}' (named prompts: {known}); "
                             "`evals optimize` writes one as `prompts: {optimized: ...}`", file=self.path,
                             field="prompts")
        return self.prompts[name]

    def repeats_for(self, config: ModelConfig, override: int | None = None) -> int:
        """How many times each example is asked of this model: --repeats, else the model's, else the task's."""
        return override or config.repeats or self.repeats

    def model_config(self, spec: str) -> ModelConfig:
        """The task's settings for this spec, or defaults when the task does not list it."""
        parsed = ModelSpec.parse(spec)
        for m in self.models:
            if m.spec == parsed:
                return m
        return self.default_config(parsed)
