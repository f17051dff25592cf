"""Training throughput of `evals finetune` against TRL's SFTTrainer + peft, side by side in one run.

Same task data (resume-feedback's train.jsonl: the chats the task sends, answered with the
references), same base model and dtype, same LoRA settings, learning rate, schedule, effective batch
and number of optimiser steps, loss on the answer tokens only for both. Throughput is prompt +
answer tokens (padding excluded) per second of training; the validation loss of both adapters is
then measured by the same code on the same held-out examples.

    .venv/bin/python bench/finetune_throughput.py --n 48 --val 16

Run it on a quiet machine: another busy process on a 2-core CPU slows torch several-fold.
TRL's per-device batch defaults to 2 with 4 accumulation steps (the same effective batch of 8):
its rows carry their full 1,400-token prompts and a batch of 8 needs more than 24 GiB here.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_task_copy(task_dir: Path, rows: list[dict], folder: Path) -> Path:
    """The task with train.jsonl cut down to `rows` (same prompt, golden set and metrics)."""
    shutil.copytree(task_dir, folder)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def run_ours(task, config, out: Path) -> dict:
    from finetune.trainer import train

    manifest = train(task, config, out, console=None)
    return {"tokens": manifest["tokens"], "seconds": manifest["train_seconds"], "steps": manifest["steps"]["done"]}


def run_trl(task, config, train_samples, trl_batch: int, work: Path):
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from evals.providers.local import load_base_model, load_tokenizer, pick_dtype, resolve_source
    from finetune.data import training_chats

    source = resolve_source(config.base.removeprefix("local:"))
    dtype = pick_dtype(config.dtype)
    chats = training_chats(task, train_samples)
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
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=load_tokenizer(source), peft_config=lora)
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"]) * config.epochs
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    return {"tokens": tokens, "seconds": seconds, "steps": result.global_step}, trainer.model


def val_loss(model, val_examples, pad_id: int) -> float:
    from finetune.trainer import mean_loss

    return mean_loss(model, val_examples, pad_id, batch_size=8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="golden_sets/resume-feedback")
    ap.add_argument("--n", type=int, default=48, help="training examples")
    ap.add_argument("--val", type=int, default=16, help="validation examples")
    ap.add_argument("--trl-batch", type=int, default=2, help="TRL per-device batch (accumulation makes up the rest)")
    opts = ap.parse_args()

    import torch
    from peft import PeftModel

    from evals.data.tasks import load_task
    from evals.providers.local import load_base_model, load_tokenizer, pick_dtype
    from finetune.config import FinetuneConfig
    from finetune.data import load_train, split, tokenize, training_chats
    from finetune.trainer import base_source

    original = load_task(opts.task)
    rows = [json.loads(line) for line in (original.dir / original.train).read_text().splitlines()][:opts.n + opts.val]
    work = Path(tempfile.mkdtemp(prefix="ft-bench-"))
    task = load_task(str(make_task_copy(original.dir, rows, work / "task")))
    config = FinetuneConfig(epochs=1, val_fraction=opts.val / (opts.n + opts.val), evals_per_epoch=1)
    train_samples, val_samples = split(load_train(task), config.val_fraction, config.seed)
    source = base_source(config)
    tokenizer = load_tokenizer(source)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    val_examples = tokenize(tokenizer, training_chats(task, val_samples), [s.id for s in val_samples])
    print(f"{len(train_samples)} training + {len(val_samples)} validation examples of {original.name}; "
          f"{config.base}, LoRA r={config.rank} on {len(config.target_modules)} module types, "
          f"batch {config.batch_size}x{config.grad_accum}, lr {config.learning_rate}, threads {torch.get_num_threads()}",
          flush=True)

    ours = run_ours(task, config, work / "ours")
    tuned = PeftModel.from_pretrained(load_base_model(source, pick_dtype(config.dtype)), str(work / "ours"))
    ours["val_loss"] = val_loss(tuned, val_examples, pad)
    del tuned
    trl, trl_model = run_trl(task, config, train_samples, opts.trl_batch, work)
    trl["val_loss"] = val_loss(trl_model, val_examples, pad)

    print(f"{'trainer':<22}{'steps':>6}{'tokens':>10}{'seconds':>10}{'tokens/s':>10}{'val loss':>10}")
    for name, r in (("evals finetune", ours), (f"TRL SFTTrainer (b{opts.trl_batch})", trl)):
        print(f"{name:<22}{r['steps']:>6}{r['tokens']:>10,}{r['seconds']:>10.1f}{r['tokens'] / r['seconds']:>10.1f}"
              f"{r['val_loss']:>10.4f}")
    ratio = (ours["tokens"] / ours["seconds"]) / (trl["tokens"] / trl["seconds"])
    print(f"throughput ratio evals/TRL: {ratio:.2f}x (target >= 1.3x); "
          f"validation loss {ours['val_loss']:.4f} vs {trl['val_loss']:.4f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
