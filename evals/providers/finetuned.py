"""Hosted fine-tunes named by their manifest: `openai:ft@NAME` (or `together:ft@NAME`) is the model that
`evals finetune TASK --on openai --name NAME` (`--on together`) trained, read from finetune/hosted/NAME/manifest.json.

The spec stays the same across retraining; the model it stands for (`ft:gpt-4o-mini-2024-07-18:org::id`)
is resolved when a run starts and recorded in the run's manifest with the job and its training cost, so a
later report prices what was run, and a retrained model is never mistaken for the old one.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from evals.errors import EvalsError, MissingCredentials
from evals.types import ModelSpec

HOSTED_ROOT = Path("finetune/hosted")
MANIFEST_FILE = "manifest.json"
PREFIX = "ft@"


@dataclass(frozen=True)
class HostedFineTune:
    """What a run needs of a finished hosted fine-tune: the model to call and what training it cost."""

    name: str
    model: str  # the provider's name for it, e.g. ft:gpt-4o-mini-2024-07-18:org::abc123
    job_id: str
    base: str
    trained_tokens: int | None
    training_price_per_mtok: float | None
    training_cost_usd: float | None  # trained tokens x training price, or the job's own price (None: unknown)
    manifest: str  # where it was read

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def hosted_dir(name: str) -> Path:
    """finetune/hosted/NAME, for a plain name (letters, digits, `.`, `_`, `-`)."""
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*", name) or name in (".", ".."):
        raise EvalsError(f"fine-tune name '{name}' must be a plain folder name (letters, digits, '.', '_', '-'); "
                         "give one with --name")
    return HOSTED_ROOT / name


def hosted_name(spec: ModelSpec) -> str | None:
    """NAME of an `openai:ft@NAME` spec; None for any other spec."""
    return spec.model.removeprefix(PREFIX) if spec.model.startswith(PREFIX) else None


def read_manifest(name: str) -> dict[str, Any] | None:
    path = hosted_dir(name) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise EvalsError(f"could not read the hosted fine-tune's manifest: {e}", file=path) from None


def load_hosted(spec: ModelSpec) -> HostedFineTune:
    """The finished fine-tune an `ft@NAME` spec names; MissingCredentials (the run skips the model with this
    hint) until its job has succeeded."""
    name = hosted_name(spec)
    assert name is not None, spec
    manifest = read_manifest(name)
    path = hosted_dir(name) / MANIFEST_FILE
    if manifest is None:
        raise MissingCredentials(f"no hosted fine-tune '{name}' ({path} not found); train it with "
                                 f"`evals finetune TASK --on {spec.provider} --name {name}`")
    made_by = manifest.get("provider", "openai")
    if made_by != spec.provider:
        raise EvalsError(f"{spec}: the hosted fine-tune '{name}' was trained by {made_by}, not {spec.provider}; "
                         f"use {made_by}:ft@{name}", file=path)
    job = manifest.get("job") or {}
    if not manifest.get("fine_tuned_model"):
        raise MissingCredentials(f"the hosted fine-tune '{name}' has no model yet (job {job.get('id')} is "
                                 f"{job.get('status')}); `evals finetune TASK --on {spec.provider} --name {name} "
                                 "--resume` waits for it")
    cost = manifest.get("cost") or {}
    return HostedFineTune(name, manifest["fine_tuned_model"], job.get("id") or "", manifest.get("base") or "",
                          manifest.get("trained_tokens"), cost.get("training_price_per_mtok"),
                          cost.get("training_cost_usd"), str(path))


def resolved_model(spec: ModelSpec) -> str:
    """The model name to send: an `ft@NAME` spec's fine-tuned model, else the spec's own."""
    return load_hosted(spec).model if hosted_name(spec) else spec.model


def run_record(spec: ModelSpec) -> dict[str, Any] | None:
    """What a run's manifest records of the hosted fine-tune its spec names (None for other specs, or before
    the fine-tune exists: such a run is skipped)."""
    if hosted_name(spec) is None:
        return None
    try:
        return load_hosted(spec).as_dict()
    except MissingCredentials:
        return None
