"""Train a LoRA adapter on a task's train.jsonl: validation loss, early stopping, best adapter kept,
checkpoints to resume from, and a manifest of everything that shaped it."""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

from evals.data.golden import samples_hash
from evals.errors import EvalsError
from evals.types import ModelConfig, ModelSpec, Task
from finetune.checkpoint import Progress, checkpoint_dir, load_state, publish, save_best, save_state
from finetune.config import FinetuneConfig
from finetune.data import Example, check_overlap, length_grouped_batches, load_train, split, tokenize, training_chats
from finetune.distributed import World, cpu_threads
from finetune.loss import accumulate_gradients, batch_loss, shared_prefix_len
from finetune.memory import MemoryPlan

ADAPTERS_ROOT = Path("finetune/adapters")
MANIFEST_FILE = "manifest.json"
CHECKPOINT_EVERY_S = 300.0


class TrainingInterrupted(EvalsError):
    """A stop signal: the last completed step is saved and `--resume` continues from it, or training had not
    started and nothing was written. `exit_code`: 130 for SIGINT, 143 for SIGTERM."""

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


def adapter_dir(name: str) -> Path:
    """finetune/adapters/NAME, for a plain name (letters, digits, `.`, `_`, `-`)."""
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*", name) or name in (".", ".."):
        raise EvalsError(f"adapter name '{name}' must be a plain folder name (letters, digits, '.', '_', '-'); "
                         "give one with --name")
    return ADAPTERS_ROOT / name


Subset = tuple[Sequence[Any], Sequence[Any]]  # (training samples, validation samples)


@dataclass(frozen=True)
class TrainingData:
    train: list[Example]
    val: list[Example]
    skipped_too_long: list[str]
    train_hash: str
    overlap: list[dict[str, Any]]


def base_source(config: FinetuneConfig):
    """The base model's weights: a `local:` spec without an adapter."""
    from evals.providers import provider_class
    from evals.providers.local import LocalProvider, require_local_stack, resolve_source

    try:
        spec = ModelSpec.parse(config.base)
    except ValueError as e:
        raise EvalsError(str(e), field="base") from None
    try:
        local = provider_class(spec.provider) is LocalProvider
    except EvalsError:  # no provider of that name
        local = False
    if not local or spec.adapter:
        raise EvalsError(f"the base model must be a local model without an adapter (e.g. local:smollm2), "
                         f"got '{config.base}'", field="base")
    require_local_stack()
    return resolve_source(spec.model)


def prepare_data(task: Task, config: FinetuneConfig, tokenizer, *, allow_overlap: bool,
                 model: ModelConfig | None = None, subset: Subset | None = None) -> TrainingData:
    """Decontaminate against the golden set, hold out the validation slice, tokenise, drop over-long chats.
    `model`: the adapter's entry in task.yaml, whose prompt settings (system, few_shot) training follows.
    `subset`: train on these examples only, validated on these (a learning curve's size; finetune/curve.py)."""
    samples = load_train(task)
    overlap = check_overlap(task, samples, allow=allow_overlap)
    train_s, val_s = subset if subset is not None else split(samples, config.val_fraction, config.seed)
    if subset is not None:
        samples = [*train_s, *val_s]

    def encode(part):
        examples = tokenize(tokenizer, training_chats(task, part, model), [s.id for s in part], task.tools)
        return [e for e in examples if len(e) <= config.max_length], [e.id for e in examples if len(e) > config.max_length]

    train, long_train = encode(train_s)
    val, long_val = encode(val_s)
    if not train:
        raise EvalsError(f"every training example is longer than max_length={config.max_length} tokens",
                         field="max_length")
    return TrainingData(train, val, long_train + long_val, samples_hash(samples),
                        [{"golden": o.golden_id, "train": o.train_id, "exact": o.exact} for o in overlap])


def _set_up_torch(config: FinetuneConfig, world: World):
    """(device, dtype): the process's GPU when there is one; on CPU every core this process may use."""
    import torch

    from evals.providers.local import pick_device, pick_dtype

    from finetune.memory import bound_kernel_caches, reset_peak_rss, return_freed_memory

    device = world.device or pick_device()
    return_freed_memory()  # before the model loads: the resident set follows what training holds, not its past
    reset_peak_rss()  # the peak the manifest gives is this training's, not what the process did before
    bound_kernel_caches()
    if device == "cpu":
        torch.set_num_threads(cpu_threads(world))
    return device, pick_dtype(config.dtype, device, training=True)


def add_lora(base, config: FinetuneConfig):
    """`base` with a new LoRA adapter of `config`'s settings (initialised from its seed), in training mode."""
    import torch
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in base.named_modules()}
    missing = [m for m in config.target_modules if m not in present]
    if missing:
        raise EvalsError(f"target module(s) {', '.join(missing)} not in the base model", field="target_modules")
    torch.manual_seed(config.seed)
    lora = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                      target_modules=list(config.target_modules), task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # peft calls a transformers method deprecated in v5
        warnings.simplefilter("ignore", FutureWarning)
        model = get_peft_model(base, lora)
    model.train()
    return model


def mean_loss(model, examples: Sequence[Example], pad_id: int, batch_size: int, world: World = World(),
              on_rows: Callable[[int, int], None] | None = None) -> float:
    """Answer-token cross-entropy over `examples` (no gradients, dropout off), each rank a share of them;
    `on_rows(done, total)` after each batch (this rank's rows)."""
    import torch

    model.eval()
    total, count = 0.0, 0
    ordered = world.shard(sorted(examples, key=len))
    try:
        with torch.no_grad():
            for i in range(0, len(ordered), batch_size):
                r = batch_loss(model, ordered[i:i + batch_size], pad_id)
                total += float(r.total)
                count += r.answer_tokens
                if on_rows:
                    on_rows(min(i + batch_size, len(ordered)), len(ordered))
    finally:
        model.train()
    total, count = world.sum(total, count)
    return total / max(count, 1)


@dataclass
class TrainingStep:
    """One optimiser step of `evals finetune` (bench/gpu_check.py times this very one): forward and backward over
    this rank's rows of the step's batches, `micro_batch` rows at a time (loss normalised over all their answer
    tokens), gradients summed over the ranks, then one clipped AdamW update on the warm-up + cosine schedule."""

    model: Any
    params: list
    optimizer: Any
    scheduler: Any
    pad_id: int
    micro_batch: int
    world: World = World()

    @classmethod
    def of(cls, model, config: FinetuneConfig, *, total_steps: int, pad_id: int, micro_batch: int,
           world: World = World()) -> TrainingStep:
        """The step for `model`'s trainable weights with `config`'s optimiser settings, over `total_steps`."""
        import torch
        from transformers import get_cosine_schedule_with_warmup

        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
        scheduler = get_cosine_schedule_with_warmup(optimizer, round(total_steps * config.warmup_ratio), total_steps)
        return cls(model, params, optimizer, scheduler, pad_id, micro_batch, world)

    def __call__(self, rows: list[list[Example]]) -> tuple[float, int]:
        """Train on the step's batches `rows`; returns (loss summed over them, answer tokens)."""
        done = self.backward(rows)
        self.update()
        return done

    def backward(self, rows: list[list[Example]]) -> tuple[float, int]:
        """The gradients of the step's batches (nothing trained changes yet: stopping here loses only this step's
        work); returns (loss summed over them, answer tokens)."""
        answer_tokens = sum(len(e.answer) for b in rows for e in b)
        loss_sum = 0.0
        for b in self.world.shards(rows):
            loss_sum += accumulate_gradients(self.model, b, self.pad_id, micro_batch=self.micro_batch,
                                             divisor=answer_tokens).total
        return self.world.sum_gradients(self.params, loss_sum), answer_tokens

    def update(self) -> None:
        """The clipped AdamW update from the gradients, then the schedule's next learning rate."""
        import torch

        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)


def plan_memory_use(model, examples: Sequence[Example], config: FinetuneConfig, *, device: str, force: bool,
                    world: World = World()) -> MemoryPlan:
    """Measure the model, choose the micro-batch and checkpointing (unless set) for this process's share of a
    batch in `device`'s memory, and refuse an estimated peak beyond the memory free unless `force`. Processes under
    torchrun plan together, with the most any of them needs and the least room any has, so all choose the same
    and a refusal stops every one with the same message. Checkpointing is switched on here when chosen."""
    from finetune import memory
    from finetune.loss import enable_checkpointing

    measured = memory.measure_profile(model)
    gpu = memory.on_gpu(device)
    free = memory.free_bytes(device) // (1 if gpu else world.local_size)  # the processes on a machine share its RAM
    profile = memory.MemoryProfile(*map(int, world.max(*astuple(measured))))
    room = int(world.min(measured.resident + free)[0])
    share = math.ceil(config.batch_size / world.size)  # the rows of every batch each process trains on
    limit = config.memory_limit_gb
    rows = memory.Rows.of(examples, shared_prefix_len(examples))
    plan = memory.plan_memory(
        profile, rows, batch_size=share, free=max(0, room - profile.resident),
        limit=round(limit * memory.GB) if limit != "auto" else None if gpu else memory.HOST_LIMIT,
        micro_batch=None if config.micro_batch == "auto" else min(config.micro_batch, share),
        checkpointing=None if config.gradient_checkpointing == "auto" else config.gradient_checkpointing,
        where=memory.memory_name(device, world.size if gpu else world.local_size))
    if plan.estimate > profile.resident + plan.free and not force:
        raise EvalsError(memory.too_big_message(plan, profile, rows))
    if plan.checkpointing:
        enable_checkpointing(model)
    return plan


def _check_output(out: Path, *, resume: bool, force: bool) -> None:
    """Refuse to overwrite or to silently restart; nothing is deleted here."""
    has_checkpoint = (checkpoint_dir(out) / "state.pt").is_file()
    if resume and not has_checkpoint:
        raise EvalsError(f"nothing to resume: no checkpoint in {checkpoint_dir(out)}")
    if not resume and not force:
        if has_checkpoint:
            raise EvalsError(f"an interrupted fine-tune is in {out}: add --resume to continue it, "
                             "or --force to start over")
        if (out / MANIFEST_FILE).exists():
            raise EvalsError(f"{out} already holds a trained adapter: add --force to replace it, "
                             "or --name to keep both")


def validation_steps(steps_per_epoch: int, per_epoch: int) -> set[int]:
    """Steps within an epoch (1-based) after which to validate: evenly spread, the last one included."""
    return {math.ceil(k * steps_per_epoch / per_epoch) for k in range(1, per_epoch + 1)}


class StopRequest:
    """SIGINT (Ctrl-C) and SIGTERM stop a fine-tune. In one process the first signal stops at once wherever it
    lands (loading, planning, validating, a step's forward and backward: nothing trained has changed then),
    except inside `critical()` (an optimiser update with its bookkeeping, a checkpoint being written), which it
    waits for (a second signal too: it lasts well under a second); the training loop then stops after that step.
    Under torchrun every rank stops after the same step (a rank leaving mid-step would leave the others waiting
    in a collective), or at once on a second signal."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, *, at_once: bool = True) -> None:
        self.received: int | None = None
        self._at_once = at_once
        self._critical = 0
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.received is not None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def _handle(self, signum, frame) -> None:
        again, self.received = self.requested, self.received or signum
        if not self._critical and (again or self._at_once):
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """A stretch a first signal does not cut: it is said when the stretch ends (`requested`)."""
        self._critical += 1
        try:
            yield
        finally:
            self._critical -= 1

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)

    def exit_code(self) -> int:
        return 128 + (self.received or signal.SIGINT)


def train(
    task: Task,
    config: FinetuneConfig,
    out: Path,
    *,
    resume: bool = False,
    force: bool = False,
    allow_overlap: bool = False,
    console=None,
    progress_mode: str = "bar",
    on_step: Callable[[Progress], None] | None = None,
    world: World = World(),
    subset: Subset | None = None,
    prompt_model: ModelConfig | None = None,
) -> dict[str, Any]:
    """Train, keep the best adapter in `out`, and return its manifest (also written to out/manifest.json).
    With a `world` of several processes, each trains on its share and rank 0 alone writes (finetune/distributed.py).
    `subset` (train, validation samples) replaces the split of the task's train file; `prompt_model` is the task
    entry whose prompt settings training follows (default: the entry of `out`'s model spec)."""
    with StopRequest(at_once=world.size == 1) as stop:
        try:
            return _train(task, config, out, stop, resume=resume, force=force, allow_overlap=allow_overlap,
                          console=console, progress_mode=progress_mode, on_step=on_step, world=world, subset=subset,
                          prompt_model=prompt_model)
        except KeyboardInterrupt:  # before anything was written (what came after says so itself)
            raise TrainingInterrupted(f"stopped by {signal.Signals(stop.received or signal.SIGINT).name} before "
                                      "training started; nothing was written", stop.exit_code()) from None


def _train(task: Task, config: FinetuneConfig, out: Path, stop: StopRequest, *, resume: bool, force: bool,
           allow_overlap: bool, console, progress_mode: str, on_step: Callable[[Progress], None] | None,
           world: World, subset: Subset | None = None, prompt_model: ModelConfig | None = None) -> dict[str, Any]:
    from evals.providers.local import load_base_model, load_tokenizer
    from finetune.progress import TrainingProgress

    source = base_source(config)
    _check_output(out, resume=resume, force=force)
    tokenizer = load_tokenizer(source)
    data = prepare_data(task, config, tokenizer, allow_overlap=allow_overlap, subset=subset,
                        model=prompt_model or task.model_config(f"{config.base}+lora:{out}"))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device, dtype = _set_up_torch(config, world)
    model = add_lora(load_base_model(source, dtype, device), config)
    plan = plan_memory_use(model, data.train + data.val, config, device=device, force=force, world=world)
    if console is not None and world.is_main:
        console.print(plan.describe(), highlight=False)
    batches_per_epoch = math.ceil(len(data.train) / config.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / config.grad_accum)
    total_steps = steps_per_epoch * config.epochs
    step = TrainingStep.of(model, config, total_steps=total_steps, pad_id=pad_id, micro_batch=plan.micro_batch,
                           world=world)
    optimizer, scheduler = step.optimizer, step.scheduler
    fingerprint = {"config": config.math_dict(), "train_hash": data.train_hash, "base": str(source),
                   "processes": world.size}
    progress = (load_state(out, model=model, optimizer=optimizer, scheduler=scheduler, fingerprint=fingerprint)
                if resume else Progress())
    validate_at = validation_steps(steps_per_epoch, config.evals_per_epoch)
    session_start = time.perf_counter()
    resume_line = (f"Continue with: {world.command} finetune {task.name}"
                   f"{'' if out.name == task.name else f' --name {out.name}'} --resume")

    def checkpoint() -> None:
        nonlocal session_start
        with stop.critical():
            now = time.perf_counter()
            progress.wall_seconds += now - session_start
            session_start = now
            if world.is_main:
                save_state(out, model=model, optimizer=optimizer, scheduler=scheduler, progress=progress,
                           fingerprint=fingerprint)

    def validate(bar: TrainingProgress) -> None:
        loss = (mean_loss(model, data.val, pad_id, plan.micro_batch * 2, world, on_rows=bar.validating)
                if data.val else None)
        with stop.critical():
            progress.validations.append({"step": progress.step, "epoch": progress.epoch, "val_loss": loss})
            if loss is None or progress.best_val_loss is None or loss < progress.best_val_loss:
                if world.is_main:
                    save_best(out, model)  # no validation slice: the latest adapter counts as the best
                progress.best_val_loss, progress.best_step, progress.since_best = loss, progress.step, 0
            else:
                progress.since_best += 1
        checkpoint()
        bar.validated()

    with TrainingProgress(console, total_steps, progress, progress_mode, config.epochs) as bar:
        if not resume:  # the untrained model's loss: the yardstick, and the best until something beats it
            try:
                if world.is_main:  # everything is checked: only now is an older adapter of this name replaced
                    shutil.rmtree(out, ignore_errors=True)
                    out.mkdir(parents=True)
                validate(bar)
            except KeyboardInterrupt:  # no step taken: nothing worth resuming is kept
                if world.is_main:
                    shutil.rmtree(out, ignore_errors=True)
                raise TrainingInterrupted(f"stopped by {signal.Signals(stop.received or signal.SIGINT).name} "
                                          f"before the first step; nothing was kept in {out}",
                                          stop.exit_code()) from None
        try:
            while progress.epoch < config.epochs and not progress.stopped_early:
                batches = length_grouped_batches(data.train, config.batch_size, config.seed + progress.epoch)
                while progress.batch < len(batches):
                    if world.any(stop.requested):  # asked during a save or the last step: every rank stops here
                        raise KeyboardInterrupt
                    rows = [[data.train[i] for i in b] for b in batches[progress.batch:progress.batch + config.grad_accum]]
                    t0 = time.perf_counter()
                    loss_sum, answer_tokens = step.backward(rows)  # a stop here loses only this step's work
                    with stop.critical():  # the update and its record: all or nothing
                        step.update()
                        progress.record_step(batches=len(rows), tokens=sum(len(e) for b in rows for e in b),
                                             loss_sum=loss_sum, answer_tokens=answer_tokens,
                                             seconds=time.perf_counter() - t0)
                    bar.step(loss_sum / answer_tokens)
                    if math.ceil(progress.batch / config.grad_accum) in validate_at:
                        validate(bar)
                        if progress.since_best >= config.patience:
                            progress.stopped_early = True
                            break
                    elif time.perf_counter() - session_start > CHECKPOINT_EVERY_S:  # time since the last save
                        checkpoint()
                    if on_step:
                        on_step(progress)
                with stop.critical():
                    progress.end_epoch()
                checkpoint()
        except KeyboardInterrupt:
            optimizer.zero_grad(set_to_none=True)
            checkpoint()
            raise TrainingInterrupted(f"interrupted at step {progress.step}/{total_steps}; the checkpoint is in "
                                      f"{checkpoint_dir(out)}. {resume_line}", stop.exit_code()) from None
    from finetune.manifest import build_manifest

    with stop.critical():  # trained: the adapter is published whatever arrives now
        manifest = build_manifest(task, config, source, out, data, progress, device=device,
                                  dtype=str(dtype).removeprefix("torch."), total_steps=total_steps, memory=plan)
        manifest["parallel"] = world.manifest_fields(device)
        if world.is_main:
            publish(out)
            (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest
