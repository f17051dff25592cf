"""The adapter's manifest: base model and its hash, data hash, settings, versions, losses, speed."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evals._util import dir_hash
from evals.run.manifest import git_state, package_versions
from evals.types import Task
from finetune.checkpoint import Progress
from finetune.config import FinetuneConfig
from finetune.memory import MemoryPlan, peak_rss_bytes


def weights_hash(source) -> str | None:
    """sha256 of the base weights: the GGUF file, or every file of a model folder; None for a hub id."""
    folder = Path(source.path)
    if source.gguf_file:
        h = hashlib.sha256()
        with (folder / source.gguf_file).open("rb") as f:
            while chunk := f.read(1 << 24):
                h.update(chunk)
        return h.hexdigest()
    return dir_hash(folder)


def build_manifest(task: Task, config: FinetuneConfig, source, out: Path, data, progress: Progress, *,
                   device: str, dtype: str, total_steps: int, memory: MemoryPlan) -> dict[str, Any]:
    import torch

    from evals.providers.local import cpu_has_bf16
    from evals.run.hardware import cpu_name

    return {
        "kind": "evals-finetune",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "adapter": str(out),
        "model_spec": f"{config.base}+lora:{out}",
        "task": {"name": task.name, "path": str(task.path), "hash": task.hash},
        "base": {"spec": config.base, "source": str(source), "sha256": weights_hash(source)},
        "data": {
            "train_file": task.train,
            "train_hash": data.train_hash,
            "train_examples": len(data.train),
            "val_examples": len(data.val),
            "val_ids": sorted(e.id for e in data.val),
            "skipped_too_long": data.skipped_too_long,
            "golden_overlap_allowed": data.overlap,
        },
        "config": config.to_dict(),
        "packages": package_versions(),
        "git": git_state(Path.cwd()),
        "hardware": {"device": device, "dtype": dtype, "threads": torch.get_num_threads(), "cpu": cpu_name(),
                     "cpu_bf16": cpu_has_bf16()},
        "memory": {**memory.to_dict(), "peak_rss_bytes": peak_rss_bytes()},
        "epochs": progress.epochs,
        "validations": progress.validations,
        "best": {"step": progress.best_step, "val_loss": progress.best_val_loss},
        "stopped_early": progress.stopped_early,
        "steps": {"done": progress.step, "planned": total_steps},
        "tokens": progress.tokens,
        "train_seconds": round(progress.train_seconds, 2),
        "wall_seconds": round(progress.wall_seconds, 2),
        "tokens_per_s": round(progress.tokens / progress.train_seconds, 1) if progress.train_seconds else None,
    }
