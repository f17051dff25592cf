"""A run's bookkeeping once its calls are over, which never fails the run: a write that cannot be made is said
in one line, and the run still ends with its status."""

from __future__ import annotations

import sys
from collections.abc import Callable

from evals.providers import Provider
from evals.run.hardware import hardware_of
from evals.run.store import Store


def settle_run(store: Store, run_id: str, status: str | None, warn: Callable[[str], None], *,
               provider: Provider | None = None, concurrency: int = 0, busy_s: float = 0.0, served: int = 0) -> None:
    """A run's bookkeeping once its calls are over: the busy time of `provider`'s calls and where it ran (when
    given), then the run's `status` (None: left as it is). Never raises: what cannot be written is said through
    `warn` in one line, and the status is written whatever became of the rest (a run that cannot say it ended
    shows as interrupted once its process is gone)."""
    try:
        if provider is not None:
            store.add_busy_time(run_id, busy_s, served, concurrency, hardware_of(provider))
    except Exception as e:  # the store failed, or the provider could not say where it ran
        warn(f"run {run_id}: its busy time was not recorded ({type(e).__name__}: {e})")
    if status is None:
        return
    try:
        store.set_status(run_id, status)
    except Exception as e:
        warn(f"run {run_id} ended {status}, but the store could not record it ({type(e).__name__}: {e}); "
             "`evals runs` shows it as interrupted once this process ends")


def to_stderr(text: str) -> None:
    """Where a run's one-line notices go when nobody asked for them elsewhere."""
    print(f"warning: {text}", file=sys.stderr)
