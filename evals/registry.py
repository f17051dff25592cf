"""Name -> factory registries for the two extension points (providers and metrics).

Built-ins register with the same decorator third parties use. A name that is not found triggers
loading of the `evals.plugins` entry points once, then fails with the known names and a
"did you mean". A name belongs to one factory: a plugin cannot shadow a built-in (or another plugin);
while plugins load, such a refusal is recorded in `plugin_errors` like any other failure to load.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from evals._util import suggest
from evals.errors import EvalsError

F = TypeVar("F", bound=Callable[..., Any])

PLUGIN_GROUP = "evals.plugins"
_plugins_loaded = False
plugin_errors: dict[str, str] = {}  # entry point -> why it failed to load (a broken plugin breaks nothing else)


def load_plugins() -> None:
    """Import every module advertised in the `evals.plugins` entry-point group (once)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            ep.load()
        except Exception as e:
            plugin_errors[f"{ep.name} = {ep.value}"] = f"{type(e).__name__}: {e}"


def _origin(factory: Any) -> str:
    """Where a factory is defined: module.qualname."""
    module = getattr(factory, "__module__", None) or "?"
    return f"{module}.{getattr(factory, '__qualname__', None) or type(factory).__qualname__}"


def _same(a: Any, b: Any) -> bool:
    """The same factory, or the same definition (its module imported again)."""
    return a is b or _origin(a) == _origin(b)


def _builtin(factory: Any) -> bool:
    """Defined inside evals (a regular package: no plugin's module can be named evals.*)."""
    module = getattr(factory, "__module__", None) or ""
    return module == "evals" or module.startswith("evals.")


class Registry(Generic[F]):
    def __init__(self, kind: str, builtins: Callable[[], None]):
        self.kind = kind
        self._factories: dict[str, F] = {}
        self._builtins = builtins
        self._builtins_loaded = False

    def register(self, name: str) -> Callable[[F], F]:
        """A decorator registering a factory under `name`. A name is taken once: a different factory for
        it (a plugin reusing a built-in's name) is refused with an EvalsError naming both; registering the
        same factory again (its module imported twice) is harmless."""

        def decorator(factory: F) -> F:
            if not _builtin(factory):
                self._ensure_builtins()  # the built-ins claim their names before anyone else can
            existing = self._factories.get(name)
            if existing is not None and not _same(existing, factory):
                raise EvalsError(f"{self.kind} '{name}' is already registered by {_origin(existing)}; "
                                 f"{_origin(factory)} cannot register it too: give it another name")
            self._factories[name] = factory
            return factory

        return decorator

    def _ensure_builtins(self) -> None:
        if not self._builtins_loaded:
            self._builtins_loaded = True
            self._builtins()

    def names(self) -> list[str]:
        self._ensure_builtins()
        load_plugins()
        return sorted(self._factories)

    def get(self, name: str) -> F:
        self._ensure_builtins()
        if name not in self._factories:
            load_plugins()
        if name not in self._factories:
            known = sorted(self._factories)
            hint = suggest(name, known, style=" Did you mean '{}'?")
            broken = "".join(f" Plugin {ep} failed to load: {why}." for ep, why in plugin_errors.items())
            raise EvalsError(f"unknown {self.kind} '{name}'.{hint} Known: {', '.join(known)}.{broken}")
        return self._factories[name]

    def create(self, name: str, /, **kwargs: Any) -> Any:
        """Call the factory, turning a bad keyword argument into a clear EvalsError."""
        factory = self.get(name)
        try:
            inspect.signature(factory).bind(**kwargs)
        except TypeError as e:
            params = list(inspect.signature(factory).parameters)
            unknown = [k for k in kwargs if k not in params]
            hint = suggest(unknown[0], params, style=" Did you mean '{}'?") if unknown else ""
            raise EvalsError(f"bad arguments for {self.kind} '{name}': {e}.{hint} "
                             f"It takes: {', '.join(params) or 'no arguments'}") from None
        try:
            return factory(**kwargs)
        except EvalsError:
            raise
        except Exception as e:  # a factory rejecting its configuration is a user mistake
            raise EvalsError(f"{self.kind} '{name}': {type(e).__name__}: {e}") from None
