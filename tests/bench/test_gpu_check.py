"""bench/gpu_check.py: without CUDA it says so and exits 2; with --smoke the whole script runs on this CPU
(a tiny random model) and its checks hold, so the one run a GPU lease allows is not spent on a typo."""

from __future__ import annotations

import importlib.util
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
    assert "tiny config" in out and "LoRA train tokens/s (the trainer's step)" in out
    assert "(micro-batches of 4, checkpointing off)" in out  # the trainer's plan for the 4 training rows
    assert out.count(": ok") == 3 and "FAILED" not in out


def test_training_is_timed_on_the_fine_tunes_own_step(monkeypatch) -> None:
    from finetune.trainer import TrainingStep

    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu_check = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", gpu_check)
    spec.loader.exec_module(gpu_check)
    steps = []
    real_step = TrainingStep.__call__

    def step(self, rows):
        steps.append((self.micro_batch, [len(b) for b in rows], self.optimizer.param_groups[0]["lr"]))
        return real_step(self, rows)

    monkeypatch.setattr(TrainingStep, "__call__", step)
    shape = gpu_check.SMOKE[0]
    rate, peak, plan = gpu_check.train_rate(shape, "cpu", torch.float32)
    assert rate > 0 and peak is None  # no GPU memory on a CPU
    assert len(steps) == 1 + shape.train_steps  # the warm-up, then the timed steps
    assert all(s[:2] == (plan.micro_batch, [shape.train_rows]) for s in steps)
    assert steps[0][2] > steps[-1][2] > 0  # the trainer's schedule moves the learning rate step by step
