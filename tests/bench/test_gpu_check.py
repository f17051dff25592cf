"""bench/gpu_check.py: without CUDA it says so and exits 2; with --smoke the whole script runs on this CPU
(a tiny random model) and its checks hold, so the one run a GPU lease allows is not spent on a typo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_without_cuda_it_says_so_and_exits_2() -> None:
    result = _run()
    assert result.returncode == 2
    assert "needs a CUDA GPU" in result.stderr and "--smoke" in result.stderr and "Traceback" not in result.stderr


def test_the_smoke_run_measures_everything_and_its_checks_hold() -> None:
    result = _run("--smoke")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "tiny config" in out and "LoRA train tokens/s" in out
    assert out.count(": ok") == 3 and "FAILED" not in out
