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
    signal: int | None = None  # the signal that asked for the stop, process-wide like the signals themselves


STOP = _Stop()


def stopping() -> bool:
    return STOP.signal is not None


async def interruptible(work: Awaitable[T], grace_s: float = GRACE_S) -> T:
    """Await `work`; on SIGINT or SIGTERM let it wind down (see the module) and cancel it after `grace_s`."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    STOP.signal = None

    def on_signal(sig: int) -> None:
        if STOP.signal is not None:  # asked twice: stop now
            task.cancel()
            return
        STOP.signal = sig
        loop.call_later(grace_s, task.cancel)

    for sig in SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await task
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
