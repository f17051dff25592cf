"""Running a task: the runner (cache, concurrency, retries, budget), the store, manifests, progress, latency.

The package is also the public `evals.run(task, models=None, ...)`: calling it runs a task as `evals run` does
(evals.run.api.run), so that `evals.run` is one object whether or not a submodule was imported first."""

import sys
import types
from typing import Any


class _RunPackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """evals.run.api.run: run a task's golden set, score and store every answer; each stored run back."""
        from evals.run.api import run

        return run(*args, **kwargs)


sys.modules[__name__].__class__ = _RunPackage
