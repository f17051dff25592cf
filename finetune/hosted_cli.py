"""`evals finetune TASK --on openai|together`: the hosted path's flags, the call, the result in a few lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

PROVIDERS = ("local", "openai", "together")


def settings_class(on: str) -> type:
    """The vendor's settings (HostedConfig: OpenAI's, TogetherConfig: Together AI's)."""
    if on == "together":
        from finetune.hosted_together import TogetherConfig

        return TogetherConfig
    from finetune.hosted import HostedConfig

    return HostedConfig


def hosted_cmd(task: str, *, on: str, base: str | None, config: Path | None, name: str | None, epochs: int | None,
               batch_size: int | None, seed: int | None, resume: bool, force: bool, allow_overlap: bool,
               progress: str | None, lora_only: dict[str, Any], consoles: dict[str, Any], curve: str | None = None,
               store: Path | None = None) -> None:
    """Train (or re-attach to) a hosted fine-tune; print its model and cost. With `curve`, a learning curve of
    hosted fine-tunes (finetune/curve.py)."""
    from evals.data.tasks import load_task
    from evals.errors import EvalsError
    from evals.run.progress import progress_mode
    from finetune.config import load_config
    from finetune.hosted import fine_tune_class, run_hosted

    console, err_console = consoles["out"], consoles["err"]
    if on not in PROVIDERS:
        raise EvalsError(f"--on must be one of {', '.join(PROVIDERS)}, got '{on}'")
    kind_of = settings_class(on)
    given = [flag for flag, value in lora_only.items() if value is not None]
    if given:
        others = ", ".join(n for n in kind_of.model_fields if n not in ("base", "epochs", "batch_size", "seed"))
        raise EvalsError(f"{', '.join(given)}: LoRA setting(s) of the local fine-tune; a hosted fine-tune takes "
                         f"--base, --epochs, --batch-size, --seed, and in --config: {others}")
    loaded = load_task(task)
    settings = load_config(config, kind_of).replace(base=base, epochs=epochs, batch_size=batch_size, seed=seed)
    kind = fine_tune_class(settings)
    spec = f"{on}:ft@{name or loaded.name}"
    name = name or loaded.name
    if curve is not None:
        from finetune.curve_cli import curve_cmd

        return curve_cmd(loaded, settings, curve, name=name, force=force, allow_overlap=allow_overlap,
                         progress=progress, store=store, consoles=consoles, on=on)
    resume_hint = f"evals finetune {task} --on {on} --resume" + (f" --name {name}" if name != loaded.name else "")
    err_console.print(f"fine-tuning {on}:{settings.base} on {loaded.name}/{loaded.train} -> {spec}"
                      + (" (re-attaching)" if resume else ""), highlight=False)
    try:
        manifest = run_hosted(loaded, settings, name, resume=resume, force=force, allow_overlap=allow_overlap,
                              console=err_console, progress_mode=progress_mode(progress, err_console))
    except KeyboardInterrupt:
        err_console.print(f"[yellow]interrupted: the job keeps running at {kind.vendor} (and is billed as it trains).[/] "
                          f"Re-attach with: {resume_hint}", highlight=False)
        raise typer.Exit(130) from None
    cost = manifest["cost"] or {}
    spent = cost.get("training_cost_usd")
    console.print(f"fine-tuned model {manifest['fine_tuned_model']} (job {manifest['job']['id']}): "
                  f"{manifest['trained_tokens'] or 0:,} trained tokens, training "
                  + (f"${spent:,.4f} ({cost['basis']})" if spent is not None else f"cost unknown ({cost.get('basis')})"),
                  highlight=False, markup=False)
    last = (manifest.get("metrics") or [{}])[-1]
    if last:
        console.print(f"last step {last.get('step')}: train loss {last.get('train_loss')}, validation loss "
                      f"{last.get('valid_loss')}", highlight=False, markup=False)
    console.print(f"use it as: {spec}  (list it in {loaded.path}'s models:, or evals run {task} "
                  f"--model {spec})", highlight=False, markup=False)
