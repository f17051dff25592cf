"""Training throughput and peak memory of `evals finetune` (default settings, and today's: whole batches
without checkpointing) against TRL's SFTTrainer + peft, side by side in one run.

Same task data (resume-feedback's train.jsonl: the chats `evals finetune` trains on, by default those of
the adapter's task.yaml entry; `--few-shot` for the task prompt with its few-shot turns, rows of about
1,400 tokens), same base model and dtype, same LoRA settings, learning rate, schedule, effective batch
and number of optimiser steps, loss on the answer tokens only. Each trainer runs in its own child
process, one after the other, so its peak resident memory (getrusage) is its own. Throughput is prompt +
answer tokens (padding excluded) per second of training; the validation loss of every adapter is
measured by the same code on the same held-out examples.

    .venv/bin/python bench/finetune_throughput.py --n 48 --val 16

Run it on a quiet machine: another busy process on a 2-core CPU slows torch several-fold. Peak memory is
reached in the first steps, so a few steps (--n 16 is two) measure it.
TRL's per-device batch defaults to 2 with 4 accumulation steps (the same effective batch of 8).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ADAPTER_ENTRY = "lora:finetune/adapters/resume-feedback"
TRAINERS = {"default": "evals finetune (auto)", "today": "evals finetune (whole batches)", "trl": "TRL SFTTrainer"}


def make_task_copy(task_dir: Path, rows: list[dict], folder: Path, adapter: Path) -> Path:
    """The task with train.jsonl cut down to `rows` and its adapter entry pointing at `adapter`."""
    shutil.copytree(task_dir, folder)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    spec = folder / "task.yaml"
    spec.write_text(spec.read_text().replace(ADAPTER_ENTRY, f"lora:{adapter}"))
    return folder


def settings(opts, which: str):
    from finetune.config import FinetuneConfig

    config = FinetuneConfig(epochs=1, val_fraction=opts.val / (opts.n + opts.val), evals_per_epoch=1)
    if which == "today":  # before memory was planned: every row of a batch at once, no checkpointing
        config = config.replace(micro_batch=config.batch_size, gradient_checkpointing=False)
    return config


def run_ours(task, config, out: Path) -> dict:
    from finetune.trainer import train

    m = train(task, config, out, console=None)
    memory = m["memory"]
    return {"tokens": m["tokens"], "seconds": m["train_seconds"], "steps": m["steps"]["done"],
            "peak": memory["peak_rss_bytes"], "estimate": memory["estimate"], "val_loss": m["validations"][-1]["val_loss"],
            "settings": f"micro {memory['micro_batch']}{', ckpt' if memory['checkpointing'] else ''}"}


def run_trl(task, config, model_config, trl_batch: int, work: Path) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from evals.providers.local import load_base_model, load_tokenizer, pick_dtype, resolve_source
    from finetune.data import load_train, split, training_chats
    from finetune.memory import peak_rss_bytes

    source = resolve_source(config.base.removeprefix("local:"))
    dtype = pick_dtype(config.dtype)
    train_samples, val_samples = split(load_train(task), config.val_fraction, config.seed)
    chats = training_chats(task, train_samples, model_config)
    rows = [{"prompt": [{"role": m.role, "content": m.content} for m in chat[:-1]],
             "completion": [{"role": "assistant", "content": chat[-1].content}]} for chat in chats]
    accum = config.batch_size * config.grad_accum // trl_batch
    steps = math.ceil(len(rows) / (trl_batch * accum)) * config.epochs
    args = SFTConfig(
        output_dir=str(work / "trl"), per_device_train_batch_size=trl_batch, gradient_accumulation_steps=accum,
        learning_rate=config.learning_rate, num_train_epochs=config.epochs, lr_scheduler_type="cosine",
        warmup_steps=round(steps * config.warmup_ratio),  # as evals finetune rounds it
        weight_decay=config.weight_decay, max_grad_norm=1.0,
        max_length=config.max_length, completion_only_loss=True, bf16=dtype == torch.bfloat16,
        use_cpu=not torch.cuda.is_available(), train_sampling_strategy="group_by_length", seed=config.seed,
        logging_steps=1, save_strategy="no", report_to="none", dataset_num_proc=1, disable_tqdm=True,
    )
    lora = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                      target_modules=list(config.target_modules), task_type="CAUSAL_LM")
    model = load_base_model(source, dtype)
    # transformers marks a model read from GGUF as quantized although its weights are plain tensors in
    # `dtype`, and the Trainer refuses to train it; peft (ours) trains it as is.
    model.is_quantized, model.hf_quantizer = False, None
    torch.manual_seed(config.seed)
    tokenizer = load_tokenizer(source)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer, peft_config=lora)
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"]) * config.epochs
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    peak = peak_rss_bytes()
    return {"tokens": tokens, "seconds": seconds, "steps": result.global_step, "peak": peak, "estimate": None,
            "val_loss": val_loss(trainer.model, task, val_samples, model_config, tokenizer),
            "settings": f"b{trl_batch}x{accum}"}


def val_loss(model, task, val_samples, model_config, tokenizer) -> float:
    from finetune.data import tokenize, training_chats
    from finetune.trainer import mean_loss

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    examples = tokenize(tokenizer, training_chats(task, val_samples, model_config), [s.id for s in val_samples])
    return mean_loss(model, examples, pad, batch_size=8)


def child(opts) -> None:
    """One trainer in this process; its result as one JSON line on stdout."""
    from evals.data.tasks import load_task

    work = Path(opts.work)
    task = load_task(str(work / "task"))
    config = settings(opts, opts.child)
    model_config = None if opts.few_shot else task.model_config(f"{config.base}+lora:{work / 'ours'}")
    result = (run_trl(task, config, model_config, opts.trl_batch, work) if opts.child == "trl"
              else run_ours(task, config, work / "ours"))
    print(json.dumps(result), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="golden_sets/resume-feedback")
    ap.add_argument("--n", type=int, default=48, help="training examples")
    ap.add_argument("--val", type=int, default=16, help="validation examples")
    ap.add_argument("--trl-batch", type=int, default=2, help="TRL per-device batch (accumulation makes up the rest)")
    ap.add_argument("--few-shot", action="store_true", help="train on the task prompt with its few-shot turns")
    ap.add_argument("--trainers", default="default,today,trl", help=f"comma-separated, of {', '.join(TRAINERS)}")
    ap.add_argument("--child", choices=TRAINERS, help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts.child:
        return child(opts)

    from evals.data.tasks import load_task
    from evals.providers.local import cpu_has_bf16, pick_dtype
    from evals.run.hardware import cpu_name

    original = load_task(opts.task)
    rows = [json.loads(line) for line in (original.dir / original.train).read_text().splitlines()][:opts.n + opts.val]
    work = Path(tempfile.mkdtemp(prefix="ft-bench-"))
    make_task_copy(original.dir, rows, work / "task", work / "ours")
    config = settings(opts, "default")
    print(f"{opts.n} training + {opts.val} validation examples of {original.name} "
          f"({'task prompt with few-shot turns' if opts.few_shot else 'the adapter entry prompt'}); {config.base} in "
          f"{str(pick_dtype(config.dtype)).removeprefix('torch.')}, LoRA r={config.rank} on "
          f"{len(config.target_modules)} module types, batch {config.batch_size}x{config.grad_accum}; "
          f"CPU: {cpu_name()}, native bf16 {'yes' if cpu_has_bf16() else 'no'}", flush=True)
    results = {}
    for which in opts.trainers.split(","):
        shutil.rmtree(work / "ours", ignore_errors=True)
        cmd = [sys.executable, __file__, "--child", which, "--work", str(work), "--n", str(opts.n),
               "--val", str(opts.val), "--trl-batch", str(opts.trl_batch), *(["--few-shot"] if opts.few_shot else [])]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            print(f"{TRAINERS[which]} failed:\n{done.stderr[-2000:]}", flush=True)
            continue
        results[which] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  {TRAINERS[which]} done", flush=True)

    print(f"{'trainer':<32}{'settings':>14}{'steps':>6}{'tokens':>9}{'seconds':>9}{'tokens/s':>9}{'peak RSS':>10}"
          f"{'estimate':>10}{'val loss':>9}")
    for which, r in results.items():
        estimate = "-" if r["estimate"] is None else f"{r['estimate'] / 1e9:.2f} GB"
        print(f"{TRAINERS[which]:<32}{r['settings']:>14}{r['steps']:>6}{r['tokens']:>9,}{r['seconds']:>9.1f}"
              f"{r['tokens'] / r['seconds']:>9.1f}{r['peak'] / 1e9:>7.2f} GB{estimate:>10}{r['val_loss']:>9.4f}")

    def speed(which: str) -> float:
        return results[which]["tokens"] / results[which]["seconds"]

    if {"default", "today"} <= results.keys():
        d, t = results["default"], results["today"]
        print(f"default vs whole batches: peak RSS {d['peak'] / 1e9:.2f} vs {t['peak'] / 1e9:.2f} GB "
              f"({t['peak'] / d['peak']:.1f}x less), tokens/s {speed('default') / speed('today'):.2f}x")
    if {"default", "trl"} <= results.keys():
        print(f"throughput ratio evals (auto)/TRL: {speed('default') / speed('trl'):.2f}x; peak RSS "
              f"{results['default']['peak'] / 1e9:.2f} vs {results['trl']['peak'] / 1e9:.2f} GB")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
