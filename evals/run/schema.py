"""The run store's tables, and how a store written by an older version is brought up to date when opened."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable

from evals._util import Database
from evals.errors import EvalsError

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
    ttft_s REAL,
    queue_s REAL,
    cached_input_tokens INTEGER,
    cache_write_tokens INTEGER,
    mean_logprob REAL,
    attempt INTEGER NOT NULL DEFAULT 1,
    tool_calls TEXT,
    PRIMARY KEY (run_id, example_id, attempt)
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
-- `evals route`: each routing result of a cheap and a strong run; `decide` mentions a hybrid that beats both.
CREATE TABLE IF NOT EXISTS routes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task TEXT NOT NULL,
    cheap_run_id TEXT NOT NULL,
    strong_run_id TEXT NOT NULL,
    signal TEXT NOT NULL,
    created_at TEXT NOT NULL,
    routing TEXT NOT NULL
);
-- `evals view`: a reviewer's verdict on one attempt's answer; model results are never changed.
CREATE TABLE IF NOT EXISTS human_labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id),
    example_id TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    label TEXT NOT NULL CHECK (label IN ('right', 'wrong')),
    comment TEXT,
    labelled_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS labels_by_example ON human_labels (run_id, example_id, attempt, id);
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
-- `evals run --shard I/N --run-group NAME` (evals.run.shards): the run each group's shards share, per model, and
-- each shard's report; the run is settled by the shard whose report is the last one.
CREATE TABLE IF NOT EXISTS run_groups (
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    run_id TEXT NOT NULL REFERENCES runs(id),
    shards INTEGER NOT NULL,
    PRIMARY KEY (name, model)
);
CREATE TABLE IF NOT EXISTS run_shards (
    run_id TEXT NOT NULL REFERENCES runs(id),
    shard INTEGER NOT NULL,
    status TEXT NOT NULL,
    reported_at TEXT NOT NULL,
    PRIMARY KEY (run_id, shard)
);
-- `evals optimize` (evals.run.optimize.ledger): a prompt search on a task's train split, the stored run of each
-- candidate on each split (search, dev, golden), and the proposer's answers, so a killed search resumes unpaid.
CREATE TABLE IF NOT EXISTS optimizations (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    model TEXT NOT NULL,
    key TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    settings TEXT NOT NULL,
    result TEXT
);
CREATE INDEX IF NOT EXISTS optimizations_by_key ON optimizations (key, created_at);
CREATE TABLE IF NOT EXISTS optimization_runs (
    optimization_id TEXT NOT NULL REFERENCES optimizations(id),
    candidate TEXT NOT NULL,
    split TEXT NOT NULL,
    run_id TEXT NOT NULL REFERENCES runs(id),
    PRIMARY KEY (optimization_id, candidate, split)
);
CREATE TABLE IF NOT EXISTS optimization_proposals (
    optimization_id TEXT NOT NULL REFERENCES optimizations(id),
    request TEXT NOT NULL,
    answer TEXT NOT NULL,
    PRIMARY KEY (optimization_id, request)
);
"""
# Tables a store must have to be read without upgrading it (human_labels comes with the first label).
REQUIRED_TABLES = ("runs", "results", "baselines", "checks", "latency_profiles", "decisions", "routes", "batches",
                   "batch_items")
# Columns added after the first release: an older store gains them (NULL in its old rows) when opened.
ADDED_COLUMNS = {
    "runs": {"busy_s": "REAL", "served_calls": "INTEGER", "concurrency": "INTEGER", "hardware": "TEXT",
             "owner": "TEXT"},  # owner: the process running it (evals.run.owner), while it is running
    "results": {"ttft_s": "REAL", "queue_s": "REAL", "cached_input_tokens": "INTEGER",
                "cache_write_tokens": "INTEGER", "mean_logprob": "REAL",
                "tool_calls": "TEXT"},  # the answer's function calls as JSON; NULL: none
}
RESULT_COLUMNS = ("run_id", "example_id", "line", "input", "reference", "output", "error", "passed", "scores",
                  "input_tokens", "output_tokens", "latency_s", "cost_usd", "cached", "model_version",
                  "finish_reason", "completed_at", "ttft_s", "queue_s", "cached_input_tokens", "cache_write_tokens",
                  "mean_logprob", "attempt", "tool_calls")
INDEX = re.compile(r"CREATE INDEX IF NOT EXISTS (\w+) ON (\w+) \([^)]*\)")
INSERT_RESULT = (f"INSERT OR REPLACE INTO results ({', '.join(RESULT_COLUMNS)})"
                  f" VALUES ({', '.join('?' * len(RESULT_COLUMNS))})")


# The layout's version, kept in the store: one written by a newer evals (a higher number) is refused, not misread.
VERSION = 1


def columns(db: Database, table: str) -> set[str]:
    return set(db.columns(table))


def require_known(db: Database) -> None:
    """Refuse a store whose layout a newer evals wrote: this version would misread or damage it."""
    found = db.schema_version()
    if found > VERSION:
        raise EvalsError(f"written by a newer evals version (store layout {found}; this one knows up to {VERSION}):"
                         " upgrade evals to use it", file=db.path)


def upgrade(db: Database) -> None:
    """Create what is missing: tables, columns added since the first release, results and labels keyed by
    attempt; then record the layout's version."""
    require_known(db)
    with db.upgrading():
        _upgrade(db)
        if db.schema_version() < VERSION:
            db.set_schema_version(VERSION)


def _upgrade(db: Database) -> None:
    db.executescript(SCHEMA)
    for table, added in ADDED_COLUMNS.items():
        have = columns(db, table)
        for name, kind in added.items():
            if name not in have:
                try:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
                except sqlite3.OperationalError as e:  # another process opening the store added it first
                    if "duplicate column" not in str(e):
                        raise
    if db.dialect != "sqlite":  # the rebuilds below are of SQLite stores older than the other backends
        return
    # A store from before repeats keys results by (run, example): each old result is its example's attempt 1.
    old = [c for c in RESULT_COLUMNS if c != "attempt"]
    _rebuild(db, "results", lambda: "attempt" not in columns(db, "results"), {**{c: c for c in old}, "attempt": "1"})
    # Labels from before they were keyed by attempt (attempt NULL where the run had no repeats) judged attempt 1.
    label_columns = ("id", "run_id", "example_id", "attempt", "label", "comment", "labelled_at")
    _rebuild(db, "human_labels", lambda: not _not_null(db, "human_labels", "attempt"),
             {c: "COALESCE(attempt, 1)" if c == "attempt" else c for c in label_columns})


def _not_null(db: Database, table: str, column: str) -> bool:
    return any(row[1] == column and row[3] for row in db.rows(f"PRAGMA table_info({table})"))


def _rebuild(db: Database, table: str, stale: Callable[[], bool], values: dict[str, str]) -> None:
    """While `stale()`, recreate `table` as SCHEMA defines it, in one transaction: its rows copied (`values`: each
    new column's value in SQL over the old row) and its indexes made again."""
    if not stale():
        return
    create = SCHEMA[SCHEMA.index(f"CREATE TABLE IF NOT EXISTS {table} ("):]
    create = create[:create.index(");") + 2].replace(f"IF NOT EXISTS {table} (", f"{table}_rebuilt (")
    db.execute("BEGIN IMMEDIATE")
    try:
        if stale():  # not rebuilt meanwhile by another process
            db.execute(create)
            db.execute(f"INSERT INTO {table}_rebuilt ({', '.join(values)}) SELECT {', '.join(values.values())}"
                       f" FROM {table}")
            db.execute(f"DROP TABLE {table}")
            db.execute(f"ALTER TABLE {table}_rebuilt RENAME TO {table}")
            for index in INDEX.finditer(SCHEMA):
                if index[2] == table:
                    db.execute(index[0])
        db.execute("COMMIT")
    except BaseException:
        db.connection.rollback()
        raise


def require_current(db: Database) -> None:
    """A store opened read-only must already be current: it is never upgraded then."""
    require_known(db)
    tables = db.tables()
    if not {"runs", "results"} <= tables:
        raise EvalsError("not an evals run store (it has no runs table)", file=db.path)
    missing = [t for t in REQUIRED_TABLES if t not in tables] + [
        f"{table}.{c}" for table, added in ADDED_COLUMNS.items() for c in added if c not in columns(db, table)]
    if "attempt" not in columns(db, "results"):  # added by rebuilding the table (see upgrade)
        missing.append("results.attempt")
    if missing:
        raise EvalsError(f"written by an older evals version (it lacks {', '.join(missing)}); upgrade it once "
                         f"with `evals runs --store {db.path}` (or a copy of it), then open it again", file=db.path)
