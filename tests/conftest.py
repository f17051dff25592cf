"""Shared fixtures: an isolated store and cache per test, and small task folders built on the fly."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

API_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Every test gets its own store and cache; API keys are hidden except from `live` tests."""
    monkeypatch.setenv("EVALS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("EVALS_STORE", str(tmp_path / "evals.db"))
    if "live" not in request.keywords:
        for key in API_KEYS:
            monkeypatch.delenv(key, raising=False)


def qa_rows(n: int) -> list[dict[str, Any]]:
    """n examples whose reference is {"labels": [...]}; the answer to example i is labels ["l<i%3>"]."""
    return [{"id": f"ex{i:03d}", "question": f"question {i}", "reference": {"labels": [f"l{i % 3}"]}}
            for i in range(n)]


def answer_for(i: int) -> str:
    return json.dumps({"labels": [f"l{i % 3}"]})


QA_TASK: dict[str, Any] = {
    "name": "qa",
    "dataset": {"golden": "golden.jsonl", "fields": ["question"]},
    "prompt": {"system": "Answer with JSON.", "user": "{{ question }}"},
    "models": [{"spec": "fake:scripted"}],
    "metrics": [{"name": "json_valid"}, {"name": "set_f1", "id": "labels_f1", "field": "labels"}],
    "pass": {"json_valid": 1, "labels_f1": 1},
}


@pytest.fixture
def make_task(tmp_path: Path) -> Callable[..., Path]:
    """Write a task folder: make_task(rows=..., golden_text=..., **task.yaml overrides) -> its path."""

    def make(rows: list[dict[str, Any]] | None = None, golden_text: str | None = None, **overrides: Any) -> Path:
        folder = tmp_path / "task"
        folder.mkdir(exist_ok=True)
        spec = {**QA_TASK, **overrides}
        (folder / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        if golden_text is None:
            golden_text = "".join(json.dumps(r) + "\n" for r in (rows if rows is not None else qa_rows(6)))
        (folder / "golden.jsonl").write_text(golden_text)
        return folder

    return make


def assert_refused_at_load(folder: Path, field: str, message: str, command: str = "run") -> None:
    """Loading the task fails naming task.yaml, the line and the field, and so does `evals COMMAND` (exit 2)."""
    from typer.testing import CliRunner

    from evals.cli import app
    from evals.data.tasks import load_task
    from evals.errors import EvalsError

    with pytest.raises(EvalsError) as e:
        load_task(str(folder))
    assert e.value.field == field and message in e.value.message
    assert e.value.file.endswith("task.yaml") and e.value.line and e.value.line > 1
    result = CliRunner().invoke(app, [command, str(folder)])
    assert result.exit_code == 2 and f"task.yaml:{e.value.line} field '{field}'" in result.stderr


def stored_runs() -> int:
    """How many runs the test's store holds (none when there is no store)."""
    import os
    import sqlite3

    path = Path(os.environ["EVALS_STORE"])
    if not path.exists():
        return 0
    db = sqlite3.connect(path)
    try:
        has_runs = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone()
        return db.execute("SELECT count(*) FROM runs").fetchone()[0] if has_runs else 0
    finally:
        db.close()


def assert_refused(result: Any, where: str) -> str:
    """A user mistake refused as one should be: exit 2, one line on stderr naming `where` (file:line and field),
    no traceback, and no run stored. The line, for further checks."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert where in lines[0], lines[0]
    assert "Traceback" not in result.output and stored_runs() == 0
    return lines[0]


@pytest.fixture(scope="session")
def postgres_cluster() -> Any:
    """A throwaway PostgreSQL cluster for the session (tests/postgres_server.py), stopped at its end. Skipped with
    one line saying what to install where there is no server; a failure where it must run (CI)."""
    from tests.postgres_server import Cluster, find_missing, required

    missing = find_missing()
    if missing:
        if required():
            pytest.fail(f"the PostgreSQL tests must run here (CI or EVALS_REQUIRE_POSTGRES=1): {missing}")
        pytest.skip(missing)
    cluster = Cluster()  # a server that cannot start is an error, never a skip
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: Any) -> str:
    """A fresh, empty database on the session's cluster: its URL (with the password)."""
    return str(postgres_cluster.new_database())


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store test keeps its store, once on each backend: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return str(request.getfixturevalue("postgres_url"))
