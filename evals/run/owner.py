"""Which process a running run belongs to, so that a run whose process is gone reads as interrupted, not running."""

from __future__ import annotations

import os
import socket

SAME_START_S = 1.0  # a process's start time as read twice differs by less than this; a reused pid's by more


def this_process() -> str:
    """'HOST BOOT PID START': this machine (its name and when it booted), this process and when it started."""
    import psutil

    return f"{socket.gethostname()} {psutil.boot_time():.0f} {os.getpid()} {psutil.Process().create_time():.2f}"


def gone(owner: str | None) -> bool:
    """Whether the process `owner` names has ended. Known only for a process of this machine (since its last boot):
    a run of another machine, or from a store older than owners, is taken as alive."""
    if not owner:
        return False
    import psutil

    try:
        host, boot, pid, start = owner.split()
        if host != socket.gethostname():
            return False
        if abs(float(boot) - psutil.boot_time()) > 2:  # this machine rebooted since: every process of before is gone
            return True
        return abs(psutil.Process(int(pid)).create_time() - float(start)) > SAME_START_S  # the pid reused since
    except psutil.NoSuchProcess:
        return True
    except (ValueError, psutil.Error):  # an owner this version cannot read, or a process it may not inspect
        return False


def live_status(status: str, owner: str | None) -> str:
    """A stored status as it stands: `running` whose process has ended is `interrupted`."""
    return "interrupted" if status == "running" and gone(owner) else status
