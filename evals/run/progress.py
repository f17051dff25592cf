"""Rich progress for long jobs: counts, ETA, errors and, for API runs, cost so far."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RunProgress:
    """One bar per model run. Use as a context manager; `enabled=False` makes it silent."""

    def __init__(self, console: Console | None = None, enabled: bool = True):
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("errors {task.fields[errors]}"),
            TextColumn("${task.fields[cost]:.4f}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
        )

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def add(self, label: str, total: int, completed: int = 0) -> TaskID:
        return self._progress.add_task(label, total=total, completed=completed, errors=0, cost=0.0)

    def advance(self, bar: TaskID, *, cost: float = 0.0, error: bool = False) -> None:
        fields = self._progress.tasks[self._index(bar)].fields
        self._progress.update(bar, advance=1, cost=fields["cost"] + cost, errors=fields["errors"] + int(error))

    def _index(self, bar: TaskID) -> int:
        return next(i for i, t in enumerate(self._progress.tasks) if t.id == bar)
