"""Golden sets: JSONL read as written, CSV, Parquet and hub ids through HF `datasets`; validate, hash."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from evals.errors import EvalsError
from evals.types import Sample, Task

FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """The records and their line numbers, after checking every non-blank line is a JSON object.

    Records are kept exactly as written: Arrow's JSON reader (behind `datasets`) would turn strings such
    as "2025-03-14" into timestamps and refuses a column whose type changes between lines.
    """
    records, lines = [], []
    with path.open(encoding="utf-8") as f:
        for n, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as e:
                raise EvalsError(f"malformed JSON: {e.msg} (column {e.colno})", file=path, line=n) from None
            if not isinstance(record, dict):
                raise EvalsError(f"expected a JSON object, got {type(record).__name__}", file=path, line=n)
            records.append(record)
            lines.append(n)
    return records, lines


def _read_rows(source: str, task_dir: Path) -> tuple[list[dict[str, Any]], list[int], str]:
    """Rows, their line numbers, and a display name for errors."""
    path = task_dir / source
    if path.is_file() and FORMATS.get(path.suffix.lower()) == "json":
        records, lines = read_jsonl(path)
        return records, lines, str(path)
    import datasets

    datasets.disable_progress_bars()
    if not path.exists():
        if "/" in source and not source.startswith((".", "/")):
            name, _, split = source.partition(":")
            try:
                ds = datasets.load_dataset(name, split=split or "test")
            except Exception as e:
                raise EvalsError(f"could not load hub dataset '{name}': {type(e).__name__}: {e}") from None
            return ds.to_list(), list(range(1, len(ds) + 1)), source
        raise EvalsError(f"golden set file not found: {path}")
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise EvalsError(f"unsupported golden-set format '{path.suffix}' (use .jsonl, .csv or .parquet)", file=path)
    try:
        ds = datasets.load_dataset(kind, data_files=str(path), split="train")
    except Exception as e:
        raise EvalsError(f"could not read as {kind}: {type(e).__name__}: {e}", file=path) from None
    lines = [i + 2 for i in range(len(ds))] if kind == "csv" else list(range(1, len(ds) + 1))
    return ds.to_list(), lines, str(path)


def read_rows(path: Path, what: str = "file") -> tuple[list[dict[str, Any]], list[int], str]:
    """A JSONL, CSV or Parquet file's rows, their line numbers and the name to cite in errors."""
    if not path.is_file():
        raise EvalsError(f"{what} not found: {path}")
    return _read_rows(path.name, path.parent)


def load_samples(task: Task, split: str = "golden") -> list[Sample]:
    """The task's golden (or train) examples, each checked for id, reference and prompt fields."""
    source = task.golden if split == "golden" else task.train
    if not source:
        raise EvalsError(f"task '{task.name}' has no {split} set", file=task.path, field=f"dataset.{split}")
    rows, lines, where = _read_rows(source, task.dir)
    samples, seen, built = [], {}, set()
    for row, line in zip(rows, lines):
        for name in (task.id_field, task.reference_field, *task.input_fields):
            if row.get(name) is None or row.get(name) == "":
                raise EvalsError("missing or empty", file=where, line=line, field=name)
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
        skip = (task.id_field, task.reference_field, task.checks_field, task.human_field)
        fields = {k: v for k, v in row.items() if k not in skip}  # people's labels never reach the prompt
        samples.append(Sample(id=sample_id, fields=fields, reference=row[task.reference_field], line=line,
                              checks=checks, human=row.get(task.human_field) if task.human_field else None))
    if not samples:
        raise EvalsError("the golden set is empty", file=where)
    return samples


def human_labels(path: Path, id_field: str, field: str) -> list[Sample]:
    """People's labels alone (id, line and label of each example) from a local golden file, for the file a run's
    manifest names: nothing else of a line is read or validated, its checks included (no metric is built)."""
    rows, lines, _ = _read_rows(path.name, path.parent)
    return [Sample(id=str(row[id_field]), fields={}, reference=None, line=line, human=row.get(field))
            for row, line in zip(rows, lines) if row.get(id_field) is not None]


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
