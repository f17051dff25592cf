"""Where a model ran, in words, so a measured latency or throughput says which hardware it holds for."""

from __future__ import annotations

import os
import platform
from functools import cache
from pathlib import Path

from evals._util import imported
from evals.providers import Provider, as_provider


@cache
def cpu_name() -> str:
    """This machine's CPU model, e.g. 'Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz'."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def this_machine(device: str | None = None) -> str:
    """'GPU: NVIDIA H200 (1x)' for a model on a CUDA `device`, or (no device named) when torch is loaded and sees
    CUDA; else 'CPU: <model> (<n> cores)'."""
    torch = imported("torch")  # never imported just to look (evals --help stays fast), never read half-imported
    if device != "cpu" and torch is not None and torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return f"GPU: {names[0]} ({len(names)}x)"
    return f"CPU: {cpu_name()} ({os.cpu_count()} cores)"


def on_cpu(hardware: str | None) -> bool:
    """Whether a measurement was made on a CPU (this machine without a GPU)."""
    return bool(hardware) and hardware.startswith("CPU")


def hardware_of(provider: Provider) -> str:
    """Where a provider's model runs: its own word (a remote server says so), else this machine (the device a
    loaded local model sits on)."""
    provider = as_provider(provider)
    return provider.hardware or this_machine(provider.device)
