"""LoRA training settings: a typed dataclass whose fields explain themselves, read from YAML, overridable by flags."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from evals._util import suggest
from evals.data.yamlfile import YamlDoc
from evals.errors import EvalsError


def _setting(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class FinetuneConfig:
    base: str = _setting("local:smollm2", "base model spec (local:NAME|PATH|HUB_ID) the adapter is trained on")
    rank: int = _setting(16, "LoRA rank r: size of the low-rank update", min=1)
    alpha: int = _setting(32, "LoRA alpha: the update is scaled by alpha / rank", min=1)
    dropout: float = _setting(0.0, "dropout on the LoRA input in training (0 is about 25% faster on CPU)",
                              min=0.0, max=0.9)
    target_modules: list[str] = _setting(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "linear layers that get a LoRA update (names inside the base model)")
    learning_rate: float = _setting(1e-3, "peak AdamW learning rate (linear warm-up, then cosine decay)", min=0.0)
    warmup_ratio: float = _setting(0.05, "fraction of optimiser steps spent warming up", min=0.0, max=1.0)
    weight_decay: float = _setting(0.0, "AdamW weight decay on the LoRA weights", min=0.0)
    epochs: int = _setting(2, "passes over the training examples (fewer if early stopping triggers)", min=1)
    batch_size: int = _setting(8, "examples per forward pass, grouped by length so little is padding", min=1)
    grad_accum: int = _setting(1, "forward passes per optimiser step (effective batch = batch_size x grad_accum)",
                               min=1)
    max_length: int = _setting(2048, "longest prompt + answer in tokens; longer examples are skipped and counted",
                               min=16)
    val_fraction: float = _setting(0.1, "share of train.jsonl held out for validation loss (never the golden set)",
                                   min=0.0, max=0.5)
    evals_per_epoch: int = _setting(2, "validation passes per epoch; early stopping and the best adapter use them",
                                    min=1)
    patience: int = _setting(2, "stop after this many validations without a new best validation loss", min=1)
    seed: int = _setting(20261123, "seed for the validation split, batch order, dropout and LoRA init")
    dtype: str = _setting("auto", "auto (bfloat16 where the hardware does it natively, else float32), "
                                  "float32 or bfloat16")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), sort_keys=True))

    def replace(self, **overrides: Any) -> FinetuneConfig:
        """A copy with the given (non-None) settings changed and checked."""
        changes = {k: v for k, v in overrides.items() if v is not None}
        return check(dataclasses.replace(self, **changes), origin="command line")


FIELDS = {f.name: f for f in fields(FinetuneConfig)}


def _bad(value: Any, f: dataclasses.Field) -> str | None:
    """Why `value` is not valid for setting `f`, or None."""
    kind = type(getattr(FinetuneConfig(), f.name))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is list:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            return "expected a non-empty list of module names"
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        return f"expected {kind.__name__}, got {value!r}"
    if "min" in f.metadata and value < f.metadata["min"]:
        return f"must be at least {f.metadata['min']}, got {value}"
    if "max" in f.metadata and value > f.metadata["max"]:
        return f"must be at most {f.metadata['max']}, got {value}"
    if f.name == "dtype" and value not in ("auto", "float32", "bfloat16"):
        return f"expected auto, float32 or bfloat16, got {value!r}"
    return None


def check(config: FinetuneConfig, origin: str) -> FinetuneConfig:
    for f in fields(FinetuneConfig):
        if reason := _bad(getattr(config, f.name), f):
            raise EvalsError(f"{reason} ({origin})", field=f.name)
    return config


def load_config(path: str | Path | None) -> FinetuneConfig:
    """Settings from a YAML file (any subset of the fields), else the defaults."""
    if path is None:
        return FinetuneConfig()
    path = Path(path)
    if not path.is_file():
        raise EvalsError(f"fine-tuning config not found: {path}")
    doc = YamlDoc(path)
    raw = doc.data or {}
    if not isinstance(raw, dict):
        raise doc.error("expected a mapping of settings")
    values = {}
    for key, value in raw.items():
        if key not in FIELDS:
            raise doc.error(f"unknown setting '{key}'{suggest(key, FIELDS)}", key)
        if reason := _bad(value, FIELDS[key]):
            raise doc.error(reason, key)
        values[key] = float(value) if isinstance(getattr(FinetuneConfig(), key), float) else value
    return FinetuneConfig(**values)
