"""The viewer's reads of the store, in SQL over its read-only connection: the runs list, a page of examples
with filters, one example's attempts, two runs' examples by outcome. Paging reads only the rows shown."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from evals.analyse.rates import format_rate
from evals.run.owner import live_status
from evals.run.store import Store

PAGE_SIZE = 50
PREVIEW_CHARS = 160
REPEATS = "COALESCE(CAST(json_extract(r.manifest, '$.repeats') AS INTEGER), 1)"
ATTEMPTS = f"(r.n_samples * {REPEATS})"
# In SQL both backends take: no output alias inside an expression, no two-argument MAX (PostgreSQL has neither).
RUN_SORTS = {"created": "r.created_at", "task": "r.task", "model": "r.model", "status": "r.status",
             "matches": f"1.0 * COALESCE(SUM(x.passed), 0) / (CASE WHEN {ATTEMPTS} > 1 THEN {ATTEMPTS} ELSE 1 END)",
             "cost": "cost", "errors": "errors"}


@dataclass(frozen=True)
class RunRow:
    id: str
    task: str
    model: str
    status: str
    n_samples: int
    done: int
    matches: int
    errors: int
    cost_usd: float
    created_at: str
    repeats: int = 1

    @property
    def matches_text(self) -> str:
        """As `evals show` prints it: successes over the run's examples with the Wilson interval; with repeats,
        passing attempts (their interval, clustered by example, is on the run's page)."""
        if self.repeats > 1:
            total = self.n_samples * self.repeats
            return f"{self.matches}/{total} attempts ({self.matches / max(total, 1):.0%})"
        return format_rate(self.matches, self.n_samples)


def list_runs(store: Store, *, task: str = "", model: str = "", status: str = "", sort: str = "created",
              descending: bool = True) -> list[RunRow]:
    where, args = [], []
    for column, value in (("r.task", task), ("r.model", model)):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    order = RUN_SORTS.get(sort, RUN_SORTS["created"])
    rows = store.database.execute(
        "SELECT r.id, r.task, r.model, r.status, r.n_samples, COUNT(x.example_id),"
        " COALESCE(SUM(x.passed), 0) AS matches, COUNT(x.error) AS errors,"
        " COALESCE(SUM(x.cost_usd), 0.0) AS cost, r.created_at,"
        f" {REPEATS} AS repeats, r.owner"
        " FROM runs r LEFT JOIN results x ON x.run_id = r.id" + (" WHERE " + " AND ".join(where) if where else "")
        + f" GROUP BY r.id ORDER BY {order} {'DESC' if descending else 'ASC'}, r.rowid DESC", args).fetchall()
    runs = [RunRow(*row[:3], live_status(row[3], row[-1]), *row[4:-1]) for row in rows]  # a run whose process is gone
    return [r for r in runs if r.status == status] if status else runs


def distinct_values(store: Store) -> dict[str, list[str]]:
    """Every task, model and status in the store (the runs list's filter choices)."""
    return {column: [r[0] for r in store.database.execute(f"SELECT DISTINCT {column} FROM runs ORDER BY 1")]
            for column in ("task", "model", "status")}


def run_state(store: Store, run_id: str) -> tuple[Any, ...]:
    """Changes whenever the run gains a result or a status: what a cached summary of it is keyed by."""
    return store.database.execute(
        "SELECT r.status, r.finished_at, COUNT(x.example_id), MAX(x.completed_at) FROM runs r"
        " LEFT JOIN results x ON x.run_id = r.id WHERE r.id = ? GROUP BY r.id", (run_id,)).fetchone()


def repeated(store: Store, run_id: str) -> bool:
    """Whether the run asked each example several times (its manifest's `repeats`)."""
    row = store.database.execute(
        "SELECT COALESCE(CAST(json_extract(manifest, '$.repeats') AS INTEGER), 1) FROM runs WHERE id = ?",
        (run_id,)).fetchone()
    return bool(row) and int(row[0]) > 1


@dataclass(frozen=True)
class ExampleFilter:
    failures: bool = False
    errors: bool = False
    metric: str = ""  # with `below`: this metric's value under it
    below: float | None = None
    search: str = ""  # in the input or the output

    def sql(self) -> tuple[str, list[Any]]:
        where, args = [], []
        if self.failures:
            where.append("passed = 0")
        if self.errors:
            where.append("error IS NOT NULL")
        if self.metric and self.below is not None:
            where.append("CAST(json_extract(scores, ?) AS REAL) < ?")
            args += [f'$."{self.metric}".value', self.below]
        if self.search:
            like = "%" + _like_escape(self.search) + "%"
            as_json = "%" + _like_escape(json.dumps(self.search)[1:-1]) + "%"  # inputs are stored as JSON text
            where.append("(input LIKE ? ESCAPE '\\' OR input LIKE ? ESCAPE '\\' OR output LIKE ? ESCAPE '\\'"
                         " OR example_id LIKE ? ESCAPE '\\')")
            args += [like, as_json, like, like]
        return "".join(f" AND {w}" for w in where), args


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class ExampleRow:
    example_id: str
    attempt: int | None
    line: int | None
    passed: bool
    error: str | None
    preview: str
    scores: dict[str, float | None]
    latency_s: float | None
    cost_usd: float | None


@dataclass(frozen=True)
class ExamplePage:
    rows: list[ExampleRow]
    total: int  # examples the filter keeps
    page: int
    pages: int
    metrics: list[str] = field(default_factory=list)


def examples_page(store: Store, run_id: str, flt: ExampleFilter, page: int = 1,
                  page_size: int = PAGE_SIZE) -> ExamplePage:
    where, args = flt.sql()
    db = store.database
    total = db.execute(f"SELECT COUNT(*) FROM results WHERE run_id = ?{where}", (run_id, *args)).fetchone()[0]
    pages = max(1, -(-total // page_size))
    page = min(max(1, page), pages)
    attempt = "attempt" if repeated(store, run_id) else "NULL"
    rows = db.execute(
        f"SELECT example_id, {attempt}, line, passed, error, substr(COALESCE(error, output, ''), 1, ?), scores,"
        f" latency_s, cost_usd FROM results WHERE run_id = ?{where}"
        f" ORDER BY line, example_id{', attempt' if attempt != 'NULL' else ''} LIMIT ? OFFSET ?",
        (PREVIEW_CHARS + 1, run_id, *args, page_size, (page - 1) * page_size)).fetchall()
    out = []
    for eid, att, line, passed, error, preview, scores, latency, cost in rows:
        values = {k: (v or {}).get("value") for k, v in json.loads(scores).items()}
        preview = preview if len(preview) <= PREVIEW_CHARS else preview[:PREVIEW_CHARS] + "..."
        out.append(ExampleRow(str(eid), att, line, bool(passed), error, preview, values, latency, cost))
    metrics = sorted({m for r in out for m in r.scores})
    return ExamplePage(out, total, page, pages, metrics)


def example_attempts(store: Store, run_id: str, example_id: str) -> list[dict[str, Any]]:
    """Every stored row of one example (one per attempt), input, reference and scores decoded."""
    cur = store.database.execute("SELECT * FROM results WHERE run_id = ? AND example_id = ? ORDER BY attempt",
                                   (run_id, example_id))
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    for row in rows:
        for key in ("input", "reference", "scores", "tool_calls"):
            row[key] = json.loads(row[key]) if row.get(key) is not None else None
    return rows


def neighbours(store: Store, run_id: str, example_id: str) -> tuple[str | None, str | None]:
    """The examples before and after this one, in the run's order (line, id)."""
    db = store.database
    line = db.execute("SELECT line FROM results WHERE run_id = ? AND example_id = ?", (run_id, example_id)).fetchone()
    if line is None:
        return None, None
    key = (line[0] if line[0] is not None else -1, example_id)
    before = db.execute("SELECT example_id FROM results WHERE run_id = ? AND (COALESCE(line, -1), example_id) < (?, ?)"
                        " ORDER BY COALESCE(line, -1) DESC, example_id DESC LIMIT 1", (run_id, *key)).fetchone()
    after = db.execute("SELECT example_id FROM results WHERE run_id = ? AND (COALESCE(line, -1), example_id) > (?, ?)"
                       " ORDER BY COALESCE(line, -1), example_id LIMIT 1", (run_id, *key)).fetchone()
    return (before[0] if before else None), (after[0] if after else None)


OUTCOMES = ("regressed", "improved", "both-missed")  # in this order on the compare page
# Each example both runs have: its line in A, first attempt in each, and the share of each run's K attempts that
# passed (an attempt not made counts as failed), so the outcome is that of compare_runs, repeats or not.
PAIRS = """
WITH k AS (SELECT id, COALESCE(CAST(json_extract(manifest, '$.repeats') AS INTEGER),
                               (SELECT MAX(attempt) FROM results WHERE run_id = runs.id), 1) AS k
           FROM runs WHERE id IN (:a, :b)),
a AS (SELECT example_id, MIN(COALESCE(line, -1)) AS line, MIN(attempt) AS first, SUM(passed) * 1.0 /
             (SELECT k FROM k WHERE id = :a) AS p FROM results WHERE run_id = :a GROUP BY example_id),
b AS (SELECT example_id, MIN(attempt) AS first, SUM(passed) * 1.0 / (SELECT k FROM k WHERE id = :b) AS p
      FROM results WHERE run_id = :b GROUP BY example_id),
pairs AS (SELECT a.example_id, a.line, a.first AS first_a, b.first AS first_b, a.p AS pass_a, b.p AS pass_b,
                 CASE WHEN b.p < a.p THEN 'regressed' WHEN b.p > a.p THEN 'improved'
                      WHEN a.p < 0.5 THEN 'both-missed' END AS outcome
          FROM a JOIN b ON b.example_id = a.example_id)
"""


@dataclass(frozen=True)
class OutcomeRow:
    example_id: str
    outcome: str  # regressed, improved, both-missed
    attempt_a: int  # the first attempt of each run, whose answers the page shows
    attempt_b: int
    pass_a: float  # the share of the run's attempts that passed (0 or 1 without repeats)
    pass_b: float


@dataclass(frozen=True)
class OutcomePage:
    rows: list[OutcomeRow]
    total: int  # examples with the outcomes asked for
    page: int
    pages: int
    counts: dict[str, int]  # examples per outcome, "changed" (regressed and improved) included


def outcome_counts(store: Store, run_a: str, run_b: str) -> dict[str, int]:
    """Examples per outcome from run A to run B, "changed" (regressed and improved) included: one aggregate."""
    counts = dict.fromkeys(OUTCOMES, 0) | dict(store.database.execute(
        PAIRS + "SELECT outcome, COUNT(*) FROM pairs WHERE outcome IS NOT NULL GROUP BY outcome",
        {"a": run_a, "b": run_b}).fetchall())
    return {**counts, "changed": counts["regressed"] + counts["improved"]}


def outcomes_page(store: Store, run_a: str, run_b: str, outcomes: tuple[str, ...], counts: dict[str, int],
                  page: int = 1, page_size: int = PAGE_SIZE) -> OutcomePage:
    """One page of the examples whose outcome from run A to run B is one of `outcomes` (`counts`: those of
    outcome_counts): regressed first, then improved, then both missed; the largest change in pass share first
    (with repeats), then in A's order."""
    total = sum(counts[o] for o in outcomes)
    pages = max(1, -(-total // page_size))
    page = min(max(1, page), pages)
    chosen = ", ".join(f":o{i}" for i in range(len(outcomes))) or "NULL"
    rows = store.database.execute(
        PAIRS + "SELECT example_id, outcome, first_a, first_b, pass_a, pass_b FROM pairs"
        f" WHERE outcome IN ({chosen}) ORDER BY CASE outcome WHEN 'regressed' THEN 0 WHEN 'improved' THEN 1 ELSE 2 END,"
        " ABS(pass_b - pass_a) DESC, line, example_id LIMIT :limit OFFSET :offset",
        {"a": run_a, "b": run_b, **{f"o{i}": o for i, o in enumerate(outcomes)}, "limit": page_size,
         "offset": (page - 1) * page_size}).fetchall()
    return OutcomePage([OutcomeRow(str(r[0]), *r[1:]) for r in rows], total, page, pages, counts)
