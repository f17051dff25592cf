"""Stopping cleanly on SIGINT (Ctrl-C) and SIGTERM (a cancelled CI job): no new call starts, calls in
flight get a few seconds to finish and be stored, the rest are cancelled, the run is marked interrupted,
and the command says how to resume. A second signal stops at once."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

GRACE_S = 5.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)
T = TypeVar("T")


class _Stop:
    def __init__(self) -> None:
        self.signal: int | None = None  # the signal stopping the work now, process-wide like signals themselves
        self.received: int | None = None  # the signal that stopped the last work, for its command to report
        self.runs: list[str] = []  # the runs that work touched (only those are marked interrupted and reported)
        self.interrupt: Callable[[int], None] | None = None  # what a signal does to the work now, on its loop


STOP = _Stop()


def stopping() -> bool:
    return STOP.signal is not None


async def interruptible(work: Awaitable[T], grace_s: float = GRACE_S, *, handle_signals: bool = True) -> T:
    """Await `work`; on SIGINT or SIGTERM let it wind down (see the module) and cancel it after `grace_s`.
    Off the main thread (`handle_signals` False) the thread that has the signals calls `STOP.interrupt`."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    STOP.signal, STOP.received, STOP.runs = None, None, []
    timers: list[asyncio.TimerHandle] = []

    def on_signal(sig: int) -> None:
        if STOP.signal is not None:  # asked twice: stop now
            task.cancel()
            return
        STOP.signal = sig
        timers.append(loop.call_later(grace_s, task.cancel))

    STOP.interrupt = on_signal
    for sig in SIGNALS if handle_signals else ():
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await task
    finally:
        for sig in SIGNALS if handle_signals else ():
            loop.remove_signal_handler(sig)
        STOP.interrupt = None
        for timer in timers:
            timer.cancel()
        STOP.received, STOP.signal = STOP.signal, None  # later work in this process starts afresh
