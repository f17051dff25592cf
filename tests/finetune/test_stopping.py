"""`evals finetune` stops on the first SIGINT (Ctrl-C) or SIGTERM in every phase, within seconds: loading the
model, planning memory, validating, a training step, writing a checkpoint. Before the first step it leaves
nothing; after it, a checkpoint `--resume` continues from. Each phase is slowed in a real `evals finetune`
process (a tiny random model) and the signal sent while the process is inside it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from tests.finetune.test_finetune import train_rows, write_task
from tests.tiny_model import build_tiny_model

pytest.importorskip("peft")
ROOT = Path(__file__).parents[2]
# phase -> the function it spends its time in (the first call is slowed until the signal comes)
PHASES = {"load": "evals.providers.local:load_base_model", "plan": "finetune.memory:measure_profile",
          "validate": "finetune.trainer:mean_loss", "step": "finetune.trainer:TrainingStep.backward",
          "save": "finetune.trainer:save_state"}
SLOWED = textwrap.dedent('''
    """Run `evals finetune`, the first call of one phase's function slowed: it says so, then waits (`save` only
    briefly: a checkpoint being written is waited for, then training stops)."""
    import functools, importlib, os, sys, time

    where, name = os.environ["SLOW"].split(":")
    owner = importlib.import_module(where)
    *path, attr = name.split(".")
    for part in path:
        owner = getattr(owner, part)
    real, calls = getattr(owner, attr), []

    @functools.wraps(real)
    def slowed(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            print("IN PHASE", file=sys.stderr, flush=True)
            end = time.monotonic() + float(os.environ["SLOW_FOR"])
            while time.monotonic() < end:
                time.sleep(0.02)
        return real(*args, **kwargs)

    setattr(owner, attr, slowed)
    from evals.cli import main
    sys.argv = ["evals", *sys.argv[1:]]
    main()
''')


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("stopping")
    (root / "slowed.py").write_text(SLOWED)
    return build_tiny_model(root / "tiny"), write_task(root / "qa", train_rows(24)), root


def finetune(setup, cwd: Path, *args: str, slow: str | None = None, signal_to_send: int | None = None
             ) -> tuple[subprocess.CompletedProcess, float | None]:
    """`evals finetune` in `cwd`; with `slow`, that phase slowed and `signal_to_send` sent once inside it.
    Returns the finished process and the seconds from the signal to its exit."""
    tiny, task, root = setup
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{ROOT}", "SLOW": PHASES.get(slow, PHASES["load"]),
           "SLOW_FOR": "2" if slow == "save" else "120" if slow else "0"}
    command = [sys.executable, str(root / "slowed.py"), "finetune", str(task), "--base", f"local:{tiny}",
               "--epochs", "2", "--batch-size", "4", "--grad-accum", "1", "--dtype", "float32", "--progress",
               "plain", *args]
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, sent = [], None
    if slow:
        for line in process.stderr:
            lines.append(line)
            if line.startswith("IN PHASE"):
                process.send_signal(signal_to_send)
                sent = time.monotonic()
                break
    out, err = process.communicate(timeout=120)
    took = time.monotonic() - sent if sent is not None else None
    return subprocess.CompletedProcess(command, process.returncode, out, "".join(lines) + err), took


@pytest.mark.parametrize("phase", ["load", "plan", "validate"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_before_the_first_step_ends_at_once_and_leaves_nothing(setup, tmp_path, phase, sig) -> None:
    done, took = finetune(setup, tmp_path, slow=phase, signal_to_send=sig)
    assert done.returncode == 128 + sig, done.stderr
    assert took < 20  # the phase would have gone on for two minutes
    assert "Traceback" not in done.stderr
    before = "before training started" if phase != "validate" else "before the first step"
    assert f"stopped by {signal.Signals(sig).name} {before}; nothing was" in done.stderr
    assert not (tmp_path / "finetune" / "adapters" / "qa").exists()


@pytest.mark.parametrize("phase", ["step", "save"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_once_training_began_keeps_a_checkpoint_to_resume(setup, tmp_path, phase, sig) -> None:
    done, took = finetune(setup, tmp_path, slow=phase, signal_to_send=sig)
    assert done.returncode == 128 + sig, done.stderr
    assert took < 20 and "Traceback" not in done.stderr
    assert "interrupted at step 0/12; the checkpoint is in" in done.stderr
    state = tmp_path / "finetune" / "adapters" / "qa" / "checkpoint" / "state.pt"
    assert torch.load(state, weights_only=False)["progress"]["step"] == 0  # the step cut short left no trace
    if phase == "step" and sig == signal.SIGINT:  # the checkpoint resumes to the end
        resumed, _ = finetune(setup, tmp_path, "--resume")
        assert resumed.returncode == 0, resumed.stderr
        assert (tmp_path / "finetune" / "adapters" / "qa" / "adapter_config.json").is_file()
        assert not state.exists()


def test_validation_shows_its_progress(setup, tmp_path) -> None:
    done, _ = finetune(setup, tmp_path, "--epochs", "1")
    assert done.returncode == 0, done.stderr
    assert "validating: rows " in done.stderr
