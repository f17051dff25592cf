"""Rich progress for training: step, loss, best validation loss, tokens/s and ETA."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from finetune.checkpoint import Progress as TrainingState


class TrainingProgress:
    """One bar over optimiser steps. `console=None` uses the default console; output is off when it is
    not a terminal unless forced."""

    def __init__(self, console: Console | None, total_steps: int, state: TrainingState):
        self._state = state
        self._loss: float | None = None
        self._bar = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            TextColumn("step"),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("val {task.fields[val]}"),
            TextColumn("{task.fields[speed]} tok/s"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
        )
        self._task = self._bar.add_task("training", total=total_steps, completed=state.step,
                                        loss="-", val="-", speed="-")

    def __enter__(self) -> TrainingProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def step(self, loss: float) -> None:
        """After an optimiser step: the step's answer-token loss, smoothed for display."""
        self._loss = loss if self._loss is None else 0.9 * self._loss + 0.1 * loss
        s = self._state
        speed = s.tokens / s.train_seconds if s.train_seconds else 0.0
        self._bar.update(self._task, completed=s.step, loss=f"{self._loss:.3f}", speed=f"{speed:,.0f}")

    def validated(self) -> None:
        v = self._state.validations[-1]["val_loss"]
        best = self._state.best_val_loss
        text = "-" if v is None else f"{v:.3f}" + ("" if v == best else f" (best {best:.3f})")
        self._bar.update(self._task, val=text)
