"""LoRA training settings: a typed model whose fields explain themselves, read from YAML, overridable by flags.

Validated by the same layer as task.yaml (pydantic, errors with file, line and field via evals.settings).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, ValidationInfo, field_validator

from evals.data.yamlfile import YamlDoc
from evals.errors import EvalsError
from evals.settings import validated


def _bounds(low: float | None = None, high: float | None = None) -> Any:
    def check(value: float) -> float:
        if low is not None and value < low:
            raise ValueError(f"must be at least {low:g}, got {value:g}")
        if high is not None and value > high:
            raise ValueError(f"must be at most {high:g}, got {value:g}")
        return value

    return AfterValidator(check)


def _auto_or(kind: type, what: str, low: float = 1) -> Any:
    """`auto`, or a value of `kind`: an int or a float (an int taken as one) at least `low`, or a bool."""
    kinds = (int, float) if kind is float else (kind,)

    def check(value: Any) -> Any:
        if value == "auto" or (type(value) in kinds and (kind is bool or value >= low)):
            return float(value) if kind is float and value != "auto" else value
        raise ValueError(f"expected auto or {what}, got {value!r}")

    return PlainValidator(check)


def _modules(value: list[str]) -> list[str]:
    if not value or not all(value):
        raise ValueError("expected a non-empty list of module names")
    return value


AtLeastOne = Annotated[int, _bounds(1)]
MEMORY_SETTINGS = ("micro_batch", "gradient_checkpointing", "memory_limit_gb")
NonNegative = Annotated[float, _bounds(0.0)]


S = TypeVar("S", bound="Settings")


class Settings(BaseModel):
    """A fine-tune's settings (the local one's, the hosted one's): strict, frozen, saved as sorted JSON, and
    overridden from the command line with each flag's mistake naming the setting."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.model_dump(), sort_keys=True))

    def replace(self, **overrides: Any) -> Self:
        """A copy with the given (non-None) settings changed and checked."""
        changes = {k: v for k, v in overrides.items() if v is not None}
        try:
            return validated(type(self), {**self.model_dump(), **changes})
        except EvalsError as e:
            raise EvalsError(f"{e.message} (command line)", field=e.field) from None


class FinetuneConfig(Settings):

    base: str = Field("local:smollm2", description="base model spec (local:NAME|PATH|HUB_ID) the adapter is trained on")
    rank: AtLeastOne = Field(16, description="LoRA rank r: size of the low-rank update")
    alpha: AtLeastOne = Field(32, description="LoRA alpha: the update is scaled by alpha / rank")
    dropout: Annotated[float, _bounds(0.0, 0.9)] = Field(
        0.0, description="dropout on the LoRA input in training (0 is about 25% faster on CPU)")
    target_modules: Annotated[list[str], AfterValidator(_modules)] = Field(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="linear layers that get a LoRA update (names inside the base model)")
    learning_rate: NonNegative = Field(1e-3, description="peak AdamW learning rate (linear warm-up, then cosine decay)")
    warmup_ratio: Annotated[float, _bounds(0.0, 1.0)] = Field(0.05, description="fraction of optimiser steps spent "
                                                                                "warming up")
    weight_decay: NonNegative = Field(0.0, description="AdamW weight decay on the LoRA weights")
    epochs: AtLeastOne = Field(2, description="passes over the training examples (fewer if early stopping triggers)")
    batch_size: AtLeastOne = Field(8, description="examples per forward pass, grouped by length so little is padding")
    grad_accum: AtLeastOne = Field(1, description="forward passes per optimiser step (effective batch = batch_size x "
                                                  "grad_accum)")
    micro_batch: Annotated[int | Literal["auto"], _auto_or(int, "a whole number of at least 1")] = Field(
        "auto", description="rows per forward and backward pass; gradients add up over the batch, so the loss and "
                            "the update are the batch's. auto: the largest that fits memory_limit_gb")
    gradient_checkpointing: Annotated[bool | Literal["auto"], _auto_or(bool, "true or false")] = Field(
        "auto", description="keep only each layer's input and recompute the layer in backward: far less memory, "
                            "one more forward pass of compute. auto: on only when needed to fit memory_limit_gb")
    memory_limit_gb: Annotated[float | Literal["auto"], _auto_or(float, "a number of GB, at least 0.5", 0.5)] = Field(
        "auto", description="peak memory (GB) the auto settings aim under; less when less is free. auto: 4 GB of "
                            "host RAM on a CPU, all the free memory of a GPU")
    max_length: Annotated[int, _bounds(16)] = Field(
        2048, description="longest prompt + answer in tokens; longer examples are skipped and counted")
    val_fraction: Annotated[float, _bounds(0.0, 0.5)] = Field(
        0.1, description="share of train.jsonl held out for validation loss (never the golden set)")
    evals_per_epoch: AtLeastOne = Field(2, description="validation passes per epoch; early stopping and the best "
                                                       "adapter use them")
    patience: AtLeastOne = Field(2, description="stop after this many validations without a new best validation loss")
    seed: int = Field(20261123, description="seed for the validation split, batch order, dropout and LoRA init")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="auto (bfloat16 where the hardware does it natively, else float32), float32 or bfloat16")

    @field_validator("micro_batch")
    @classmethod
    def _within_the_batch(cls, value: int | str, info: ValidationInfo) -> int | str:
        batch = info.data.get("batch_size")
        if value != "auto" and batch is not None and value > batch:
            raise ValueError(f"must be at most batch_size ({batch}), got {value}")
        return value

    def math_dict(self) -> dict[str, Any]:
        """The settings that shape the trained weights (those of memory use left out): a checkpoint made with
        other memory settings resumes, on a machine with less memory too."""
        return {k: v for k, v in self.to_dict().items() if k not in MEMORY_SETTINGS}



def load_config(path: str | Path | None, model: type[S] = FinetuneConfig) -> S:
    """Settings from a YAML file (any subset of the fields), else the defaults; `model` says whose
    (the local fine-tune's by default, or the hosted one's)."""
    if path is None:
        return model()
    path = Path(path)
    if not path.is_file():
        raise EvalsError(f"fine-tuning config not found: {path}")
    doc = YamlDoc(path)
    if doc.data is not None and not isinstance(doc.data, dict):
        raise doc.error("expected a mapping of settings")
    return validated(model, doc.data, doc=doc)
