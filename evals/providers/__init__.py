"""Model backends, each registered by name. SDKs and torch are imported only when a provider is built.

A provider factory takes a ModelConfig and returns an object with `id`, `max_concurrency` and
`async generate(messages, params) -> Completion`. It raises MissingCredentials when it cannot run
here (no key, package missing) and ProviderError when a call fails. A provider registered with
`batch=True` also has `batch_api()` (see evals.providers.batch): a model with `batch: true` is then
served through its Batch API, behind the same `generate`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from evals.errors import EvalsError, MissingCredentials
from evals.registry import Registry
from evals.types import Completion, GenerateParams, Message, ModelConfig

F = TypeVar("F", bound=Callable[..., Any])

BUILTIN_MODULES = ("openai", "anthropic", "local", "fake")


@runtime_checkable
class Provider(Protocol):
    id: str
    max_concurrency: int

    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion: ...


def _load_builtins() -> None:
    for name in BUILTIN_MODULES:
        importlib.import_module(f"evals.providers.{name}")


providers: Registry[Callable[[ModelConfig], Provider]] = Registry("provider", _load_builtins)


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
    """Register a provider factory under `name`, with the pydantic model of its task.yaml `options:`, which
    is validated (file, line, field) when the task loads; without one (a plugin's), options go unchecked.
    `batch`: its providers have a Batch API (`batch_api()`)."""

    def decorator(factory: F) -> F:
        factory.options_model = options  # type: ignore[attr-defined]
        factory.batch = batch  # type: ignore[attr-defined]
        return providers.register(name)(factory)

    return decorator


def has_batch_api(provider: str) -> bool:
    return bool(getattr(providers.get(provider), "batch", False))


def no_batch_api(provider: str) -> str:
    """Why `batch` cannot be used with this provider."""
    with_batch = sorted(n for n in providers.names() if has_batch_api(n))
    return (f"the {provider} provider has no Batch API (batch works with {', '.join(with_batch)}); "
            "run it without --batch / batch: true")


def options_model(provider: str) -> type[BaseModel] | None:
    """The options model of a provider (None for a plugin registered without one: its options go unchecked)."""
    return getattr(providers.get(provider), "options_model", None)


def create_provider(config: ModelConfig) -> Provider:
    """Build the provider named by `config.spec.provider` (may raise MissingCredentials); with `batch`, its
    calls go through its Batch API."""
    if config.adapter and not (Path(config.adapter) / "adapter_config.json").is_file():
        raise MissingCredentials(f"no LoRA adapter at '{config.adapter}' (the `adapter:` of {config.spec}; no "
                                 "adapter_config.json there): its hash goes into the run's manifest, so copy the "
                                 "adapter the server serves there, or remove `adapter:`")
    provider = providers.get(config.spec.provider)(config)
    if not config.batch:
        return provider
    if not has_batch_api(config.spec.provider):
        raise EvalsError(f"{config.spec}: {no_batch_api(config.spec.provider)}")
    from evals.providers.batch import BatchingProvider

    return BatchingProvider(provider, provider.batch_api())  # type: ignore[attr-defined]


async def prepare_provider(provider: Provider, store: Any, notice: Callable[[str], None] | None = None, *,
                           max_retries: int = 16, retry_for_s: float = 600.0) -> None:
    """Before a run's first call: a provider that keeps state in the run store (a batch's ids) gets it, and
    may refuse to start (EvalsError: a server without batch endpoints); `notice` hears its events. A batch's
    failing polls are bounded as a live call's retries are (`--retries`, `--retry-for`)."""
    prepare = getattr(provider, "prepare", None)
    if prepare is not None:
        await prepare(store, notice, max_retries=max_retries, retry_for_s=retry_for_s)


async def close_provider(provider: Provider) -> None:
    aclose = getattr(provider, "aclose", None)
    if aclose is not None:
        await aclose()
