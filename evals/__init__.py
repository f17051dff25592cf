"""evals: measure whether a prompted API model is good enough, or a LoRA fine-tune is worth it."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_run", "load_task"]


def __getattr__(name: str) -> Any:  # lazy, so `evals --help` starts without pandas or datasets
    if name == "load_run":
        from evals.run.store import load_run

        return load_run
    if name == "load_task":
        from evals.data.tasks import load_task

        return load_task
    raise AttributeError(name)
