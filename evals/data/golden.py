"""Golden sets: JSONL read as written, CSV, Parquet and hub ids through HF `datasets`; validate, hash."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evals.data.tools import check_reference, line_history
from evals.errors import EvalsError, not_utf8
from evals.types import Sample, Task

FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


MAX_DEPTH = 100  # JSON nesting a golden line may have: deeper, later steps (hashing, storing) would overflow the stack


class _NotANumber(ValueError):
    """A number JSON cannot hold: NaN, Infinity, a float past the largest one."""


def _refuse(token: str) -> Any:
    raise _NotANumber(token)


def _finite(token: str) -> float:
    value = float(token)
    if math.isinf(value):
        raise _NotANumber(token)
    return value


_STRICT = json.JSONDecoder(parse_constant=_refuse)
_STRICT_FLOATS = json.JSONDecoder(parse_constant=_refuse, parse_float=_finite)  # for lines with a long exponent
_BIG_EXPONENT = re.compile(r"\d[eE]\+?\d{3}")
_MARK = object()


def _not_a_number(text: str) -> tuple[str, str | None]:
    """The number of a line that JSON cannot hold (or Python read), and the field that holds it, found by reading
    the line again with a marker in its place."""
    found: list[str] = []

    def mark(token: str) -> Any:
        found.append(token)
        return _MARK

    def whole(token: str) -> Any:
        digits = len(token.lstrip("-"))
        return mark(f"{token[:12]}... ({digits} digits)") if digits > sys.get_int_max_str_digits() else int(token)

    try:
        record = json.loads(text, parse_constant=mark, parse_int=whole,
                            parse_float=lambda t: mark(t) if math.isinf(float(t)) else float(t))
    except (ValueError, RecursionError):
        return "a number", None
    stack: list[tuple[Any, tuple[str, ...]]] = [(record, ())]
    while stack:
        value, path = stack.pop()
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            if item is _MARK:
                return found[0], ".".join((*path, str(key)))
            stack.append((item, (*path, str(key))))
    return (found or ["a number"])[0], None


def _depth_over(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            if depth > limit:
                return True
            stack.extend((item, depth + 1) for item in (v.values() if isinstance(v, dict) else v))
    return False


def parse_line(text: str, path: Path | str, line: int) -> dict[str, Any]:
    """One golden line as a JSON object, or an EvalsError naming the line (and the field, where there is one):
    malformed JSON, another type than an object, NaN or Infinity (not JSON, though Python writes them), a number
    out of range, nesting past MAX_DEPTH."""
    try:
        record = (_STRICT_FLOATS if _BIG_EXPONENT.search(text) else _STRICT).decode(text)
    except json.JSONDecodeError as e:
        raise EvalsError(f"malformed JSON: {e.msg} (column {e.colno})", file=path, line=line) from None
    except ValueError:  # NaN, Infinity, a float past the largest, an integer of more digits than Python reads
        token, field = _not_a_number(text)
        raise EvalsError(f"{token} is not a number JSON can hold: write null, or the value as a string", file=path,
                         line=line, field=field) from None
    except RecursionError:
        raise EvalsError(f"JSON nested more than {MAX_DEPTH} deep", file=path, line=line) from None
    if not isinstance(record, dict):
        raise EvalsError(f"expected a JSON object, got {type(record).__name__}", file=path, line=line)
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth_over(record, MAX_DEPTH):
        raise EvalsError(f"JSON nested more than {MAX_DEPTH} deep", file=path, line=line)
    return record


def iter_jsonl(path: Path) -> Iterator[tuple[dict[str, Any], int]]:
    """Each non-blank line's record and its line number, read one at a time (`parse_line` checks each).

    Records are kept exactly as written: Arrow's JSON reader (behind `datasets`) would turn strings such
    as "2025-03-14" into timestamps and refuses a column whose type changes between lines.
    """
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise not_utf8(e, path, n) from None
            if text.strip(" \t\r\n"):  # JSON's whitespace: a line of other control characters is not blank
                yield parse_line(text, path, n), n


def _hub_id(source: str, task_dir: Path) -> bool:
    return not (task_dir / source).exists() and "/" in source and not source.startswith((".", "/"))


def source_problem(source: str, task_dir: Path) -> str | None:
    """Why a golden set cannot be read, where that shows before reading it (a missing file, a format evals does
    not read); None for a file it reads, or a hub id."""
    path = task_dir / source
    if _hub_id(source, task_dir):
        return None
    if not path.is_file():
        return f"golden set file not found: {path}"
    if FORMATS.get(path.suffix.lower()) is None:
        return f"unsupported golden-set format '{path.suffix}' (use .jsonl, .csv or .parquet)"
    return None


def _read_rows(source: str, task_dir: Path) -> tuple[Iterator[tuple[dict[str, Any], int]], str]:
    """The rows with their line numbers, read as they are used, and a display name for errors."""
    path = task_dir / source
    if problem := source_problem(source, task_dir):
        raise EvalsError(problem, file=path if path.is_file() else None)
    kind = FORMATS.get(path.suffix.lower())
    if kind == "json":
        return iter_jsonl(path), str(path)
    import datasets

    datasets.disable_progress_bars()
    if _hub_id(source, task_dir):
        name, _, split = source.partition(":")
        try:
            ds = datasets.load_dataset(name, split=split or "test")
        except Exception as e:
            raise EvalsError(f"could not load hub dataset '{name}': {type(e).__name__}: {e}") from None
        return ((row, i) for i, row in enumerate(ds, start=1)), source
    try:
        ds = datasets.load_dataset(kind, data_files=str(path), split="train")
    except Exception as e:
        raise EvalsError(f"could not read as {kind}: {type(e).__name__}: {e}", file=path) from None
    first = 2 if kind == "csv" else 1  # a CSV's first line is its header
    return ((row, i) for i, row in enumerate(ds, start=first)), str(path)


def read_rows(path: Path, what: str = "file") -> tuple[list[dict[str, Any]], list[int], str]:
    """A JSONL, CSV or Parquet file's rows, their line numbers and the name to cite in errors."""
    if not path.is_file():
        raise EvalsError(f"{what} not found: {path}")
    rows, where = _read_rows(path.name, path.parent)
    pairs = list(rows)
    return [row for row, _ in pairs], [line for _, line in pairs], where


def load_samples(task: Task, split: str = "golden", limit: int | None = None) -> list[Sample]:
    """The task's golden (or train) examples, the first `limit` of them if given, each checked for id, reference
    and prompt fields as it is read: the file is read no further than the examples used."""
    source = task.golden if split == "golden" else task.train
    if not source:
        raise EvalsError(f"task '{task.name}' has no {split} set", file=task.path, field=f"dataset.{split}")
    rows, where = _read_rows(source, task.dir)
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    built: set[str] = set()
    for row, line in rows:
        for name in (task.id_field, task.reference_field, *task.input_fields):
            if row.get(name) is None or row.get(name) == "":
                raise EvalsError("missing or empty", file=where, line=line, field=name)
        if isinstance(row[task.id_field], (bool, dict, list)):
            raise EvalsError(f"an id is a string or a number, not {row[task.id_field]!r}"[:200], file=where, line=line,
                             field=task.id_field)
        sample_id = str(row[task.id_field])
        if sample_id in seen:
            raise EvalsError(f"duplicate id '{sample_id}' (first on line {seen[sample_id]})",
                             file=where, line=line, field=task.id_field)
        seen[sample_id] = line
        checks = ()
        if task.checks_field and split == "golden":
            from evals.metrics.checks import parse_checks

            checks = parse_checks(row.get(task.checks_field), task, file=where, line=line, built=built)
            if not checks and not task.metrics:
                raise EvalsError("no checks, and the task has no metrics: nothing would score this example",
                                 file=where, line=line, field=task.checks_field)
        history = line_history(row, task, file=where, line=line)
        if task.tools:
            check_reference(row[task.reference_field], task, file=where, line=line, field=task.reference_field)
        skip = (task.id_field, task.reference_field, task.checks_field, task.human_field)
        fields = {k: v for k, v in row.items() if k not in skip}  # people's labels never reach the prompt
        samples.append(Sample(id=sample_id, fields=fields, reference=row[task.reference_field], line=line,
                              checks=checks, human=row.get(task.human_field) if task.human_field else None,
                              file=where, messages=history))
        if len(samples) == limit:
            break
    if not samples:
        raise EvalsError("the golden set is empty", file=where)
    return samples


def human_labels(path: Path, id_field: str, field: str) -> list[Sample]:
    """People's labels alone (id, line and label of each example) from a local golden file, for the file a run's
    manifest names: nothing else of a line is read or validated, its checks included (no metric is built)."""
    rows, _ = _read_rows(path.name, path.parent)
    return [Sample(id=str(row[id_field]), fields={}, reference=None, line=line, human=row.get(field))
            for row, line in rows if row.get(id_field) is not None]


def samples_hash(samples: list[Sample]) -> str:
    """Content hash of a golden set, independent of file format and row order."""
    h = hashlib.sha256()
    for s in sorted(samples, key=lambda s: s.id):
        record = {"id": s.id, "fields": s.fields, "reference": s.reference}
        if s.checks:
            record["checks"] = [dataclasses.asdict(c) for c in s.checks]
        h.update(json.dumps(record, sort_keys=True, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()
