"""`evals finetune TASK`: parse flags, call the trainer, print the result. Joins the `evals` app through the
`evals.commands` entry point (pyproject.toml), so neither package's CLI imports the other's."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

_consoles: dict[str, Console] = {}  # the app's own, given at registration


def register_commands(app: typer.Typer, console: Console, err_console: Console) -> None:
    _consoles.update(out=console, err=err_console)
    app.command("finetune")(finetune_cmd)


def finetune_cmd(
    task: Annotated[str, typer.Argument(help="Task name (golden_sets/<name>) or path; trains on its train.jsonl.")],
    on: Annotated[str, typer.Option("--on", metavar="local|openai|together", help=(
        "local: a LoRA adapter trained here; openai: a hosted fine-tune through OpenAI's fine-tuning API, "
        "used as openai:ft@NAME (--base then names OpenAI's base, default gpt-4o-mini-2024-07-18); together: a "
        "LoRA fine-tune of an open model through Together AI's API, used as together:ft@NAME (default base "
        "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference)."))] = "local",
    base: Annotated[str | None, typer.Option(help="Base model spec. Default: local:smollm2.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Settings YAML (e.g. finetune/thorough.yaml).")] = None,
    name: Annotated[str | None, typer.Option(help="Adapter name: output in finetune/adapters/NAME. Default: the task.")] = None,
    rank: Annotated[int | None, typer.Option(help="LoRA rank.")] = None,
    alpha: Annotated[int | None, typer.Option(help="LoRA alpha.")] = None,
    dropout: Annotated[float | None, typer.Option(help="LoRA dropout.")] = None,
    target_modules: Annotated[str | None, typer.Option(help="Comma-separated module names, e.g. q_proj,v_proj.")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Peak learning rate.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Passes over the training data.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Examples per forward pass.")] = None,
    grad_accum: Annotated[int | None, typer.Option(help="Forward passes per optimiser step.")] = None,
    micro_batch: Annotated[str | None, typer.Option(
        "--micro-batch", metavar="N|auto", help="Rows per forward/backward pass (same loss and update). Default: auto.")] = None,
    checkpointing: Annotated[bool | None, typer.Option(
        "--gradient-checkpointing/--no-gradient-checkpointing",
        help="Recompute layers in backward to save memory. Default: auto (only when needed).")] = None,
    memory_limit: Annotated[float | None, typer.Option(
        "--memory-limit", metavar="GB",
        help="Peak memory the auto settings aim under. Default: 4 on a CPU, a GPU's free memory.")] = None,
    max_length: Annotated[int | None, typer.Option(help="Longest prompt + answer in tokens.")] = None,
    dtype: Annotated[str | None, typer.Option(
        "--dtype", metavar="auto|float32|bfloat16",
        help="Weights' dtype in training. Default: auto (bfloat16 where the hardware does it natively).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for split, order, dropout and init.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted fine-tune from its checkpoint.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing adapter or checkpoint of this name; "
                                                        "train even if the memory estimate exceeds what is free.")] = False,
    allow_overlap: Annotated[bool, typer.Option("--allow-overlap",
                                                help="Train even if golden inputs appear in the training data.")] = False,
    export_openai: Annotated[Path | None, typer.Option("--export-openai", metavar="FILE",
                                                       help="Only write the training chats as OpenAI fine-tuning JSONL.")] = None,
    progress: Annotated[str | None, typer.Option(
        "--progress", envvar="EVALS_PROGRESS", metavar="bar|plain|none",
        help="bar: a live bar (default on a terminal); plain: timestamped lines (default in logs and pipes).")] = None,
    curve: Annotated[str | None, typer.Option(
        "--curve", metavar="SIZES", help="A learning curve: train on nested subsets of these sizes (e.g. "
        "50,100,200,all), score each on the golden set, fit how the match rate grows with data.")] = None,
    store: Annotated[str | None, typer.Option("--store", metavar="PATH|URL", help="Run store for --curve's "
                                              "golden-set runs (a SQLite file or a postgresql:// URL). Default: "
                                              "$EVALS_STORE, else reports/evals.db")] = None,
) -> None:
    """Train a LoRA adapter on the task's train.jsonl, with the prompt the task uses at evaluation time."""
    console, err_console = _consoles["out"], _consoles["err"]
    if curve is not None and (resume or export_openai is not None):
        from evals.errors import EvalsError

        raise EvalsError("--curve continues by itself where it stopped: leave out --resume and --export-openai",
                         field="--curve")
    if on != "local":  # the hosted path: finetune/hosted.py
        from finetune.hosted_cli import hosted_cmd

        lora_only = {"--rank": rank, "--alpha": alpha, "--dropout": dropout, "--target-modules": target_modules,
                     "--lr": lr, "--grad-accum": grad_accum, "--max-length": max_length, "--export-openai": export_openai,
                     "--micro-batch": micro_batch, "--gradient-checkpointing": checkpointing,
                     "--memory-limit": memory_limit, "--dtype": dtype}
        return hosted_cmd(task, on=on, base=base, config=config, name=name, epochs=epochs, batch_size=batch_size,
                          seed=seed, resume=resume, force=force, allow_overlap=allow_overlap, progress=progress,
                          lora_only=lora_only, consoles=_consoles, curve=curve, store=store)
    from evals.data.tasks import load_task
    from evals.run.progress import progress_mode
    from finetune.config import load_config
    from finetune.distributed import join_world
    from finetune.trainer import TrainingInterrupted, adapter_dir, train

    loaded = load_task(task)
    settings = load_config(config).replace(
        base=base, rank=rank, alpha=alpha, dropout=dropout, learning_rate=lr, epochs=epochs, batch_size=batch_size,
        grad_accum=grad_accum, max_length=max_length, seed=seed, memory_limit_gb=memory_limit, dtype=dtype,
        micro_batch=int(micro_batch) if micro_batch and micro_batch.isdigit() else micro_batch,
        gradient_checkpointing=checkpointing,
        target_modules=[m.strip() for m in target_modules.split(",") if m.strip()] if target_modules else None)
    if export_openai is not None:
        _export(loaded, export_openai, allow_overlap=allow_overlap, console=console)
        return
    if curve is not None:
        from finetune.curve_cli import curve_cmd

        return curve_cmd(loaded, settings, curve, name=name, force=force, allow_overlap=allow_overlap,
                         progress=progress, store=store, consoles=_consoles)
    out = adapter_dir(name or loaded.name)
    world = join_world(console, err_console)  # one process, unless torchrun started several
    err_console.print(f"fine-tuning {settings.base} on {loaded.name}/{loaded.train} -> {out}", highlight=False)
    try:
        manifest = train(loaded, settings, out, resume=resume, force=force, allow_overlap=allow_overlap,
                         console=err_console, progress_mode=progress_mode(progress, err_console), world=world)
    except TrainingInterrupted as e:
        err_console.print(f"[yellow]{e}[/]", highlight=False)
        raise typer.Exit(e.exit_code) from None
    _print_summary(manifest, console)


def _export(task, path: Path, *, allow_overlap: bool, console) -> None:
    from finetune.data import check_overlap, export_openai, load_train, training_chats

    samples = load_train(task)
    check_overlap(task, samples, allow=allow_overlap)
    n = export_openai(training_chats(task, samples), path, task)
    console.print(f"wrote {n} training chats to {path} (OpenAI fine-tuning format)", highlight=False)


def _print_summary(manifest: dict, console) -> None:
    from rich.table import Table

    table = Table(title=f"fine-tune {manifest['adapter']}")
    for col in ("epoch", "step", "train loss", "val loss"):
        table.add_column(col, justify="right")
    for e in manifest["epochs"]:
        table.add_row(str(e["epoch"]), str(e["step"]), _fmt(e["train_loss"]), _fmt(e["val_loss"]))
    console.print(table)
    best = manifest["best"]
    console.print(f"best validation loss {_fmt(best['val_loss'])} at step {best['step']}"
                  f"{' (stopped early)' if manifest['stopped_early'] else ''}; "
                  f"{manifest['tokens']:,} tokens in {manifest['wall_seconds'] / 60:.1f} min, "
                  f"{manifest['tokens_per_s']:,} tokens/s", highlight=False)
    memory, hw = manifest["memory"], manifest["hardware"]
    gpu_peak = manifest["parallel"]["gpu_peak_memory_bytes"]  # on a GPU the estimate is of its memory
    peak = (f"peak memory {memory['peak_rss_bytes'] / 1e9:.1f} GB" if gpu_peak is None
            else f"peak GPU memory {gpu_peak / 1e9:.1f} GB allocated")
    console.print(f"{peak} (estimated {memory['estimate'] / 1e9:.1f} GB; "
                  f"micro-batches of {memory['micro_batch']}, gradient checkpointing "
                  f"{'on' if memory['checkpointing'] else 'off'}) on {hw['device']}: {hw['cpu']}, "
                  f"{hw['threads']} threads, native bf16 {'yes' if hw['cpu_bf16'] else 'no'}, {hw['dtype']}", highlight=False)
    console.print(f"use it as: [bold]{manifest['model_spec']}[/]  (e.g. evals run {manifest['task']['name']} "
                  f"--model {manifest['model_spec']})", highlight=False)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"
