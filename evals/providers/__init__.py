"""Model backends, each registered by name. SDKs and torch are imported only when a provider is built.

A provider factory takes a ModelConfig and returns an object with `id`, `max_concurrency` and
`async generate(messages, params) -> Completion`. It raises MissingCredentials when it cannot run
here (no key, package missing) and ProviderError when a call fails.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from evals.registry import Registry
from evals.types import Completion, GenerateParams, Message, ModelConfig

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
register_provider = providers.register


def create_provider(config: ModelConfig) -> Provider:
    """Build the provider named by `config.spec.provider` (may raise MissingCredentials)."""
    return providers.get(config.spec.provider)(config)


async def close_provider(provider: Provider) -> None:
    aclose = getattr(provider, "aclose", None)
    if aclose is not None:
        await aclose()
