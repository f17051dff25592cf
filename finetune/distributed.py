"""Data-parallel fine-tuning: `torchrun --nproc-per-node N -m evals finetune TASK ...`.

Each of the N processes (ranks) holds the whole model with its LoRA adapter and takes a shard of every
batch (rows rank, rank + N, ...), so the effective batch is the same as one process's and so is the
update: each rank divides its rows' loss by the answer tokens of the whole step, and the ranks' gradients
are summed (one all-reduce per optimiser step, the loss sums and the stop flag riding along), which is
DDP's average of per-rank mean losses, exact for any split of the rows. Validation is sharded the same way.
Rank 0 alone writes checkpoints, the best adapter, the manifest and the published adapter, and only it
prints; every rank resumes from the same checkpoint, which refuses another number of processes.

A GPU per rank (`cuda:LOCAL_RANK`, NCCL) where torch sees CUDA, else the CPU's cores shared out (gloo).
(DDP's wrapper is not used: the shared-prefix loss runs the model's body and head apart, past the wrapper's
forward, and one coalesced all-reduce per step is what it would do with gradient accumulation anyway.)
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes; the defaults are one process on the best device."""

    rank: int = 0
    size: int = 1
    local_size: int = 1  # processes on this machine (they share its CPU cores)
    device: str | None = None  # None: the best one here (evals.providers.local.pick_device)
    backend: str | None = None  # the torch.distributed backend, when size > 1

    @property
    def is_main(self) -> bool:
        """The process that writes files and prints."""
        return self.rank == 0

    @property
    def command(self) -> str:
        """How to start `evals` with this many processes (on one machine)."""
        return "evals" if self.size == 1 else f"torchrun --nproc-per-node {self.local_size} -m evals"

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's share of `items`: every size-th one, from its rank."""
        return list(items[self.rank::self.size])

    def shards(self, batches: Sequence[Sequence[T]]) -> Iterator[list[T]]:
        """This rank's rows of each batch of a step (a batch smaller than the world leaves some ranks none)."""
        for batch in batches:
            if mine := self.shard(batch):
                yield mine

    def sum_gradients(self, params: Sequence[Any], loss_sum: float) -> float:
        """Sum every rank's gradients of `params` into each rank's, in one all-reduce; returns the step's
        loss summed over all ranks."""
        if self.size == 1:
            return loss_sum
        import torch

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1).float() for g in grads] + [torch.tensor([loss_sum], device=grads[0].device)])
        self._all_reduce(flat)
        offset = 0
        for p, g in zip(params, grads):
            p.grad = flat[offset:offset + g.numel()].view_as(p).to(p.dtype)
            offset += g.numel()
        return float(flat[-1])

    def sum(self, *values: float) -> tuple[float, ...]:
        """Each value summed over the ranks."""
        return self._reduce(values, "sum")

    def max(self, *values: float) -> tuple[float, ...]:
        """Each value's largest over the ranks."""
        return self._reduce(values, "max")

    def min(self, *values: float) -> tuple[float, ...]:
        """Each value's smallest over the ranks."""
        return self._reduce(values, "min")

    def _reduce(self, values: tuple[float, ...], op: str) -> tuple[float, ...]:
        if self.size == 1:
            return values
        import torch

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        self._all_reduce(t, op)
        return tuple(t.tolist())

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on one (e.g. a Ctrl-C some ranks have not seen yet)."""
        return flag if self.size == 1 else self.sum(float(flag))[0] > 0

    def manifest_fields(self, device: str) -> dict[str, Any]:
        """For the manifest: how many processes trained, and the largest peak GPU memory among them."""
        import torch

        peak = None
        if device.startswith("cuda"):
            t = torch.tensor([float(torch.cuda.max_memory_allocated(device))], dtype=torch.float64, device=device)
            if self.size > 1:
                self._all_reduce(t, "max")
            peak = int(t.item())
        return {"processes": self.size, "backend": self.backend, "gpu_peak_memory_bytes": peak}

    def _all_reduce(self, tensor, op: str = "sum") -> None:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=getattr(dist.ReduceOp, op.upper()))


def cpu_threads(world: World) -> int:
    """The CPU cores this process may use, shared among the training processes on this machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // world.local_size)


def join_world(*consoles) -> World:
    """This process's World: one process unless launched by torchrun (WORLD_SIZE > 1); then the process group
    is joined now (and left at exit), and `consoles` go quiet on every rank but 0, where the last one says
    how training is split."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    import torch
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device, backend = f"cuda:{local}", "nccl"
        torch.cuda.set_device(local)
    else:
        device, backend = "cpu", "gloo"
    dist.init_process_group(backend)
    atexit.register(dist.destroy_process_group)
    world = World(rank=rank, size=size, local_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(size))),
                  device=device, backend=backend)
    for console in consoles:
        console.quiet = not world.is_main
    if consoles:
        threads = cpu_threads(world)
        where = "a GPU each" if backend == "nccl" else f"the CPU, {threads} thread{'s' if threads > 1 else ''} each"
        consoles[-1].print(f"data-parallel: {size} processes ({backend}, {where}), each a shard of every batch",
                           highlight=False)
    return world
