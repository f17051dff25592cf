"""Runs and their results in SQLite or PostgreSQL (evals.run.postgres); each result is written the moment it
completes."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evals._util import Database, SQLiteDatabase, redact_secrets
from evals.errors import EvalsError
from evals.run import schema
from evals.run.owner import gone, live_status, this_process
from evals.run.records import BaselineRecord, CheckRecord, DecisionRecord, HumanLabel, LatencyProfile, RunRecord
from evals.types import ExampleResult, answer_shown

if TYPE_CHECKING:
    import pandas as pd

    from evals.providers.batch import BatchItem

def default_store_path() -> Path | str:
    return store_location(os.environ.get("EVALS_STORE") or "reports/evals.db")


def store_location(value: str | Path | None) -> Path | str:
    """Where a store is: a SQLite file's path, or a postgresql:// URL as given (its password included, to connect;
    show `Store.path`, which has none); $EVALS_STORE, or reports/evals.db, when not given."""
    from evals.run.postgres import is_url

    return default_store_path() if not value else str(value) if is_url(str(value)) else Path(value)


def open_database(location: Path | str, what: str, *, readonly: bool = False) -> Database:
    from evals.run.postgres import PostgresDatabase, is_url

    if is_url(location):
        return PostgresDatabase(str(location), what, readonly=readonly)
    return SQLiteDatabase(Path(location), what, readonly=readonly)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store:
    def __init__(self, path: str | Path | None = None, *, readonly: bool = False):
        """`readonly`: read an existing store as it is, never writing or upgrading it (an older one is refused)."""
        self.location = store_location(path)
        self._db = open_database(self.location, "run store", readonly=readonly)
        self.path = self._db.path  # as it may be shown: a server's URL without its password
        self.remote = self._db.dialect != "sqlite"  # each write a round trip to a server
        if readonly:
            schema.require_current(self._db)
            return
        schema.upgrade(self._db)
        self._settle_abandoned()

    def _settle_abandoned(self) -> None:
        """Runs left `running` by a process of this machine that has ended (killed, or crashed) become interrupted,
        so `--resume` can finish them and no run stays running forever."""
        rows = self._db.execute("SELECT id, owner FROM runs WHERE status = 'running' AND owner IS NOT NULL")
        for run_id, owner in rows.fetchall():
            if gone(owner):
                self._db.execute("UPDATE runs SET status = 'interrupted', finished_at = ? WHERE id = ? AND owner = ?"
                                 " AND status = 'running'", (_now(), run_id, owner))

    def has_table(self, name: str) -> bool:
        return name in self._db.tables()

    @property
    def connection(self) -> Any:  # the raw connection: SQL through it is in its backend's own dialect
        return self._db.connection

    def read_failure(self, e: Exception) -> Exception:
        """A database error met reading through `database` as one line naming the store (a StorageError)."""
        return self._db.failure("read", e)

    @property
    def database(self) -> Database:
        """The store's database, for the tables another module keeps (the optimisation ledger)."""
        return self._db

    def close(self) -> None:
        self._db.close()

    def reopen(self) -> None:
        """A new connection after `close` (one that crossed a fork() is never used: SQLite's rule)."""
        self._db = open_database(self.location, "run store")

    def create_run(self, task: str, model: str, n_samples: int, manifest: dict[str, Any], *,
                   run_id: str | None = None, owned: bool = True) -> str:
        """A new run, status running; `owned`: by this process (a sharded run is owned by none: its shards)."""
        run_id = run_id or secrets.token_hex(4)
        self._db.execute(
            "INSERT INTO runs (id, task, model, status, n_samples, created_at, manifest, owner) VALUES (?,?,?,?,?,?,?,?)",
            (run_id, task, model, "running", n_samples, _now(), json.dumps(manifest, sort_keys=True),
             this_process() if owned else None))
        return run_id

    def set_status(self, run_id: str, status: str) -> None:
        """`running` (this process takes the run on), or how it ended."""
        if status == "running":
            self._db.execute("UPDATE runs SET status = ?, finished_at = NULL, owner = ? WHERE id = ?",
                             (status, this_process(), run_id))
        else:
            self._db.execute("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?", (status, _now(), run_id))

    def add_result(self, run_id: str, r: ExampleResult) -> None:
        c = r.completion
        scores = {k: v.as_dict() for k, v in r.scores.items()}
        self._db.execute(schema.INSERT_RESULT, (
            run_id, r.sample.id, r.sample.line,
            json.dumps(r.sample.fields, default=str), json.dumps(r.sample.reference, default=str),
            c.text, c.error, int(r.passed), json.dumps(scores, default=str),
            c.input_tokens, c.output_tokens, c.latency_s, c.cost_usd, int(c.cached),
            c.model_version, c.finish_reason, _now(), c.ttft_s, c.queue_s, c.cached_input_tokens,
            c.cache_write_tokens, c.mean_logprob, r.attempt,
            json.dumps([t.as_dict() for t in c.tool_calls], default=str) if c.tool_calls else None,
        ))

    def add_busy_time(self, run_id: str, busy_s: float, served_calls: int, concurrency: int, hardware: str) -> None:
        """Add one session's busy time and served calls to the run (a resumed run accumulates both)."""
        self._db.execute(
            "UPDATE runs SET busy_s = COALESCE(busy_s, 0) + ?, served_calls = COALESCE(served_calls, 0) + ?,"
            " concurrency = ?, hardware = ? WHERE id = ?", (busy_s, served_calls, concurrency, hardware, run_id))

    def done(self, run_id: str) -> set[tuple[str, int]]:
        """(example id, attempt) of the attempts finished without error (a resume skips these)."""
        rows = self._db.rows("SELECT example_id, attempt FROM results WHERE run_id = ? AND error IS NULL", (run_id,))
        return {(r[0], r[1]) for r in rows}

    def resolve(self, run_id: str) -> str:
        """A full run id from a unique prefix."""
        rows = self._db.rows("SELECT id FROM runs WHERE id LIKE ? || '%'", (run_id,))
        if len(rows) == 1:
            return rows[0][0]
        if not rows:
            raise EvalsError(f"no run '{run_id}' in {self.path} (see `evals runs`)")
        raise EvalsError(f"run id '{run_id}' is ambiguous: {', '.join(sorted(r[0] for r in rows))}")

    _RUN_QUERY = (
        "SELECT r.id, r.task, r.model, r.status, r.n_samples,"
        " COUNT(x.example_id), COUNT(x.error), r.created_at, r.finished_at, r.manifest,"
        " r.busy_s, r.served_calls, r.concurrency, r.hardware, r.owner"
        " FROM runs r LEFT JOIN results x ON x.run_id = r.id"
    )

    @staticmethod
    def _record(row: tuple[Any, ...]) -> RunRecord:
        manifest = json.loads(row[9])
        model = manifest.get("model")
        if isinstance(model, dict):  # as this version writes it (an older one stored a base URL's query in clear)
            manifest["model"] = {k: redact_secrets(v) if k in ("base_url", "options") else v for k, v in model.items()}
        record = RunRecord(*row[:9], manifest, *row[10:])
        return dataclasses.replace(record, status=live_status(record.status, record.owner))  # read-only: not settled

    def get_run(self, run_id: str) -> RunRecord:
        [row] = self._db.rows(self._RUN_QUERY + " WHERE r.id = ? GROUP BY r.id", (self.resolve(run_id),))
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
        rows = self._db.rows(
            self._RUN_QUERY + (" WHERE " + " AND ".join(where) if where else "")
            + " GROUP BY r.id ORDER BY r.created_at DESC, r.rowid DESC" + (" LIMIT ?" if limit is not None else ""),
            (*args, *([limit] if limit is not None else [])))
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
        rows = self._db.rows(
            "SELECT i.batch_id, i.custom_id, i.run_id, i.example_id, i.request_key, i.result FROM batch_items i"
            " JOIN batches b ON b.id = i.batch_id WHERE b.provider = ? AND i.run_id = ?"
            " AND (b.status IN ('submitting', 'submitted') OR i.result IS NOT NULL) ORDER BY b.rowid, i.rowid",
            (provider, run_id))
        return [BatchItem(*row) for row in rows]

    def batches_of(self, run_id: str) -> list[dict[str, Any]]:
        """The batches that served a run: id, provider, status, items, when created and ended."""
        rows = self._db.rows(
            "SELECT b.id, b.provider, b.status, COUNT(*), b.created_at, b.ended_at FROM batches b"
            " JOIN batch_items i ON i.batch_id = b.id WHERE i.run_id = ? GROUP BY b.id ORDER BY b.rowid",
            (run_id,))
        return [dict(zip(("id", "provider", "status", "items", "created_at", "ended_at"), row)) for row in rows]

    # ---- latency profiles and decisions --------------------------------------------------------

    def add_latency_profile(self, task: str, model: str, identity: str, hardware: str,
                            levels: list[dict[str, Any]]) -> LatencyProfile:
        new = self._db.insert(
            "INSERT INTO latency_profiles (task, model, identity, hardware, created_at, levels) VALUES (?,?,?,?,?,?)",
            (task, model, identity, hardware, _now(), json.dumps(levels, sort_keys=True)))
        return self._profiles("WHERE id = ?", (new,))[0]

    def latency_profile(self, task: str, model: str, identity: str | None = None) -> LatencyProfile | None:
        """The newest profile of this task's model (measured against the same server and adapter, if given)."""
        where, args = "WHERE task = ? AND model = ?", [task, model]
        if identity is not None:
            where += " AND identity = ?"
            args.append(identity)
        found = self._profiles(where + " ORDER BY id DESC LIMIT 1", tuple(args))
        return found[0] if found else None

    def _profiles(self, clause: str, args: tuple[Any, ...]) -> list[LatencyProfile]:
        rows = self._db.rows("SELECT id, task, model, identity, hardware, created_at, levels FROM latency_profiles "
                             + clause, args)
        return [LatencyProfile(*row[:6], levels=json.loads(row[6])) for row in rows]

    def add_decision(self, task: str, baseline_run_id: str, candidate_run_id: str, label: str, decided_on: str,
                     revisit_on: str, verdict: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO decisions (task, baseline_run_id, candidate_run_id, label, decided_on, revisit_on, verdict)"
            " VALUES (?,?,?,?,?,?,?)", (task, baseline_run_id, candidate_run_id, label, decided_on, revisit_on,
                                        json.dumps(verdict, sort_keys=True, default=str)))

    def latest_decision(self, task: str) -> DecisionRecord | None:
        rows = self._db.rows(
            "SELECT id, task, baseline_run_id, candidate_run_id, label, decided_on, revisit_on FROM decisions"
            " WHERE task = ? ORDER BY id DESC LIMIT 1", (task,))
        return DecisionRecord(*rows[0]) if rows else None

    def add_route(self, task: str, cheap_run_id: str, strong_run_id: str, signal: str, routing: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO routes (task, cheap_run_id, strong_run_id, signal, created_at, routing) VALUES (?,?,?,?,?,?)",
            (task, cheap_run_id, strong_run_id, signal, _now(), json.dumps(routing, sort_keys=True, default=str)))

    def routes(self, run_a: str, run_b: str) -> list[dict[str, Any]]:
        """Every stored routing result between these two runs (either one the cheap side), newest first."""
        rows = self._db.rows(
            "SELECT routing FROM routes WHERE (cheap_run_id = ? AND strong_run_id = ?) OR (cheap_run_id = ? AND "
            "strong_run_id = ?) ORDER BY id DESC", (run_a, run_b, run_b, run_a))
        return [json.loads(row[0]) for row in rows]

    # ---- baselines and checks -----------------------------------------------------------------

    def set_baseline(self, task: str, model: str, run_id: str, note: str | None = None) -> BaselineRecord:
        new = self._db.insert("INSERT INTO baselines (task, model, run_id, set_at, note) VALUES (?,?,?,?,?)",
                              (task, model, run_id, _now(), note))
        return self._baselines("WHERE id = ?", (new,))[0]

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
        rows = self._db.rows("SELECT id, task, model, run_id, set_at, note FROM baselines " + clause, args)
        return [BaselineRecord(*row) for row in rows]

    def add_check(self, task: str, model: str, run_id: str | None, baseline_run_id: str | None, status: str,
                  outcome: dict[str, Any]) -> int:
        return self._db.insert(
            "INSERT INTO checks (task, model, run_id, baseline_run_id, created_at, status, outcome)"
            " VALUES (?,?,?,?,?,?,?)",
            (task, model, run_id, baseline_run_id, _now(), status, json.dumps(outcome, sort_keys=True, default=str)),
        )

    def checks(self, task: str, model: str | None = None, limit: int = 100) -> list[CheckRecord]:
        """The task's most recent checks (of one model, if given), oldest first."""
        where, args = ("task = ? AND model = ?", (task, model)) if model else ("task = ?", (task,))
        rows = self._db.rows(
            "SELECT id, task, model, run_id, baseline_run_id, created_at, status, outcome FROM checks"
            f" WHERE {where} ORDER BY id DESC LIMIT ?", (*args, limit))
        return [CheckRecord(*row[:7], outcome=json.loads(row[7])) for row in reversed(rows)]

    # ---- human labels ------------------------------------------------------------------------------

    def add_label(self, run_id: str, example_id: str, label: str, comment: str | None = None,
                  attempt: int = 1) -> HumanLabel:
        if label not in ("right", "wrong"):
            raise EvalsError(f"a label is 'right' or 'wrong', not '{label}'", field="label")
        new = self._db.insert(
            "INSERT INTO human_labels (run_id, example_id, attempt, label, comment, labelled_at) VALUES (?,?,?,?,?,?)",
            (run_id, example_id, attempt, label, comment or None, _now()))
        return self._labels("WHERE id = ?", (new,))[0]

    def labels(self, run_id: str | None = None, example_id: str | None = None) -> list[HumanLabel]:
        """The current label of every labelled attempt (of a run, of one example), oldest first."""
        if not self.has_table("human_labels"):  # a store no one has labelled yet, opened read-only
            return []
        # COALESCE: a store opened read-only is never upgraded, and its older labels' NULL attempt is attempt 1
        current = "id IN (SELECT MAX(id) FROM human_labels GROUP BY run_id, example_id, COALESCE(attempt, 1))"
        where, args = [current], []
        for clause, value in (("run_id = ?", run_id), ("example_id = ?", example_id)):
            if value is not None:
                where.append(clause)
                args.append(value)
        return self._labels("WHERE " + " AND ".join(where) + " ORDER BY id", tuple(args))

    def _labels(self, clause: str, args: tuple[Any, ...]) -> list[HumanLabel]:
        rows = self._db.rows("SELECT id, run_id, example_id, COALESCE(attempt, 1), label, comment, labelled_at"
                             " FROM human_labels " + clause, args)
        return [HumanLabel(*row) for row in rows]

    TEXT_COLUMNS = ("input", "reference", "output")

    def outputs(self, run_id: str, keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
        """Output (its function calls after its text: `answer_shown`), error, match and metric values ({metric id:
        value}) of these (example id, attempt) results only: what a page of examples shows."""
        keys, out = list(keys), {}
        for i in range(0, len(keys), 400):
            chunk = keys[i:i + 400]
            rows = self._db.rows(
                "SELECT example_id, attempt, output, error, passed, scores, tool_calls FROM results WHERE run_id = ?"
                f" AND (example_id, attempt) IN (VALUES {', '.join('(?, ?)' for _ in chunk)})",
                (run_id, *(v for k in chunk for v in k)))
            out.update({(e, a): {"output": answer_shown(o, _calls(t)), "error": err,
                                 "passed": bool(p), "scores": {m: (v or {}).get("value") for m, v in
                                                               json.loads(s).items()}}
                        for e, a, o, err, p, s, t in rows})
        return out

    SUMMARY_COLUMNS = ("example_id", "attempt", "error", "passed", "scores", "cached", "input_tokens",
                       "output_tokens", "cost_usd", "latency_s", "ttft_s", "queue_s", "cached_input_tokens",
                       "cache_write_tokens")

    def result_rows(self, run_id: str) -> Iterator[dict[str, Any]]:
        """A run's results without their texts, one dict at a time as SQLite reads them (a summary's stream), in
        the order of `results_frame`; scores decoded, `passed` and `cached` as bools."""
        rows = self._db.execute(f"SELECT {', '.join(self.SUMMARY_COLUMNS)} FROM results WHERE run_id = ?"
                                " ORDER BY attempt, line, example_id", (self.resolve(run_id),))
        with self._db.reading():
            for values in rows:
                row = dict(zip(self.SUMMARY_COLUMNS, values))
                row["scores"], row["passed"], row["cached"] = json.loads(row["scores"]), bool(row["passed"]), \
                    bool(row["cached"])
                yield row

    def results_frame(self, run_id: str, *, texts: bool | Sequence[str] = True) -> pd.DataFrame:
        """One row per example; each metric's value as column `score.<id>`. `texts`: the input, reference and
        output (True), none of them (False: read in a fraction of the time), or those named (a comparison reads
        only the outputs)."""
        import pandas as pd  # here, not at the top: a run starts without it

        run_id = self.resolve(run_id)
        texts = self.TEXT_COLUMNS if texts is True else () if texts is False else tuple(texts)
        wanted = {*texts, *(("tool_calls",) if "output" in texts else ())}  # the answer's calls go with its text
        columns = [c for c in self._db.columns("results") if c not in (*self.TEXT_COLUMNS, "tool_calls") or c in wanted]
        rows = self._db.rows(f"SELECT {', '.join(columns)} FROM results WHERE run_id = ?"
                             " ORDER BY attempt, line, example_id", (run_id,))
        df = pd.DataFrame.from_records(rows, columns=columns, coerce_float=True)
        df["passed"] = df["passed"].astype(bool)
        df["cached"] = df["cached"].astype(bool)
        for col in ("queue_s", "cached_input_tokens", "cache_write_tokens"):  # NULL in rows from older versions
            df[col] = pd.to_numeric(df[col]).fillna(0)
        for col in ("ttft_s", "mean_logprob"):  # NULL where not measured
            df[col] = pd.to_numeric(df[col])
        scores = [json.loads(s) for s in df["scores"].tolist()]  # a list, not the Series: its iterator is slow
        columns = {f"score.{m}": [(s.get(m) or {}).get("value") for s in scores]
                   for m in sorted({k for s in scores for k in s})}
        df = df.assign(scores=pd.Series(scores, index=df.index, dtype=object),
                       **{k: pd.Series(v, index=df.index) for k, v in columns.items()})
        if "tool_calls" in df:
            df["tool_calls"] = [_calls(v) for v in df["tool_calls"].tolist()]
        for col in {"input", "reference"} & set(texts):
            df[col] = [json.loads(v) for v in df[col].tolist()]
        return df


def _calls(value: Any) -> list[Any]:
    """A result's stored calls (JSON text; NULL, read as None or NaN, where it made none)."""
    if not isinstance(value, str):
        return []
    try:
        calls = json.loads(value)
    except ValueError:
        return []
    return calls if isinstance(calls, list) else []


def load_run(run_id: str, store: str | Path | Store | None = None, *,
             texts: bool | Sequence[str] = True) -> pd.DataFrame:
    """A stored run as a pandas DataFrame (with the text columns `texts` names, all by default); the run's
    manifest and record are in `df.attrs`."""
    s = store if isinstance(store, Store) else Store(store)
    df = s.results_frame(run_id, texts=texts)
    record = s.get_run(run_id)
    df.attrs["run"] = dataclasses.asdict(record)
    df.attrs["manifest"] = record.manifest
    return df
