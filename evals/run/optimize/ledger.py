"""An optimisation in the run store: its settings, the stored run of each candidate on each part, the
proposer's answers and, once finished, its result.

Its `key` is what its evaluations depend on: the task, the model's settings, the split, the metrics and pass
rule, and the seed prompt (not --max-calls, --shots, --proposer or --budget). The same command finds an
unfinished optimisation with its key again and resumes it; and any optimisation reuses the search and dev
evaluations and the proposals stored by another with the same key, so nothing stored is paid for twice."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from evals.run.store import Store


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class OptimizationRecord:
    id: str
    task: str
    model: str
    status: str  # searching, completed
    created_at: str
    finished_at: str | None
    settings: dict[str, Any]
    result: dict[str, Any] | None


def settings_key(task: str, model: str, settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([task, model, settings], sort_keys=True, default=str).encode()).hexdigest()[:24]


class Ledger:
    """One optimisation's rows in the store."""

    def __init__(self, store: Store, optimization_id: str):
        self.store, self.id = store, optimization_id
        self._db = store.database

    @classmethod
    def open(cls, store: Store, task: str, model: str, scope: dict[str, Any],
             settings: dict[str, Any]) -> tuple[Ledger, bool]:
        """The unfinished optimisation of this scope (what its evaluations depend on: resumed, True), else a new
        one recording `settings`."""
        key = settings_key(task, model, scope)
        row = store.database.execute("SELECT id FROM optimizations WHERE key = ? AND status != 'completed' "
                                     "ORDER BY created_at DESC LIMIT 1", (key,)).fetchone()
        if row:
            return cls(store, row[0]), True
        optimization_id = secrets.token_hex(4)
        store.database.execute(
            "INSERT INTO optimizations (id, task, model, key, status, created_at, settings) VALUES (?,?,?,?,?,?,?)",
            (optimization_id, task, model, key, "searching", _now(), json.dumps(settings, sort_keys=True)))
        return cls(store, optimization_id), False

    def run_for(self, candidate: str, split: str) -> str | None:
        """This optimisation's run of the candidate on the part; for search and dev, else one another optimisation
        with the same key stored (then adopted as this one's too)."""
        row = self._db.execute("SELECT run_id FROM optimization_runs WHERE optimization_id = ? AND candidate = ? "
                               "AND split = ?", (self.id, candidate, split)).fetchone()
        if row or split == "golden":  # a golden run belongs to its optimisation (the golden set may have changed)
            return row[0] if row else None
        row = self._db.execute(
            "SELECT o.run_id FROM optimization_runs o JOIN optimizations p ON p.id = o.optimization_id WHERE "
            "p.key = (SELECT key FROM optimizations WHERE id = ?) AND o.candidate = ? AND o.split = ? "
            "ORDER BY p.created_at DESC LIMIT 1", (self.id, candidate, split)).fetchone()
        if row:
            self.add_run(candidate, split, row[0])
        return row[0] if row else None

    def add_run(self, candidate: str, split: str, run_id: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO optimization_runs (optimization_id, candidate, split, run_id) "
                         "VALUES (?,?,?,?)", (self.id, candidate, split, run_id))

    def runs(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT run_id FROM optimization_runs WHERE optimization_id = ?",
                                               (self.id,))]

    def proposal(self, request: str) -> str | None:
        """The stored answer to this proposer request, from this optimisation or another with the same key."""
        row = self._db.execute(
            "SELECT q.answer, q.optimization_id FROM optimization_proposals q JOIN optimizations p ON "
            "p.id = q.optimization_id WHERE p.key = (SELECT key FROM optimizations WHERE id = ?) AND q.request = ? "
            "ORDER BY q.optimization_id = ? DESC LIMIT 1", (self.id, _digest(request), self.id)).fetchone()
        if row and row[1] != self.id:
            self.add_proposal(request, row[0])
        return row[0] if row else None

    def add_proposal(self, request: str, answer: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO optimization_proposals (optimization_id, request, answer) "
                         "VALUES (?,?,?)", (self.id, _digest(request), answer))

    def calls_made(self, search_splits: tuple[str, ...] = ("search", "dev")) -> int:
        """Model calls the search has made so far, every session of it: stored results of its search and dev
        runs, and the proposer's answers."""
        marks = ",".join("?" * len(search_splits))
        results = self._db.execute(
            "SELECT COUNT(*) FROM results WHERE run_id IN (SELECT run_id FROM optimization_runs WHERE "
            f"optimization_id = ? AND split IN ({marks}))", (self.id, *search_splits)).fetchone()[0]
        proposals = self._db.execute("SELECT COUNT(*) FROM optimization_proposals WHERE optimization_id = ?",
                                     (self.id,)).fetchone()[0]
        return int(results) + int(proposals)

    def finish(self, result: dict[str, Any]) -> None:
        self._db.execute("UPDATE optimizations SET status = 'completed', finished_at = ?, result = ? WHERE id = ?",
                         (_now(), json.dumps(result, sort_keys=True, default=str), self.id))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _record(row: tuple[Any, ...]) -> OptimizationRecord:
    rid, task, model, status, created, finished, settings, result = row
    return OptimizationRecord(rid, task, model, status, created, finished, json.loads(settings),
                              json.loads(result) if result else None)


def optimizations(store: Store, task: str | None = None, model: str | None = None) -> list[OptimizationRecord]:
    """Finished optimisations, newest first (of a task, and a model)."""
    if not store.has_table("optimizations"):  # a read-only store from before optimize
        return []
    clause, args = "status = 'completed'", []
    for column, value in (("task", task), ("model", model)):
        if value is not None:
            clause += f" AND {column} = ?"
            args.append(value)
    rows = store.database.execute("SELECT id, task, model, status, created_at, finished_at, settings, result FROM "
                                  f"optimizations WHERE {clause} ORDER BY finished_at DESC", tuple(args))
    return [_record(r) for r in rows]
