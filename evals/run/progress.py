"""Progress for long jobs: counts, ETA, errors and, for API runs, cost so far.

Three modes (`--progress`, or EVALS_PROGRESS): `bar`, rich's live bars (the default on a terminal);
`plain`, one timestamped line per bar at about every 10% of the work or every 30 seconds, whichever
comes first, and at the end (the default when stderr is not a terminal: CI logs, pipes, nohup); and
`none`, nothing but the command's own result.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

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

MODES = ("bar", "plain", "none")
ENV = "EVALS_PROGRESS"
EVERY_FRACTION = 0.1
EVERY_S = 30.0


def progress_mode(chosen: str | None, console: Console, *, quiet: bool = False) -> str:
    """The mode to use: the one chosen (flag or EVALS_PROGRESS), else none when `quiet` (JSON output),
    else bar on a terminal and plain elsewhere."""
    from evals.errors import EvalsError

    chosen = chosen or os.environ.get(ENV) or None
    if chosen is not None and chosen not in MODES:
        raise EvalsError(f"--progress must be one of {', '.join(MODES)}, got '{chosen}'", field="progress")
    return chosen or ("none" if quiet else "bar" if console.is_terminal else "plain")


def per_time(rate: float) -> str:
    """A rate a person reads at a glance: '12.4/s', or '1.8/min' when slower than one a second."""
    return f"{rate:.1f}/s" if rate >= 1 else f"{rate * 60:.1f}/min"


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class Pacer:
    """When a plain line is due: the work crossed another tenth, 30 seconds passed, or it is done."""

    total: int
    done: int = 0
    start: float = field(default_factory=time.monotonic)
    last_at: float = field(default_factory=time.monotonic)
    last_tenth: int = -1
    initial: int = field(init=False)  # done when this session started (a resumed run's earlier work)

    def __post_init__(self) -> None:
        self.initial = self.done

    def due(self) -> bool:
        now = time.monotonic()
        tenth = int(self.done / self.total / EVERY_FRACTION) if self.total else 10
        if self.done >= self.total or tenth > self.last_tenth or now - self.last_at >= EVERY_S:
            self.last_at, self.last_tenth = now, tenth
            return True
        return False

    def rate_and_eta(self) -> tuple[float | None, float | None]:
        """Items per second this session and the seconds left at that rate."""
        elapsed = time.monotonic() - self.start
        rate = (self.done - self.initial) / elapsed if elapsed > 0 and self.done > self.initial else None
        return rate, (self.total - self.done) / rate if rate else None


def plain_line(console: Console, text: str) -> None:
    """One timestamped line, no control characters (markup and highlighting off)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    console.print(f"{stamp} {text}", markup=False, highlight=False, soft_wrap=True)


@dataclass
class _Line:
    label: str
    pacer: Pacer
    errors: int = 0
    cost: float = 0.0


class RunProgress:
    """One bar (or plain line) per model run. Use as a context manager."""

    def __init__(self, console: Console | None = None, mode: str = "bar"):
        self._console = console or Console(stderr=True)
        self._mode = mode
        self._lines: dict[int, _Line] = {}
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("errors {task.fields[errors]}"),
            TextColumn("${task.fields[cost]:.4f}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self._console,
            disable=mode != "bar",
        )

    def __enter__(self) -> RunProgress:
        self._progress.start()
        if self._mode == "plain":  # work that advances in big steps (a local batch) still shows it is alive
            self._quiet = threading.Event()
            threading.Thread(target=self._heartbeat, name="progress-heartbeat", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._mode == "plain":
            self._quiet.set()
        self._progress.stop()

    def _heartbeat(self) -> None:
        """Every EVERY_S without a line, a line for each unfinished run, though nothing advanced."""
        while not self._quiet.wait(min(1.0, EVERY_S)):
            for line in list(self._lines.values()):
                p = line.pacer
                if p.done < p.total and time.monotonic() - p.last_at >= EVERY_S:
                    p.last_at = time.monotonic()
                    self._print(line)

    def add(self, label: str, total: int, completed: int = 0) -> TaskID:
        bar = self._progress.add_task(label, total=total, completed=completed, errors=0, cost=0.0)
        if self._mode == "plain":
            line = self._lines[bar] = _Line(label, Pacer(total, completed))
            line.pacer.due()  # the start counts as the first line
            self._print(line, started=True)
        return bar

    def advance(self, bar: TaskID, *, done: int = 1, cost: float = 0.0, errors: int = 0) -> None:
        """`done` more attempts stored, `errors` of them failed calls, costing `cost` more."""
        if self._mode == "none":  # nothing shown: nothing to keep
            return
        line = self._lines.get(bar)
        if line is not None:
            line.pacer.done += done
            line.errors += errors
            line.cost += cost
            if line.pacer.due():
                self._print(line)
            return
        fields = self._progress.tasks[self._index(bar)].fields
        self._progress.update(bar, advance=done, cost=fields["cost"] + cost, errors=fields["errors"] + errors)

    def note(self, text: str) -> None:
        """An event worth a line of its own (a provider paused by its circuit breaker, say)."""
        if self._mode == "plain":
            plain_line(self._console, text)
        elif self._mode == "bar":
            self._progress.console.print(text, markup=False, highlight=False)

    def _print(self, line: _Line, started: bool = False) -> None:
        p = line.pacer
        rate, eta = p.rate_and_eta()
        pct = f" ({p.done / p.total:.0%})" if p.total else ""
        text = f"{line.label}: {p.done}/{p.total}{pct} errors {line.errors} cost ${line.cost:.4f}"
        if not started:
            text += f" {per_time(rate)} eta {clock(eta)}" if rate else " eta -"
        plain_line(self._console, text + (" (started)" if started else ""))

    def _index(self, bar: TaskID) -> int:
        return next(i for i, t in enumerate(self._progress.tasks) if t.id == bar)

