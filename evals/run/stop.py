"""Stopping cleanly on SIGINT (Ctrl-C) and SIGTERM (a cancelled CI job): no new call starts, calls in
flight get a few seconds to finish and be stored, the rest are cancelled, the run is marked interrupted,
and the command says how to resume. A second signal stops at once."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable
from typing import TypeVar

GRACE_S = 5.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)
T = TypeVar("T")


class _Stop:
    def __init__(self) -> None:
        self.signal: int | None = None  # the signal stopping the work now, process-wide like signals themselves
        self.received: int | None = None  # the signal that stopped the last work, for its command to report
        self.runs: list[str] = []  # the runs that work touched (only those are marked interrupted and reported)


STOP = _Stop()


def stopping() -> bool:
    return STOP.signal is not None


async def interruptible(work: Awaitable[T], grace_s: float = GRACE_S) -> T:
    """Await `work`; on SIGINT or SIGTERM let it wind down (see the module) and cancel it after `grace_s`."""
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

    for sig in SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await task
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
        for timer in timers:
            timer.cancel()
        STOP.received, STOP.signal = STOP.signal, None  # later work in this process starts afresh
