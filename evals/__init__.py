"""evals: measure whether a prompted API model is good enough, or a LoRA fine-tune is worth it."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["by_example", "load_run", "load_task", "run"]


def __getattr__(name: str) -> Any:  # lazy, so `evals --help` starts without pandas or datasets
    if name == "load_run":
        from evals.run.store import load_run

        return load_run
    if name == "by_example":  # a repeated run's frame with one row per example (its pass fraction)
        from evals.analyse.repeats import by_example

        return by_example
    if name == "run":  # the run package, which is callable: run a task and store every answer, as `evals run` does
        import importlib

        return importlib.import_module("evals.run")
    if name == "load_task":
        from evals.data.tasks import load_task

        return load_task
    raise AttributeError(name)
