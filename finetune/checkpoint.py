"""Training state saved between steps, so an interrupted fine-tune resumes where it stopped.

Layout under the output folder: `checkpoint/state.pt` (LoRA weights, optimiser, schedule, RNG,
position, history) and `checkpoint/best/` (the adapter with the best validation loss so far).
Both are written to a temporary name and renamed, so a kill never leaves half a checkpoint.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.errors import EvalsError, StorageError

STATE_FILE = "state.pt"


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 0  # current epoch (0-based)
    batch: int = 0  # batches of the current epoch already consumed
    step: int = 0  # optimiser steps taken
    tokens: int = 0  # prompt + answer tokens trained on
    train_seconds: float = 0.0  # wall time spent in training steps (validation excluded)
    wall_seconds: float = 0.0  # wall time of the whole training loop, over every session
    best_val_loss: float | None = None
    best_step: int | None = None
    since_best: int = 0  # validations since the best one
    epoch_loss_sum: float = 0.0  # answer-token loss summed over the current epoch's steps
    epoch_answer_tokens: int = 0
    validations: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False

    def record_step(self, *, batches: int, tokens: int, loss_sum: float, answer_tokens: int, seconds: float) -> None:
        """One optimiser step done: all of its counters move together."""
        self.step += 1
        self.batch += batches
        self.tokens += tokens
        self.train_seconds += seconds
        self.epoch_loss_sum += loss_sum
        self.epoch_answer_tokens += answer_tokens

    def end_epoch(self) -> None:
        self.epochs.append({
            "epoch": self.epoch + 1, "step": self.step,
            "train_loss": self.epoch_loss_sum / self.epoch_answer_tokens if self.epoch_answer_tokens else None,
            "val_loss": self.validations[-1]["val_loss"] if self.validations else None})
        self.epoch += 1
        self.batch = 0
        self.epoch_loss_sum, self.epoch_answer_tokens = 0.0, 0


def checkpoint_dir(out: Path) -> Path:
    return out / "checkpoint"


def save_state(out: Path, *, model, optimizer, scheduler, progress: Progress, fingerprint: dict[str, Any]) -> None:
    import torch
    from peft import get_peft_model_state_dict

    folder = checkpoint_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        "fingerprint": fingerprint,
        "progress": progress.__dict__,
        "adapter": get_peft_model_state_dict(model, save_embedding_layers=False),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
    }
    save_atomically(state, folder / STATE_FILE)


def save_atomically(obj: Any, path: Path) -> None:
    """torch.save to a temporary file renamed into place: a full disk (or any failure while writing) leaves
    the previous file intact and ends with a StorageError saying so, not a traceback."""
    import torch

    tmp = path.with_name(path.name + ".part")
    try:
        torch.save(obj, tmp)
    except (OSError, RuntimeError) as e:  # torch reports a failed write as either
        tmp.unlink(missing_ok=True)
        kept = "the previous checkpoint is intact" if path.exists() else "no checkpoint was written yet"
        raise StorageError(f"could not save the training checkpoint ({e}); {kept}. Free space, then continue "
                           "with `evals finetune ... --resume`", file=path) from None
    tmp.replace(path)


def load_state(out: Path, *, model, optimizer, scheduler, fingerprint: dict[str, Any]) -> Progress:
    """Restore everything `save_state` wrote; refuses a checkpoint made with other settings or data."""
    import torch
    from peft import set_peft_model_state_dict

    path = checkpoint_dir(out) / STATE_FILE
    if not path.is_file():
        raise EvalsError(f"nothing to resume: no checkpoint in {checkpoint_dir(out)}")
    state = torch.load(path, weights_only=False)
    made_by, now = state["fingerprint"].get("processes", 1), fingerprint.get("processes", 1)
    if made_by != now:
        how = "plain `evals finetune ... --resume`" if made_by == 1 else \
            f"`torchrun --nproc-per-node {made_by} -m evals finetune ... --resume` on one machine"
        raise EvalsError(f"the checkpoint in {checkpoint_dir(out)} was made by {made_by} training process"
                         f"{'es' if made_by > 1 else ''}, and this is {now}: resume it with the same number "
                         f"({how}), or start over with --force")
    differs = sorted(k for k in fingerprint if k != "processes" and state["fingerprint"].get(k) != fingerprint[k])
    if differs:
        raise EvalsError(f"the checkpoint in {checkpoint_dir(out)} was made with a different "
                         f"{', '.join(differs)}; resume with the same settings, or start over with --force")
    set_peft_model_state_dict(model, state["adapter"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    if state["rng"]["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return Progress(**state["progress"])


def save_best(out: Path, model) -> None:
    """The current adapter as the best so far (peft's own format, loadable with PeftModel). The old one
    is swapped out by renames, so an interruption leaves one complete `best/`."""
    folder = checkpoint_dir(out)
    best, tmp, old = folder / "best", folder / "best.part", folder / "best.old"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, save_embedding_layers=False)  # only the LoRA weights
    if best.exists():
        shutil.rmtree(old, ignore_errors=True)
        best.rename(old)
    tmp.rename(best)
    shutil.rmtree(old, ignore_errors=True)


def publish(out: Path) -> None:
    """Move the best adapter to the output folder and drop the checkpoint."""
    best = checkpoint_dir(out) / "best"
    for f in best.iterdir():
        f.replace(out / f.name)
    shutil.rmtree(checkpoint_dir(out))
