"""How much memory a fine-tune needs, and the fastest settings that fit: micro-batch size and gradient
checkpointing, chosen from the free memory, the longest rows and what the model keeps per token. The memory
is where training runs: a CUDA GPU's own (what torch's allocator holds there, and the device's free memory),
else host RAM (the resident set, and what the system can give without swapping).

What the model keeps for backward per token is measured at start on a few short probe rows
(`measure_profile`: the bytes of every tensor autograd saves, weights excluded), so the estimate holds
for any base model, dtype and LoRA setting; the choice itself (`plan_memory`) is a pure function.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

GB = 1e9
# Fitted to peak RSS measured for both settings at several micro-batch sizes and row lengths (SmolLM2-135M on
# a 2-core AMD EPYC, glibc malloc): a fixed cost of the first backward, and the allocator's slack over the
# bytes counted. Checkpointing's short-lived recomputed tensors between the kept layer inputs fragment the heap.
# Not yet fitted on a GPU: there they are used as they are.
# Fitted to whole `evals finetune` runs of SmolLM2-135M on resume-feedback's longest rows (bench/finetune_memory.py,
# 7 runs of 3 steps: bf16 and float32, micro-batches 1/2/4/8, checkpointing on and off; every estimate within 2.2% of
# the peak before RUN_GROWTH was added)
TRAINING_OVERHEAD = 140_000_000
# What a whole run holds by its end beyond a 3-step run's peak: the bounded kernel caches filled with every row length
# seen, and the allocator's holes. Fitted to the whole default bf16 fine-tune of resume-feedback (102 steps: peak
# 4.01 GB, 0.16 GB past the estimate without it, whose 3-step runs had come out 2% over).
RUN_GROWTH = 200_000_000
HELD_AT_PEAK = {False: 0.94, True: 0.48}  # by checkpointing: the share of the counted activations resident at the peak
HOST_LIMIT = 4 * GB  # what memory_limit_gb auto aims under in host RAM (on a GPU: all its free memory)
MMAP_THRESHOLD = 256 * 1024  # blocks this large or larger each get their own mapping, unmapped when freed
KERNEL_CACHE_CAPACITY = "128"  # compiled CPU kernels kept, per cache (oneDNN's and ideep's; 1024 each by default)


@dataclass(frozen=True)
class MemoryProfile:
    """What training this model costs in memory, in bytes."""

    resident: int  # the process once the model is loaded (weights, libraries, tokenizer); on a GPU, torch's bytes there
    trainable: int  # the LoRA weights: their gradients and two AdamW moments come on top
    per_token: int  # saved for backward per row token, over all layers, not counting attention keys
    per_key: int  # saved per row for each token it attends to (keys and values)
    per_layer_input: int  # what checkpointed layers keep per token (each its input hidden state), over all layers
    layers: int
    per_answer_token: int  # logits over the vocabulary, their log-softmax and gradient (float32)


@dataclass(frozen=True)
class Rows:
    """The worst batch to plan for: its longest row, the prefix every batch shares, the longest answer."""

    longest: int
    prefix: int
    answer: int

    @classmethod
    def of(cls, examples: Sequence, prefix: int) -> Rows:
        return cls(max(len(e) for e in examples), prefix, max(len(e.answer) for e in examples))


@dataclass(frozen=True)
class MemoryPlan:
    micro_batch: int
    checkpointing: bool
    estimate: int  # estimated peak resident bytes
    limit: int  # what the choice aimed under: the memory limit, or less when less is free
    free: int  # bytes free beside this process when the plan was made
    chosen: bool  # picked automatically (else both settings were given)
    where: str = "host RAM"  # whose memory: host RAM or GPU N (memory_name)
    profile: MemoryProfile | None = None  # what the estimate was computed from, kept in the manifest
    rows: Rows | None = None

    def fits(self) -> bool:
        return self.estimate <= self.limit

    def describe(self) -> str:
        how = "chosen for" if self.chosen else "set; limit"
        return (f"memory: micro-batches of {self.micro_batch} row(s), gradient checkpointing "
                f"{'on' if self.checkpointing else 'off'} ({how} {self.limit / GB:.1f} GB); estimated peak "
                f"{self.estimate / GB:.1f} GB, {self.free / GB:.1f} GB free ({self.where})")

    def to_dict(self) -> dict:
        return asdict(self)


def estimate_peak(profile: MemoryProfile, rows: Rows, micro_batch: int, checkpointing: bool) -> int:
    """Peak resident bytes of a training step over micro-batches of the longest rows.

    Without checkpointing every layer keeps its activations until backward: the prefix's (one row)
    for the whole batch, a micro-batch's rows for their own pass. With it, a layer keeps only its
    input, and one layer at a time is recomputed in backward. The logits of the answer tokens are
    float32, and one layer's gradients are in flight during backward.
    """
    p, m = rows.prefix, micro_batch
    s = rows.longest - p  # a row's own tokens after the prefix
    full = m * s * profile.per_token + m * rows.longest * profile.per_key  # one micro-batch, every layer
    if checkpointing:
        kept = (p + m * s) * profile.per_layer_input + 2 * full / profile.layers
    else:
        kept = p * (profile.per_token + profile.per_key) + full + full / profile.layers
    logits = m * rows.answer * profile.per_answer_token
    return int(profile.resident + 3 * profile.trainable + TRAINING_OVERHEAD + RUN_GROWTH
               + HELD_AT_PEAK[checkpointing] * (kept + logits))


def candidates(batch_size: int, micro_batch: int | None, checkpointing: bool | None) -> list[tuple[int, bool]]:
    """Settings from least to most compute (a smaller micro-batch adds none, checkpointing a recomputed
    forward), restricted to those the user fixed."""
    sizes = [micro_batch] if micro_batch else halvings(batch_size)
    modes = [checkpointing] if checkpointing is not None else [False, True]
    return [(m, c) for c in modes for m in sizes]


def halvings(n: int) -> list[int]:
    """n, n/2, ... 1 (rounded up): 8 -> [8, 4, 2, 1], 6 -> [6, 3, 2, 1]."""
    return [n] if n == 1 else [n, *halvings((n + 1) // 2)]


def plan_memory(profile: MemoryProfile, rows: Rows, *, batch_size: int, limit: int | None, free: int,
                micro_batch: int | None = None, checkpointing: bool | None = None,
                where: str = "host RAM") -> MemoryPlan:
    """The first settings in `candidates` order whose estimated peak fits under `limit` and in the memory free beside this
    process (`free`; no `limit`: that alone); the leanest when none fits. `micro_batch` or `checkpointing` given:
    kept as given. `where`: whose memory `free` is, for the messages."""
    limit = profile.resident + free if limit is None else min(limit, profile.resident + free)
    options = candidates(batch_size, micro_batch, checkpointing)
    fitting = [o for o in options if estimate_peak(profile, rows, *o) <= limit]
    m, c = fitting[0] if fitting else options[-1]
    return MemoryPlan(m, c, estimate_peak(profile, rows, m, c), limit, free,
                      chosen=micro_batch is None or checkpointing is None, where=where, profile=profile, rows=rows)


def too_big_message(plan: MemoryPlan, profile: MemoryProfile, rows: Rows) -> str:
    """Why training would not fit in free memory, and which setting to change."""
    need = (f"estimated peak memory {plan.estimate / GB:.1f} GB (micro-batch {plan.micro_batch}, gradient "
            f"checkpointing {'on' if plan.checkpointing else 'off'}) does not fit in {plan.where}: "
            f"{profile.resident / GB:.1f} GB loaded + {plan.free / GB:.1f} GB free")
    lean = estimate_peak(profile, rows, 1, True)
    if (plan.micro_batch, plan.checkpointing) != (1, True) and lean <= profile.resident + plan.free:
        fix = f"use --micro-batch 1 --gradient-checkpointing (estimated {lean / GB:.1f} GB)"
    else:
        fix = (f"lower --max-length below {rows.longest} to skip the longest rows, or free memory")
    return f"{need}. {fix}, or add --force to train anyway"


def measure_profile(model) -> MemoryProfile:
    """Measure what `model` (in training mode, checkpointing off) saves for backward, on probe rows of
    32 and 96 tokens with and without 64 tokens of prefix; the random state is left as it was."""
    import torch

    from finetune.loss import _core_and_head, _ReadOnlyPrefix, _Recorder, cache_keyword

    core, head = _core_and_head(model)
    config = core.config
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kw = cache_keyword(core)

    def saved(tokens: int, prefix: int = 0) -> int:
        found: dict[int, int] = {}

        def pack(t):
            storage = t.untyped_storage()
            if storage.data_ptr() not in weights:
                found[storage.data_ptr()] = storage.nbytes()
            return t

        ids = torch.randint(0, config.vocab_size, (1, prefix + tokens), device=head.weight.device)
        cache = None
        if prefix:
            recorder = _Recorder(config=config)
            core(input_ids=ids[:, :prefix], **{kw: recorder}, use_cache=True)
            states = [t.detach().requires_grad_() for i in sorted(recorder.states) for t in recorder.states[i]]
            cache = _ReadOnlyPrefix.of(states, 1, config)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            core(input_ids=ids[:, prefix:], position_ids=torch.arange(prefix, prefix + tokens).unsqueeze(0),
                 **{kw: cache}, use_cache=cache is not None)
        return sum(found.values())

    with torch.random.fork_rng(devices=[]):
        short, long = saved(32), saved(96)
        per_token_and_key = (long - short) / 64
        per_key = max(0.0, (saved(32, prefix=64) - short) / 64)
    dtype_bytes = head.weight.element_size()
    return MemoryProfile(
        resident=resident_bytes(str(head.weight.device)),
        trainable=sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad),
        per_token=round(per_token_and_key - per_key), per_key=round(per_key),
        per_layer_input=config.hidden_size * dtype_bytes * config.num_hidden_layers,
        layers=config.num_hidden_layers,
        per_answer_token=config.vocab_size * (12 + dtype_bytes))


def on_gpu(device: str) -> bool:
    return device.startswith("cuda")


def resident_bytes(device: str = "cpu") -> int:
    """What this process holds where it trains: on a GPU the bytes torch has allocated there, else its resident set."""
    if on_gpu(device):
        import torch

        return torch.cuda.memory_allocated(device)
    import psutil

    return psutil.Process().memory_info().rss


def free_bytes(device: str = "cpu") -> int:
    """Memory `device` can still give this process: on a GPU its free memory plus what torch's allocator keeps cached
    unused there, else what the system can give without swapping."""
    if on_gpu(device):
        import torch

        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return torch.cuda.mem_get_info(device)[0] + cached
    import psutil

    return psutil.virtual_memory().available


def memory_name(device: str, processes: int = 1) -> str:
    """Whose memory a plan is made against: host RAM (split among the training processes on this machine), or
    a GPU (each process its own one, the tightest of them counted)."""
    if not on_gpu(device):
        return "host RAM" if processes == 1 else f"host RAM, split among {processes} processes"
    if processes > 1:
        return f"the tightest of {processes} GPUs"
    import torch

    index = torch.device(device).index
    return f"GPU {torch.cuda.current_device() if index is None else index}"


def return_freed_memory() -> bool:
    """Make glibc give every large block freed back to the system at once (Linux only; elsewhere a no-op, False).

    By default glibc raises its mmap threshold each time a large block is freed, up to 32 MB, so a step's
    activations (a few MB each, other sizes every step as the rows' lengths change) come from the heap, and the
    holes they leave are kept: the resident set grew step after step, past the plan (3.6 GB after the first step
    of resume-feedback, 4.6 GB after the seventh, on a plan of 3.9 GB). A fixed threshold maps each large block
    on its own and unmaps it when freed, so the resident set is what training holds now."""
    from evals._util import glibc_call

    return bool(glibc_call("mallopt", -3, MMAP_THRESHOLD))  # M_MMAP_THRESHOLD; setting it stops the dynamic raising


def bound_kernel_caches() -> None:
    """Keep at most KERNEL_CACHE_CAPACITY compiled CPU kernels in each of oneDNN's and ideep's caches, unless the
    user set them. Call before torch's first CPU matmul: the caches read these once.

    Both are keyed by tensor shape, and every new row length brings new kernels with their scratch memory: in
    bfloat16 the resident set grew by about 15 MB per distinct length (0.92 GB to 1.57 GB over the first 45
    lengths of resume-feedback) and never came back. A step reuses a few dozen kernels across its layers, so
    128 keeps every hit within a step while bounding what old lengths hold."""
    for name in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"):
        os.environ.setdefault(name, KERNEL_CACHE_CAPACITY)


def reset_peak_rss() -> bool:
    """Start this process's peak resident memory again from what it holds now (Linux: the kernel's high-water mark,
    VmHWM, which `peak_rss_bytes` reads); False where it cannot be reset (the peak then stays the process's own).
    A learning curve trains and scores several sizes in one process: each size's peak is its own training's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """This process's peak resident memory since it started, or since `reset_peak_rss`."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        return psutil.Process().memory_info().peak_wset
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux KiB
