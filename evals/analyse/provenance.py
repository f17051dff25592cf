"""Which prompt each side of a comparison ran with, and whether `evals optimize` produced it (on which data,
when): read from the runs' manifests and the store's finished optimisations, by the prompt's content hash.
A fine-tune weighed against a prompt nobody optimised may only show prompt work not done, so the verdict's
one-line reason says so then, and names the command; nothing is blocked."""

from __future__ import annotations

from typing import Any

import pandas as pd

from evals.data.prompts import prompt_hash
from evals.providers.finetuned import hosted_name
from evals.run.manifest import config_from_dict
from evals.run.optimize.ledger import OptimizationRecord, optimizations
from evals.run.store import Store
from evals.types import Decision


def _origin(store: Store, manifest: dict[str, Any]) -> tuple[str, OptimizationRecord | None, bool]:
    """The prompt's name, the optimisation that chose it (or had it as its seed), and whether it is that
    optimisation's winner."""
    model = manifest.get("model") or {}
    name = f"prompts.{model['prompt']}" if model.get("prompt") else "the task's prompt"
    record = manifest.get("prompt")
    if not isinstance(record, dict):
        return name, None, False
    digest = prompt_hash(record)
    task = (manifest.get("task") or {}).get("name")
    found = optimizations(store, task, model.get("spec"))
    for opt in found:
        if (opt.result or {}).get("winner_prompt_hash") == digest:
            return name, opt, True
    for opt in found:
        if (opt.result or {}).get("seed_prompt_hash") == digest:
            return name, opt, False
    return name, None, False


def describe(store: Store, manifest: dict[str, Any]) -> tuple[str, bool]:
    """'prompts.optimized, optimised by `evals optimize` 1a2b3c4d on 2026-12-07 (...)', and whether it was."""
    name, opt, won = _origin(store, manifest)
    if opt is None:
        return f"{name}, never optimised", False
    r = opt.result or {}
    when = (opt.finished_at or opt.created_at)[:10]
    if won:
        return (f"{name}, optimised by `evals optimize` {opt.id} on {when} (selected on {r.get('split')}; "
                f"{r.get('winner')} won)"), True
    return (f"{name}, the seed of `evals optimize` {opt.id} on {when}, which chose {r.get('winner')} over it "
            "(prompts.optimized)"), True


def is_finetune(manifest: dict[str, Any], decision: Decision) -> bool:
    try:
        config = config_from_dict(manifest["model"])
    except (KeyError, TypeError, ValueError):
        return False
    trained = decision.self_hosted.trained if decision.self_hosted else ()
    return bool(config.adapter_dir or hosted_name(config.spec) or manifest.get("finetuned")
                or str(config.spec) in trained)


def prompt_notes(store: Store, a: pd.DataFrame, b: pd.DataFrame, decision: Decision) -> tuple[list[str], str]:
    """The reasons' line on each side's prompt, and what the headline adds (a fine-tune against a prompt never
    optimised)."""
    ma, mb = a.attrs.get("manifest") or {}, b.attrs.get("manifest") or {}
    (text_a, optimised_a), (text_b, _) = describe(store, ma), describe(store, mb)
    lines = [f"Prompts: the baseline ran with {text_a}; the candidate with {text_b}."]
    headline = ""
    if not optimised_a and is_finetune(mb, decision):
        task = (ma.get("task") or {}).get("name", "TASK")
        spec = (ma.get("model") or {}).get("spec", "SPEC")
        headline = (f" The baseline's prompt was never optimised, so part of the gap may be prompt work not done: "
                    f"run `evals optimize {task} -m {spec}` first.")
        lines.append("The candidate is a fine-tune and the baseline's prompt was never optimised (`evals optimize` "
                     "searches the prompt on train.jsonl; the verdict stands as computed).")
    return lines, headline
