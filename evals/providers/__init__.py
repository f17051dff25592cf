"""Model backends, each registered by name. SDKs and torch are imported only when a provider is built.

A backend is a BaseProvider subclass registered with `register_provider(name)`: its class attributes say what
it can do (task.yaml options, the base-URL variable its SDK reads, self-hosted, managed, logprobs, streaming,
batch, tools), read through `provider_class(name)` without building one or importing an SDK; `from_config(config)`
builds one, and its methods have defaults it overrides (timeout, prepare, close), as Inspect's ModelAPI.
A provider raises MissingCredentials when it cannot run here (no key, package missing) and ProviderError
when a call fails. A plugin may still register a plain factory `config -> object with id, max_concurrency and
generate` (the Provider protocol): it gets the base class's defaults (`as_provider`).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from evals.errors import EvalsError, MissingCredentials
from evals.registry import Registry
from evals.types import Completion, GenerateParams, Message, ModelConfig

F = TypeVar("F")

BUILTIN_MODULES = ("openai", "anthropic", "together", "local", "fake")


@runtime_checkable
class Provider(Protocol):
    """What a provider must have; BaseProvider adds what it may have, with defaults."""

    id: str
    max_concurrency: int

    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion: ...


class BaseProvider:
    """A model backend: what its kind can do (class attributes, overridden by each backend that can do more) and
    what each provider does around its calls (methods with defaults)."""

    options: ClassVar[type[BaseModel] | None] = None  # task.yaml `options:` (validated at load); None: unchecked
    base_url_env: ClassVar[str | None] = None  # the variable its SDK reads for the server's URL (OPENAI_BASE_URL)
    self_hosted: ClassVar[bool] = False  # runs on hardware the team pays for (GPU hours), loading `+lora:` itself
    managed: ClassVar[bool] = False  # open models a host serves: per token (serverless) or per hour (a dedicated
    #                                  endpoint, decision.managed), next to API and self-hosted in `decide`
    logprobs: ClassVar[bool] = False  # its answers can carry their tokens' mean log-probability (see with_logprobs)
    streaming: ClassVar[bool] = False  # `stream: true` streams its answers, timing the first token
    batch: ClassVar[bool] = False  # has a Batch API (`batch_api()`): `batch: true` works
    tools: ClassVar[bool] = False  # sends tool definitions and reads tool calls (no built-in does yet)

    id: str
    max_concurrency: int  # API: connections; local: batch size
    hardware: str | None = None  # where its model runs, in its own words ('remote: api.openai.com'); None: here
    device: str | None = None  # the device its weights sit on here once loaded ('cpu', 'cuda:0')

    @classmethod
    def from_config(cls, config: ModelConfig) -> BaseProvider:
        """Build one for this model (may raise MissingCredentials)."""
        return cls(config)  # type: ignore[call-arg]

    @classmethod
    def with_logprobs(cls, config: ModelConfig) -> ModelConfig:
        """This model asking for token log-probabilities, where the backend must be asked (else as it is)."""
        return config

    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion:
        raise NotImplementedError

    def call_timeout_s(self, run_timeout_s: float) -> float | None:
        """How long one call may take: the run's `--timeout`, unless answers come late by design (None: no limit)."""
        return run_timeout_s

    def batch_api(self) -> Any:
        """Its Batch API (evals.providers.batch.BatchAPI), for a backend with `batch = True`."""
        raise EvalsError(f"{self.id}: no Batch API")

    async def prepare(self, store: Any, notice: Callable[[str], None] | None = None, *, max_retries: int = 16,
                      retry_for_s: float = 600.0) -> None:
        """Before a run's first call: keep state in the run store (a batch's ids), or refuse to start (EvalsError:
        a server without batch endpoints); `notice` hears its events; failing polls are bounded as a live call's
        retries are (`--retries`, `--retry-for`)."""

    async def aclose(self) -> None:
        """Let go of what it holds (connections)."""


class PluginProvider(BaseProvider):
    """An object with only the Provider protocol's members (a plugin's, a test's), with the base class's defaults
    where it has no member of its own: the one place such members are looked up."""

    factory: ClassVar[Callable[[ModelConfig], Provider] | None] = None  # a plain factory registered by a plugin

    def __init__(self, inner: Provider):
        self.inner = inner

    @classmethod
    def from_config(cls, config: ModelConfig) -> BaseProvider:
        return as_provider(cls.factory(config))  # type: ignore[misc]

    @property
    def id(self) -> str:  # type: ignore[override]
        return self.inner.id

    @property
    def max_concurrency(self) -> int:  # type: ignore[override]
        return self.inner.max_concurrency

    @property
    def hardware(self) -> str | None:  # type: ignore[override]
        return getattr(self.inner, "hardware", None)

    @property
    def device(self) -> str | None:  # type: ignore[override]
        return getattr(self.inner, "device", None)

    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion:
        return await self.inner.generate(messages, params)

    def call_timeout_s(self, run_timeout_s: float) -> float | None:
        return getattr(self.inner, "timeout_s", run_timeout_s)

    def batch_api(self) -> Any:
        return self.inner.batch_api()  # type: ignore[attr-defined]

    async def prepare(self, store: Any, notice: Callable[[str], None] | None = None, *, max_retries: int = 16,
                      retry_for_s: float = 600.0) -> None:
        if (prepare := getattr(self.inner, "prepare", None)) is not None:
            await prepare(store, notice, max_retries=max_retries, retry_for_s=retry_for_s)

    async def aclose(self) -> None:
        if (aclose := getattr(self.inner, "aclose", None)) is not None:
            await aclose()


def as_provider(provider: Provider) -> BaseProvider:
    """The provider with the base class's defaults: itself when it is a BaseProvider."""
    return provider if isinstance(provider, BaseProvider) else PluginProvider(provider)


def _load_builtins() -> None:
    for name in BUILTIN_MODULES:
        importlib.import_module(f"evals.providers.{name}")


providers: Registry[type[BaseProvider]] = Registry("provider", _load_builtins)


class NoOptions(BaseModel):
    """A provider that takes no `options:`."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class HttpOptions(NoOptions):
    """What every HTTP API provider takes."""

    headers: dict[str, str] = Field({}, description="Extra HTTP headers sent with every request (a gateway's "
                                                    "key, a team tag); credentials are redacted from manifests.")
    batch_poll_s: float | None = Field(None, gt=0, description="With batch: seconds between polls of a batch's "
                                                               "status (default 30).")


def register_provider(name: str, *, options: type[BaseModel] | None = None, batch: bool = False) -> Callable[[F], F]:
    """Register a BaseProvider subclass under `name` (it declares what it can do itself), or a plugin's plain
    factory `config -> Provider`, which gets the base class's defaults plus `options` (the pydantic model of its
    task.yaml `options:`, validated when the task loads; without one they go unchecked) and `batch` (its
    providers have `batch_api()`)."""

    def decorator(obj: F) -> F:
        if isinstance(obj, type) and issubclass(obj, BaseProvider):
            if options is not None or batch:
                raise TypeError(f"{obj.__qualname__}: declare options and batch as class attributes")
            providers.register(name)(obj)
            return obj
        made = type(obj.__name__, (PluginProvider,), {  # named as the factory, for the registry's messages
            "factory": staticmethod(obj), "options": options, "batch": batch, "__module__": obj.__module__,
            "__qualname__": obj.__qualname__, "__doc__": obj.__doc__})
        providers.register(name)(made)
        return obj

    return decorator


def provider_class(name: str) -> type[BaseProvider]:
    """What the provider registered as `name` can do (its class), without building one or importing its SDK.
    An unknown name raises EvalsError with the known ones."""
    return providers.get(name)


def has_batch_api(provider: str) -> bool:
    return provider_class(provider).batch


def no_batch_api(provider: str) -> str:
    """Why `batch` cannot be used with this provider."""
    with_batch = sorted(n for n in providers.names() if has_batch_api(n))
    return (f"the {provider} provider has no Batch API (batch works with {', '.join(with_batch)}); "
            "run it without --batch / batch: true")


def with_server(config: ModelConfig) -> ModelConfig:
    """This model with the server it will reach: its base_url, else the variable its provider's SDK reads
    (OPENAI_BASE_URL, ANTHROPIC_BASE_URL), so that caching, manifests and run reuse all tell servers apart."""
    env = provider_class(config.spec.provider).base_url_env
    url = config.base_url or (os.environ.get(env) if env else None) or None
    return config if url == config.base_url else dataclasses.replace(config, base_url=url)


def create_provider(config: ModelConfig) -> BaseProvider:
    """Build the provider named by `config.spec.provider` (may raise MissingCredentials); with `batch`, its
    calls go through its Batch API."""
    if config.adapter and not (Path(config.adapter) / "adapter_config.json").is_file():
        raise MissingCredentials(f"no LoRA adapter at '{config.adapter}' (the `adapter:` of {config.spec}; no "
                                 "adapter_config.json there): its hash goes into the run's manifest, so copy the "
                                 "adapter the server serves there, or remove `adapter:`")
    kind = provider_class(config.spec.provider)
    provider = kind.from_config(config)
    if not config.batch:
        return provider
    if not kind.batch:
        raise EvalsError(f"{config.spec}: {no_batch_api(config.spec.provider)}")
    from evals.providers.batch import BatchingProvider

    return BatchingProvider(provider, provider.batch_api(), poll_s=config.options.get("batch_poll_s"))


async def prepare_provider(provider: Provider, store: Any, notice: Callable[[str], None] | None = None, *,
                           max_retries: int = 16, retry_for_s: float = 600.0) -> None:
    """BaseProvider.prepare, for any provider."""
    await as_provider(provider).prepare(store, notice, max_retries=max_retries, retry_for_s=retry_for_s)


async def close_provider(provider: Provider) -> None:
    """BaseProvider.aclose, for any provider."""
    await as_provider(provider).aclose()
