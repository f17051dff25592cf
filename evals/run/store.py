"""Runs and their results in SQLite; each result is written the moment it completes."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evals._util import Database
from evals.errors import EvalsError
from evals.types import ExampleResult

if TYPE_CHECKING:
    import pandas as pd

    from evals.providers.batch import BatchItem

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    n_samples INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    manifest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL REFERENCES runs(id),
    example_id TEXT NOT NULL,
    line INTEGER,
    input TEXT,
    reference TEXT,
    output TEXT,
    error TEXT,
    passed INTEGER NOT NULL,
    scores TEXT NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    latency_s REAL,
    cost_usd REAL,
    cached INTEGER,
    model_version TEXT,
    finish_reason TEXT,
    completed_at TEXT NOT NULL,
    PRIMARY KEY (run_id, example_id)
);
-- Added with `evals baseline` and `evals check`; IF NOT EXISTS makes older stores gain them on open.
CREATE TABLE IF NOT EXISTS baselines (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task TEXT NOT NULL,
    model TEXT NOT NULL,
    run_id TEXT NOT NULL REFERENCES runs(id),
    set_at TEXT NOT NULL,
    note TEXT
);
CREATE INDEX IF NOT EXISTS baselines_by_task_model ON baselines (task, model, id);
CREATE TABLE IF NOT EXISTS checks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task TEXT NOT NULL,
    model TEXT NOT NULL,
    run_id TEXT REFERENCES runs(id),
    baseline_run_id TEXT,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS checks_by_task ON checks (task, model, id);
-- `evals latency`: a model measured at several concurrencies; `decide` costs self-hosting from the newest.
CREATE TABLE IF NOT EXISTS latency_profiles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task TEXT NOT NULL,
    model TEXT NOT NULL,
    identity TEXT NOT NULL,
    hardware TEXT NOT NULL,
    created_at TEXT NOT NULL,
    levels TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS profiles_by_model ON latency_profiles (task, model, id);
-- `evals decide`: each verdict with its date and when it is due to be revisited.
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task TEXT NOT NULL,
    baseline_run_id TEXT NOT NULL,
    candidate_run_id TEXT NOT NULL,
    label TEXT NOT NULL,
    decided_on TEXT NOT NULL,
    revisit_on TEXT NOT NULL,
    verdict TEXT NOT NULL
);
-- Batch API runs (evals.providers.batch): each batch the moment it is created, its items, and each item's
-- result the moment it is fetched, so a killed run resumes by polling the same batches.
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    status TEXT NOT NULL,
    n_items INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE TABLE IF NOT EXISTS batch_items (
    batch_id TEXT NOT NULL REFERENCES batches(id),
    custom_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    example_id TEXT NOT NULL,
    request_key TEXT NOT NULL,
    result TEXT,
    error TEXT,
    PRIMARY KEY (batch_id, custom_id)
);
CREATE INDEX IF NOT EXISTS batch_items_by_run ON batch_items (run_id, request_key);
"""
# Columns added after the first release: an older store gains them (NULL in its old rows) when opened.
ADDED_COLUMNS = {
    "runs": {"busy_s": "REAL", "served_calls": "INTEGER", "concurrency": "INTEGER", "hardware": "TEXT"},
    "results": {"ttft_s": "REAL", "queue_s": "REAL", "cached_input_tokens": "INTEGER",
                "cache_write_tokens": "INTEGER"},
}
RESULT_COLUMNS = ("run_id", "example_id", "line", "input", "reference", "output", "error", "passed", "scores",
                  "input_tokens", "output_tokens", "latency_s", "cost_usd", "cached", "model_version",
                  "finish_reason", "completed_at", "ttft_s", "queue_s", "cached_input_tokens", "cache_write_tokens")
_INSERT_RESULT = (f"INSERT OR REPLACE INTO results ({', '.join(RESULT_COLUMNS)})"
                  f" VALUES ({', '.join('?' * len(RESULT_COLUMNS))})")


def default_store_path() -> Path:
    return Path(os.environ.get("EVALS_STORE", "reports/evals.db"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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


class Store:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_store_path()
        self._db = Database(self.path, "run store")
        self._db.executescript(SCHEMA)
        for table, columns in ADDED_COLUMNS.items():
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns.items():
                if name not in have:
                    try:
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
                    except sqlite3.OperationalError as e:  # another process opening the store added it first
                        if "duplicate column" not in str(e):
                            raise

    def close(self) -> None:
        self._db.close()

    def create_run(self, task: str, model: str, n_samples: int, manifest: dict[str, Any]) -> str:
        run_id = secrets.token_hex(4)
        self._db.execute(
            "INSERT INTO runs (id, task, model, status, n_samples, created_at, manifest) VALUES (?,?,?,?,?,?,?)",
            (run_id, task, model, "running", n_samples, _now(), json.dumps(manifest, sort_keys=True)),
        )
        return run_id

    def set_status(self, run_id: str, status: str) -> None:
        finished = _now() if status != "running" else None
        self._db.execute("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?", (status, finished, run_id))

    def add_result(self, run_id: str, r: ExampleResult) -> None:
        c = r.completion
        scores = {k: dataclasses.asdict(v) for k, v in r.scores.items()}
        self._db.execute(_INSERT_RESULT, (
            run_id, r.sample.id, r.sample.line,
            json.dumps(r.sample.fields, default=str), json.dumps(r.sample.reference, default=str),
            c.text, c.error, int(r.passed), json.dumps(scores, default=str),
            c.input_tokens, c.output_tokens, c.latency_s, c.cost_usd, int(c.cached),
            c.model_version, c.finish_reason, _now(), c.ttft_s, c.queue_s, c.cached_input_tokens,
            c.cache_write_tokens,
        ))

    def add_busy_time(self, run_id: str, busy_s: float, served_calls: int, concurrency: int, hardware: str) -> None:
        """Add one session's busy time and served calls to the run (a resumed run accumulates both)."""
        self._db.execute(
            "UPDATE runs SET busy_s = COALESCE(busy_s, 0) + ?, served_calls = COALESCE(served_calls, 0) + ?,"
            " concurrency = ?, hardware = ? WHERE id = ?", (busy_s, served_calls, concurrency, hardware, run_id))

    def done_ids(self, run_id: str) -> set[str]:
        """Examples finished without error (a resume skips these)."""
        rows = self._db.execute("SELECT example_id FROM results WHERE run_id = ? AND error IS NULL", (run_id,))
        return {r[0] for r in rows}

    def resolve(self, run_id: str) -> str:
        """A full run id from a unique prefix."""
        rows = self._db.execute("SELECT id FROM runs WHERE id LIKE ? || '%'", (run_id,)).fetchall()
        if len(rows) == 1:
            return rows[0][0]
        if not rows:
            raise EvalsError(f"no run '{run_id}' in {self.path} (see `evals runs`)")
        raise EvalsError(f"run id '{run_id}' is ambiguous: {', '.join(sorted(r[0] for r in rows))}")

    _RUN_QUERY = (
        "SELECT r.id, r.task, r.model, r.status, r.n_samples,"
        " COUNT(x.example_id), COALESCE(SUM(x.error IS NOT NULL), 0), r.created_at, r.finished_at, r.manifest,"
        " r.busy_s, r.served_calls, r.concurrency, r.hardware"
        " FROM runs r LEFT JOIN results x ON x.run_id = r.id"
    )

    @staticmethod
    def _record(row: tuple[Any, ...]) -> RunRecord:
        return RunRecord(*row[:9], json.loads(row[9]), *row[10:])

    def get_run(self, run_id: str) -> RunRecord:
        row = self._db.execute(self._RUN_QUERY + " WHERE r.id = ? GROUP BY r.id", (self.resolve(run_id),)).fetchone()
        return self._record(row)

    def list_runs(self, task: str | None = None, limit: int | None = 50, *, model: str | None = None,
                  completed: bool = False) -> list[RunRecord]:
        """Runs newest first, of a task and model if given, only completed ones if asked; all with limit=None."""
        where, args = [], []
        for clause, value in (("r.task = ?", task), ("r.model = ?", model), ("r.status = ?", "completed" if completed
                                                                             else None)):
            if value is not None:
                where.append(clause)
                args.append(value)
        rows = self._db.execute(
            self._RUN_QUERY + (" WHERE " + " AND ".join(where) if where else "")
            + " GROUP BY r.id ORDER BY r.created_at DESC, r.rowid DESC LIMIT ?", (*args, -1 if limit is None else limit),
        ).fetchall()
        return [self._record(row) for row in rows]

    # ---- batches (the BatchLedger of evals.providers.batch) ------------------------------------

    def add_batch(self, batch_id: str, provider: str, items: Sequence[BatchItem], status: str = "submitted") -> None:
        """A batch about to be submitted (status submitting, under its submission token) or just created, with
        every item, in one transaction."""
        with self._db.transaction():
            self._db.execute("INSERT INTO batches (id, provider, status, n_items, created_at) VALUES (?,?,?,?,?)",
                             (batch_id, provider, status, len(items), _now()))
            self._db.executemany(
                "INSERT INTO batch_items (batch_id, custom_id, run_id, example_id, request_key) VALUES (?,?,?,?,?)",
                [(batch_id, i.custom_id, i.run_id, i.example_id, i.request_key) for i in items])

    def end_batch(self, batch_id: str, status: str, results: Mapping[str, tuple[str | None, str | None]]) -> None:
        """A batch's results (custom_id -> completion JSON or error) and its final status, in one transaction."""
        with self._db.transaction():
            self._db.executemany("UPDATE batch_items SET result = ?, error = ? WHERE batch_id = ? AND custom_id = ?",
                                 [(r, e, batch_id, cid) for cid, (r, e) in results.items()])
            self._db.execute("UPDATE batches SET status = ?, ended_at = ? WHERE id = ?", (status, _now(), batch_id))

    def batch_created(self, token: str, batch_id: str) -> None:
        """The batch submitted under `token` was created as `batch_id`."""
        with self._db.transaction():
            self._db.execute("UPDATE batches SET id = ?, status = 'submitted' WHERE id = ?", (batch_id, token))
            self._db.execute("UPDATE batch_items SET batch_id = ? WHERE batch_id = ?", (batch_id, token))

    def open_batch_items(self, provider: str, run_id: str) -> list[BatchItem]:
        """The run's items that can still serve it: those of batches not yet ended (or being submitted when the
        run was killed), and those answered."""
        from evals.providers.batch import BatchItem
        rows = self._db.execute(
            "SELECT i.batch_id, i.custom_id, i.run_id, i.example_id, i.request_key, i.result FROM batch_items i"
            " JOIN batches b ON b.id = i.batch_id WHERE b.provider = ? AND i.run_id = ?"
            " AND (b.status IN ('submitting', 'submitted') OR i.result IS NOT NULL) ORDER BY b.rowid, i.rowid",
            (provider, run_id))
        return [BatchItem(*row) for row in rows]

    def batches_of(self, run_id: str) -> list[dict[str, Any]]:
        """The batches that served a run: id, provider, status, items, when created and ended."""
        rows = self._db.execute(
            "SELECT b.id, b.provider, b.status, COUNT(*), b.created_at, b.ended_at FROM batches b"
            " JOIN batch_items i ON i.batch_id = b.id WHERE i.run_id = ? GROUP BY b.id ORDER BY b.rowid",
            (run_id,))
        return [dict(zip(("id", "provider", "status", "items", "created_at", "ended_at"), row)) for row in rows]

    # ---- latency profiles and decisions --------------------------------------------------------

    def add_latency_profile(self, task: str, model: str, identity: str, hardware: str,
                            levels: list[dict[str, Any]]) -> LatencyProfile:
        cur = self._db.execute(
            "INSERT INTO latency_profiles (task, model, identity, hardware, created_at, levels) VALUES (?,?,?,?,?,?)",
            (task, model, identity, hardware, _now(), json.dumps(levels, sort_keys=True)))
        return self._profiles("WHERE id = ?", (cur.lastrowid,))[0]

    def latency_profile(self, task: str, model: str, identity: str | None = None) -> LatencyProfile | None:
        """The newest profile of this task's model (measured against the same server and adapter, if given)."""
        where, args = "WHERE task = ? AND model = ?", [task, model]
        if identity is not None:
            where += " AND identity = ?"
            args.append(identity)
        found = self._profiles(where + " ORDER BY id DESC LIMIT 1", tuple(args))
        return found[0] if found else None

    def _profiles(self, clause: str, args: tuple[Any, ...]) -> list[LatencyProfile]:
        rows = self._db.execute("SELECT id, task, model, identity, hardware, created_at, levels FROM latency_profiles "
                                + clause, args)
        return [LatencyProfile(*row[:6], levels=json.loads(row[6])) for row in rows]

    def add_decision(self, task: str, baseline_run_id: str, candidate_run_id: str, label: str, decided_on: str,
                     revisit_on: str, verdict: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO decisions (task, baseline_run_id, candidate_run_id, label, decided_on, revisit_on, verdict)"
            " VALUES (?,?,?,?,?,?,?)", (task, baseline_run_id, candidate_run_id, label, decided_on, revisit_on,
                                        json.dumps(verdict, sort_keys=True, default=str)))

    def latest_decision(self, task: str) -> DecisionRecord | None:
        row = self._db.execute(
            "SELECT id, task, baseline_run_id, candidate_run_id, label, decided_on, revisit_on FROM decisions"
            " WHERE task = ? ORDER BY id DESC LIMIT 1", (task,)).fetchone()
        return DecisionRecord(*row) if row else None

    # ---- baselines and checks -----------------------------------------------------------------

    def set_baseline(self, task: str, model: str, run_id: str, note: str | None = None) -> BaselineRecord:
        cur = self._db.execute("INSERT INTO baselines (task, model, run_id, set_at, note) VALUES (?,?,?,?,?)",
                               (task, model, run_id, _now(), note))
        return self._baselines("WHERE id = ?", (cur.lastrowid,))[0]

    def baselines(self, task: str | None = None, model: str | None = None, *,
                  current_only: bool = True) -> list[BaselineRecord]:
        """Baselines, newest first; by default only the current one of each task and model."""
        where, args = ["1=1"], []
        if task is not None:
            where.append("task = ?")
            args.append(task)
        if model is not None:
            where.append("model = ?")
            args.append(model)
        if current_only:
            where.append("id IN (SELECT MAX(id) FROM baselines GROUP BY task, model)")
        return self._baselines("WHERE " + " AND ".join(where) + " ORDER BY id DESC", tuple(args))

    def _baselines(self, clause: str, args: tuple[Any, ...]) -> list[BaselineRecord]:
        rows = self._db.execute("SELECT id, task, model, run_id, set_at, note FROM baselines " + clause, args)
        return [BaselineRecord(*row) for row in rows]

    def add_check(self, task: str, model: str, run_id: str | None, baseline_run_id: str | None, status: str,
                  outcome: dict[str, Any]) -> int:
        cur = self._db.execute(
            "INSERT INTO checks (task, model, run_id, baseline_run_id, created_at, status, outcome)"
            " VALUES (?,?,?,?,?,?,?)",
            (task, model, run_id, baseline_run_id, _now(), status, json.dumps(outcome, sort_keys=True, default=str)),
        )
        return int(cur.lastrowid)

    def checks(self, task: str, model: str | None = None, limit: int = 100) -> list[CheckRecord]:
        """The task's most recent checks (of one model, if given), oldest first."""
        where, args = ("task = ? AND model = ?", (task, model)) if model else ("task = ?", (task,))
        rows = self._db.execute(
            "SELECT id, task, model, run_id, baseline_run_id, created_at, status, outcome FROM checks"
            f" WHERE {where} ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [CheckRecord(*row[:7], outcome=json.loads(row[7])) for row in reversed(rows)]

    def results_frame(self, run_id: str) -> pd.DataFrame:
        """One row per example; each metric's value as column `score.<id>`."""
        import pandas as pd  # here, not at the top: a run starts without it

        run_id = self.resolve(run_id)
        df = pd.read_sql_query("SELECT * FROM results WHERE run_id = ? ORDER BY line, example_id",
                               self._db.connection, params=(run_id,))
        df["passed"] = df["passed"].astype(bool)
        df["cached"] = df["cached"].astype(bool)
        for col in ("queue_s", "cached_input_tokens", "cache_write_tokens"):  # NULL in rows from older versions
            df[col] = pd.to_numeric(df[col]).fillna(0)
        df["ttft_s"] = pd.to_numeric(df["ttft_s"])
        scores = df["scores"].map(json.loads)
        for metric_id in sorted({k for s in scores for k in s}):
            df[f"score.{metric_id}"] = scores.map(lambda s: (s.get(metric_id) or {}).get("value"))
        df["scores"] = scores
        for col in ("input", "reference"):
            df[col] = df[col].map(json.loads)
        return df


def load_run(run_id: str, store: str | Path | Store | None = None) -> pd.DataFrame:
    """A stored run as a pandas DataFrame; the run's manifest and record are in `df.attrs`."""
    s = store if isinstance(store, Store) else Store(store)
    df = s.results_frame(run_id)
    record = s.get_run(run_id)
    df.attrs["run"] = dataclasses.asdict(record)
    df.attrs["manifest"] = record.manifest
    return df
