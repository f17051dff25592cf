"""`evals store copy`: every table of one store into another, empty one (SQLite to PostgreSQL or back), in one
transaction, rows in the order they were written, then each table's count verified."""

from __future__ import annotations

import re
from pathlib import Path

from evals.errors import EvalsError, StorageError
from evals.run import schema
from evals.run.store import Store

CHUNK = 1000  # rows written per statement
TABLES = tuple(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", schema.SCHEMA))  # parents before the rows naming them
NUMBERED = set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+) \(\s*id INTEGER PRIMARY KEY AUTOINCREMENT",
                          schema.SCHEMA))  # tables whose ids the store numbers


def copy_store(source: str | Path, target: str | Path) -> dict[str, int]:
    """Copy every table of `source` into `target` (created if missing; refused unless it holds no runs) and
    return the rows copied per table, each count checked against the source's."""
    src = Store(source, readonly=True)
    dst = Store(target)
    try:
        if str(src.location) == str(dst.location):
            raise EvalsError("the source and the target are the same store", field="DST")
        held = [t for t in TABLES if dst.database.rows(f"SELECT COUNT(*) FROM {t}")[0][0]]
        if held:
            raise EvalsError(f"the target already holds rows (in {', '.join(held)}); copy into a new, empty store",
                             file=dst.path)
        have = src.database.tables()
        counts = {}
        with dst.database.transaction():
            for table in (t for t in TABLES if t in have):
                counts[table] = _copy_table(src, dst, table)
        for table, n in counts.items():
            found = dst.database.rows(f"SELECT COUNT(*) FROM {table}")[0][0]
            if found != n:
                raise StorageError(f"copied {n} row(s) of {table} but the target holds {found}", file=dst.path)
        return counts
    finally:
        src.close()
        dst.close()


def _copy_table(src: Store, dst: Store, table: str) -> int:
    wanted = set(dst.database.columns(table))
    names = [c for c in src.database.columns(table) if c in wanted]
    insert = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    cursor = src.database.execute(f"SELECT {', '.join(names)} FROM {table} ORDER BY rowid")
    n = 0
    with src.database.reading():
        while chunk := cursor.fetchmany(CHUNK):
            dst.database.executemany(insert, chunk)
            n += len(chunk)
    if table in NUMBERED:
        dst.database.continue_ids(table)
    return n
