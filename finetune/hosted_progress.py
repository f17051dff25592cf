"""Progress while a hosted fine-tune runs: the job's status, step/total, train and validation loss (from its
metrics events), trained tokens and ETA; a live bar on a terminal, or timestamped plain lines (each status
change and event, and about every 10% of the steps or 30 s) in logs and pipes, as evals.run.progress does."""

from __future__ import annotations

from typing import Any, Self

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from evals.run.progress import Pacer, clock, plain_line


def _loss(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


class HostedProgress:
    """One bar over the job's steps (its total known from the first metrics event)."""

    def __init__(self, console: Console | None, job_id: str, mode: str = "bar"):
        self._console = console or Console(stderr=True)
        self._mode, self._job = mode, job_id
        self._status = ""
        self._pacer: Pacer | None = None
        self._last: dict[str, Any] = {}
        self._bar = Progress(
            TextColumn("[bold]fine-tuning"),
            TextColumn("{task.fields[status]}"),
            BarColumn(),
            TextColumn("step"),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("val {task.fields[val]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self._console,
            disable=mode != "bar",
        )
        self._task = self._bar.add_task("fine-tuning", total=None, status="-", loss="-", val="-")

    def __enter__(self) -> Self:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def status(self, status: str, trained_tokens: int | None = None) -> None:
        """The job's status as just polled; a line when it changed."""
        if status == self._status:
            return
        self._status = status
        self._bar.update(self._task, status=status)
        tokens = f", {trained_tokens:,} trained tokens" if trained_tokens else ""
        self.note(f"job {self._job}: {status}{tokens}")

    def metrics(self, data: dict[str, Any]) -> None:
        """A metrics event: step, total_steps, train_loss, valid_loss."""
        step, total = int(data.get("step") or 0), data.get("total_steps")
        if total and self._pacer is None:
            self._pacer = Pacer(int(total), 0)
        self._last = data
        self._bar.update(self._task, completed=step, total=total, loss=_loss(data.get("train_loss")),
                         val=_loss(data.get("valid_loss")))
        if self._pacer is not None:
            self._pacer.done = step
            if self._mode == "plain" and self._pacer.due():
                _, eta = self._pacer.rate_and_eta()
                plain_line(self._console, f"fine-tuning: step {step}/{self._pacer.total} "
                                          f"({step / self._pacer.total:.0%}) loss {_loss(data.get('train_loss'))} "
                                          f"val {_loss(data.get('valid_loss'))} {self._status} eta {clock(eta)}")

    def note(self, text: str) -> None:
        """A line of its own: a status change or one of the job's messages."""
        if self._mode == "plain":
            plain_line(self._console, text)
        elif self._mode == "bar":
            self._bar.console.print(text, markup=False, highlight=False)
