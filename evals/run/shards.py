"""One run split across machines: `evals run TASK --shard I/N --run-group NAME` on N machines (a CI matrix, say),
each writing to the shared store (a PostgreSQL server).

The first shard to arrive creates the group's run of each model, owned by no process (a machine's shard ending
never makes it read interrupted); the others join it. Shard I asks every N-th of the run's attempts from the I-th,
by position (the split `--workers` makes), and reports when its share is over; the shard whose report is the
N-th settles the run, once. A shard that was lost leaves the run running: `evals run --resume RUN_ID` finishes
what it left."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from evals.errors import EvalsError
from evals.run.calls import RunOptions, lane_width
from evals.run.runner import RunOutcome, create_runs, execute_jobs, shared_calls
from evals.run.settle import settle_run
from evals.run.store import Store, _now


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' as (I, N), 1 <= I <= N."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise EvalsError(f"a shard is I/N (this machine's number, then how many: 2/4), not '{text}'",
                         field="--shard") from None
    if not 1 <= i <= n:
        raise EvalsError(f"shard {i}/{n}: I is from 1 to N", field="--shard")
    return i, n


def join_group(store: Store, group: str, shards: int, task: str, model: str, n_samples: int,
               manifest: dict[str, Any]) -> str:
    """The group's run of this model: created by the first shard to arrive (in one transaction, so two arriving
    together make one run), joined by the others, which must have the same task, golden set and shard count."""
    db = store.database
    with db.transaction():
        new = secrets.token_hex(4)
        db.execute("INSERT OR IGNORE INTO run_groups (name, model, run_id, shards) VALUES (?,?,?,?)",
                   (group, model, new, shards))
        [(run_id, expected)] = db.rows("SELECT run_id, shards FROM run_groups WHERE name = ? AND model = ?",
                                       (group, model))
        if run_id == new:
            return store.create_run(task, model, n_samples, manifest, run_id=new, owned=False)
    if expected != shards:
        raise EvalsError(f"run group '{group}' was started with {expected} shards, not {shards}", field="--shard")
    record = store.get_run(run_id)
    theirs = (record.task, record.n_samples, (record.manifest.get("golden") or {}).get("hash"),
              record.manifest.get("repeats"))
    ours = (task, n_samples, (manifest.get("golden") or {}).get("hash"), manifest.get("repeats"))
    if theirs != ours:
        raise EvalsError(f"run group '{group}' holds run {run_id} of another task, golden set or repeats; "
                         "give each run its own group name", field="--run-group")
    return str(run_id)


def report_shard(store: Store, run_id: str, shard: tuple[int, int], status: str) -> str | None:
    """Shard `shard` (I, N) of the run is over with `status`; when it is the last of the N to report, the run is
    settled (completed when every shard completed its share) and its status is returned, else None. Reports are
    made one at a time (the run's row is locked first), so exactly one shard settles the run."""
    db = store.database
    with db.transaction():
        db.execute("UPDATE runs SET status = status WHERE id = ?", (run_id,))  # the row's lock, to the commit
        db.execute("INSERT OR REPLACE INTO run_shards (run_id, shard, status, reported_at) VALUES (?,?,?,?)",
                   (run_id, shard[0], status, _now()))
        reported = [r[0] for r in db.rows("SELECT status FROM run_shards WHERE run_id = ?", (run_id,))]
        [(current,)] = db.rows("SELECT status FROM runs WHERE id = ?", (run_id,))
        if len(reported) < shard[1] or current != "running":  # others still at it, or resumed and settled already
            return None
        final = ("completed" if set(reported) == {"completed"} else
                 "budget-stopped" if "budget-stopped" in reported else "interrupted")
        db.execute("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?", (final, _now(), run_id))
        return final


async def run_shard(task: Any, samples: Sequence[Any], providers: Sequence[tuple[Any, Any]], store: Store,
                    options: RunOptions, *, group: str, shard: tuple[int, int], cache: Any = None,
                    progress: Any = None, warn: Callable[[str], None] | None = None,
                    note: Callable[[str], None] | None = None) -> list[RunOutcome]:
    """This machine's share of the group's run of each model; its busy time added to the run's, its report made
    (the last one settles the run: `note` says so)."""
    say = warn or (lambda _: None)
    async with shared_calls(task, samples, providers, store, options, cache, None, warn,
                            " (choose a judge with --judge SPEC or $EVALS_JUDGE)") as models:
        jobs = create_runs(task, samples, providers, store, options,
                           open_run=functools.partial(join_group, store, group, shard[1]))
        outcomes = await execute_jobs(task, samples, jobs, store, models, progress, shard=(shard[0] - 1, shard[1]))
    for job, outcome in zip(jobs, outcomes, strict=True):
        settle_run(store, job.run_id, None, say, provider=job.provider, busy_s=outcome.busy_s,
                   concurrency=lane_width(options, job.provider), served=outcome.served)
        settled = report_shard(store, job.run_id, shard, outcome.status)
        if settled and note:
            note(f"run {job.run_id} settled {settled}: every one of its {shard[1]} shards has reported")
    return outcomes
