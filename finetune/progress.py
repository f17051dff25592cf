"""Progress for training: step, epoch, loss, best validation loss, tokens/s and ETA; a live bar on a
terminal, or timestamped plain lines (about every 10% of the steps or 30 s, and at each validation) in
logs and pipes, as evals.run.progress does for runs."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from evals.run.progress import Pacer, clock, plain_line
from finetune.checkpoint import Progress as TrainingState


class TrainingProgress:
    """One bar over optimiser steps. `console=None` uses the default console; output is off when it is
    not a terminal unless forced."""

    def __init__(self, console: Console | None, total_steps: int, state: TrainingState, mode: str = "bar",
                 epochs: int = 1):
        self._state = state
        self._loss: float | None = None
        self._console = console or Console(stderr=True)
        self._mode, self._epochs = mode, epochs
        self._pacer = Pacer(total_steps, state.step)
        self._val = "-"
        self._val_pacer: Pacer | None = None
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
            console=self._console,
            disable=mode != "bar",
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
        self._pacer.done = s.step
        if self._mode == "plain" and self._pacer.due():
            self._line(f"{speed:,.0f} tok/s")

    def validating(self, done: int, total: int) -> None:
        """Validation rows done (of this process's share): on the bar, and in plain lines as often as steps'."""
        if self._val_pacer is None or done < self._val_pacer.done:  # a new validation
            self._val_pacer = Pacer(total)
            self._val_pacer.due()  # its start is not a line of its own
        pacer = self._val_pacer
        pacer.done = done
        self._bar.update(self._task, val=f"validating {done}/{total}")
        if self._mode == "plain" and pacer.due():
            _, eta = pacer.rate_and_eta()
            plain_line(self._console, f"validating: rows {done}/{total} ({done / total:.0%}) eta {clock(eta)}")
        if done >= total:
            self._val_pacer = None

    def validated(self) -> None:
        v = self._state.validations[-1]["val_loss"]
        best = self._state.best_val_loss
        text = "-" if v is None else f"{v:.3f}" + ("" if v == best else f" (best {best:.3f})")
        self._bar.update(self._task, val=text)
        self._val = text
        if self._mode == "plain":
            self._line("validated")

    def _line(self, tail: str) -> None:
        s, p = self._state, self._pacer
        _, eta = p.rate_and_eta()
        loss = "-" if self._loss is None else f"{self._loss:.3f}"
        plain_line(self._console, f"training: step {s.step}/{p.total} ({s.step / p.total:.0%}) epoch "
                                  f"{min(s.epoch + 1, self._epochs)}/{self._epochs} loss {loss} val {self._val} "
                                  f"{tail} eta {clock(eta)}")
