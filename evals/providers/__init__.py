"""Model backends, each registered by name. SDKs and torch are imported only when a provider is built.

A provider factory takes a ModelConfig and returns an object with `id`, `max_concurrency` and
`async generate(messages, params) -> Completion`. It raises MissingCredentials when it cannot run
here (no key, package missing) and ProviderError when a call fails.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

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


def register_provider(name: str, *, options: type[BaseModel] | None = None) -> Callable[[F], F]:
    """Register a provider factory under `name`, with the pydantic model of its task.yaml `options:`, which
    is validated (file, line, field) when the task loads; without one (a plugin's), options go unchecked."""

    def decorator(factory: F) -> F:
        factory.options_model = options  # type: ignore[attr-defined]
        return providers.register(name)(factory)

    return decorator


def options_model(provider: str) -> type[BaseModel] | None:
    """The options model of a provider (None for a plugin registered without one: its options go unchecked)."""
    return getattr(providers.get(provider), "options_model", None)


def create_provider(config: ModelConfig) -> Provider:
    """Build the provider named by `config.spec.provider` (may raise MissingCredentials)."""
    return providers.get(config.spec.provider)(config)


async def close_provider(provider: Provider) -> None:
    aclose = getattr(provider, "aclose", None)
    if aclose is not None:
        await aclose()
