"""What the store keeps besides results: runs, latency profiles, decisions, baselines, checks and human labels, as
read back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunRecord:
    id: str
    task: str
    model: str
    status: str  # running, completed, interrupted, budget-stopped
    n_samples: int
    n_done: int
    n_errors: int
    created_at: str
    finished_at: str | None
    manifest: dict[str, Any]
    busy_s: float | None = None  # wall time with at least one model call in flight (cache hits excluded)
    served_calls: int | None = None  # calls answered in that time
    concurrency: int | None = None  # requests in flight (local: batch size)
    hardware: str | None = None  # where the model ran: this machine's CPU or GPU, or the remote server
    owner: str | None = None  # the process running it (evals.run.owner); a run whose process is gone reads interrupted

    @property
    def n_attempts(self) -> int:
        """Results the run is to store: each example times its repeats (n_done counts these)."""
        return self.n_samples * int(self.manifest.get("repeats") or 1)


@dataclass(frozen=True)
class LatencyProfile:
    """`evals latency`: one model measured at several concurrencies on one piece of hardware."""

    id: int
    task: str
    model: str
    identity: str
    hardware: str
    created_at: str
    levels: list[dict[str, Any]]  # per concurrency: ttft and total p50/p95, calls_per_hour, tokens/s, errors


@dataclass(frozen=True)
class DecisionRecord:
    id: int
    task: str
    baseline_run_id: str
    candidate_run_id: str
    label: str
    decided_on: str  # ISO date
    revisit_on: str  # ISO date


@dataclass(frozen=True)
class BaselineRecord:
    """A run the team accepted for a task and model; the newest per (task, model) is the current one."""

    id: int
    task: str
    model: str
    run_id: str
    set_at: str
    note: str | None


@dataclass(frozen=True)
class CheckRecord:
    """One `evals check`: its status (pass, warn, fail, error) and the whole outcome as stored JSON."""

    id: int
    task: str
    model: str
    run_id: str | None
    baseline_run_id: str | None
    created_at: str
    status: str
    outcome: dict[str, Any]


@dataclass(frozen=True)
class HumanLabel:
    """A reviewer's verdict on one attempt's answer (the newest per attempt is the current one)."""

    id: int
    run_id: str
    example_id: str
    attempt: int  # 1 in a run without repeats (and for labels stored before labels had attempts)
    label: str  # right, wrong
    comment: str | None
    labelled_at: str
