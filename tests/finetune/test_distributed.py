"""Data-parallel fine-tuning with torchrun: two CPU processes on gloo train the adapter a one-process run
trains with the same effective batch (allclose), rank 0 alone writes and prints, and a checkpoint is
resumed only by as many processes as made it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("peft")
torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)

from evals.data.tasks import load_task  # noqa: E402
from finetune.config import load_config  # noqa: E402
from finetune.distributed import World  # noqa: E402
from finetune.trainer import TrainingInterrupted, train  # noqa: E402
from tests.conftest import QA_TASK, qa_rows  # noqa: E402
from tests.tiny_model import build_tiny_model  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# 21 rows: 4 held out, 17 to train on in batches of 4 (two rows per process), two batches a step: three
# optimiser steps an epoch, the last one a single row that leaves one process nothing to train on.
SETTINGS = dict(rank=8, alpha=16, dropout=0.0, learning_rate=3e-2, epochs=2, batch_size=4, grad_accum=2,
                val_fraction=0.2, evals_per_epoch=1, patience=3, dtype="float32",
                target_modules=["q_proj", "v_proj", "up_proj"])


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(tiny model, task folder, settings YAML)."""
    root = tmp_path_factory.mktemp("ddp")
    tiny = build_tiny_model(root / "tiny")
    task = root / "qa"
    task.mkdir()
    (task / "task.yaml").write_text(yaml.safe_dump({**QA_TASK, "dataset": {**QA_TASK["dataset"],
                                                                           "train": "train.jsonl"}}))
    (task / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in qa_rows(6)))
    (task / "train.jsonl").write_text("".join(json.dumps({"id": f"tr{i}", "question": f"question {i}",
                                                          "reference": {"labels": [f"l{i % 3}"]}}) + "\n"
                                              for i in range(100, 121)))
    config = root / "ddp.yaml"
    config.write_text(yaml.safe_dump({**SETTINGS, "base": f"local:{tiny}"}))
    return tiny, task, config


def torchrun(cwd: Path, task: Path, config: Path, *args: str, module: str = "evals") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", module, "finetune", str(task), "--config", str(config), "--progress", "plain", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_two_processes_train_the_adapter_one_process_trains(setup, tmp_path) -> None:
    from safetensors.torch import load_file

    _, task, config = setup
    result = torchrun(tmp_path, task, config)
    assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "finetune" / "adapters" / "qa"
    two = json.loads((out / "manifest.json").read_text())
    assert not (out / "checkpoint").exists()
    assert result.stdout.count("use it as:") == 1  # rank 0 alone prints
    assert "data-parallel: 2 processes (gloo" in result.stderr
    # each process plans for its 2 rows of every batch of 4, in its half of the machine's RAM
    assert "memory: micro-batches of 2 row(s), gradient checkpointing off" in result.stderr
    assert "GB free (host RAM, split among 2 processes)" in result.stderr
    assert two["memory"]["micro_batch"] == 2

    one = train(load_task(str(task)), load_config(config), tmp_path / "single")
    assert two["parallel"]["processes"] == 2 and one["parallel"]["processes"] == 1
    assert two["steps"] == one["steps"] == {"done": 6, "planned": 6} and two["tokens"] == one["tokens"]
    assert [v["val_loss"] for v in two["validations"]] == pytest.approx([v["val_loss"] for v in one["validations"]],
                                                                        rel=1e-5)
    assert one["validations"][-1]["val_loss"] < one["validations"][0]["val_loss"]  # it did learn
    a, b = load_file(out / "adapter_model.safetensors"), load_file(tmp_path / "single" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4) for k in a)


def test_one_process_short_of_memory_stops_them_all_with_one_message(setup, tmp_path) -> None:
    _, task, config = setup
    result = torchrun(tmp_path, task, config, module="tests.finetune.short_of_memory")  # a hang: the timeout fails it
    assert result.returncode != 0
    message = re.findall(r"error: estimated peak memory .*", result.stderr)
    assert len(message) == 1, result.stderr  # rank 0 says it for all
    assert ("does not fit in host RAM, split among 2 processes: " in message[0] and "0.0 GB free" in message[0]
            and "--force" in message[0])
    assert "exitcode  : 2" in result.stderr  # a refusal, not a crash: torchrun's own ChildFailedError is the one
    assert result.stderr.count("Traceback") == 1 and "ChildFailedError" in result.stderr  # traceback printed
    assert not (tmp_path / "finetune").exists()  # nothing written


def test_a_checkpoint_is_resumed_only_by_as_many_processes_as_made_it(setup, tmp_path) -> None:
    _, task, config = setup
    out = tmp_path / "finetune" / "adapters" / "qa"

    def stop_at_2(progress) -> None:
        if progress.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted, match="Continue with: evals finetune qa --resume"):
        train(load_task(str(task)), load_config(config), out, on_step=stop_at_2)
    result = torchrun(tmp_path, task, config, "--resume")
    assert result.returncode != 0
    assert (f"error: the checkpoint in {Path('finetune/adapters/qa/checkpoint')} was made by 1 training process, "
            "and this is 2: resume it with the same number (plain `evals finetune ... --resume`)") in result.stderr
    assert (out / "checkpoint" / "state.pt").is_file()  # still there to resume as it was made
    resumed = train(load_task(str(task)), load_config(config), out, resume=True)
    assert resumed["steps"]["done"] == 6


def test_a_batch_is_shared_out_by_rank_and_a_small_one_leaves_some_ranks_none() -> None:
    rows = [list("abcd"), ["e"]]
    assert list(World(rank=0, size=2).shards(rows)) == [["a", "c"], ["e"]]
    assert list(World(rank=1, size=2).shards(rows)) == [["b", "d"]]
    assert list(World().shards(rows)) == rows
    assert World(rank=1, size=4, local_size=4).command == "torchrun --nproc-per-node 4 -m evals"
