"""The one run entry below the CLI: `evals.run` from Python gives back each stored run as `evals.load_run`
reads it, with the models that cannot run here warned of; `evals check` and `evals decide` spread their calls
over `--workers` processes through it, as `evals run` does (the run's manifest records the processes); the
Python API page's example (docs/python-api.md) runs as written."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import evals
from evals.errors import EvalsError
from evals.run.store import Store
from tests.conftest import qa_rows
from tests.providers.test_providers_api import qa_answer
from tests.run.test_signals import stored
from tests.standin_server import StandinProcess, fixed

N = 24


def evals_cli(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evals", *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=180)


def model(server: StandinProcess, spec: str = "openai:gpt-4o-mini") -> dict:
    return {"spec": spec, "base_url": server.base_url, "concurrency": 4}


def test_evals_run_gives_back_each_stored_run_as_load_run_reads_it(make_task, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.setenv("EVALS_CACHE_DIR", str(tmp_path / "cache"))
    warned: list[str] = []
    with StandinProcess(qa_answer, latency=0.01) as server:
        folder = make_task(rows=qa_rows(N), models=[model(server), {"spec": "anthropic:claude-3-5-haiku-latest"}])
        [frame] = evals.run(folder, store=tmp_path / "s.db", cache=False, warn=warned.append)
        assert server.stats()["completed"] == N
    [record] = Store(tmp_path / "s.db").list_runs()
    assert (record.model, record.status, record.n_done) == ("openai:gpt-4o-mini", "completed", N)
    pd.testing.assert_frame_equal(frame, evals.load_run(record.id, tmp_path / "s.db"))
    assert len(frame) == N and frame["score.labels_f1"].eq(1.0).all()
    assert [w for w in warned if w.startswith("skipped anthropic:claude-3-5-haiku-latest")], warned


def test_evals_run_with_only_models_that_cannot_run_says_why(make_task, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    folder = make_task(rows=qa_rows(3))
    with pytest.raises(EvalsError, match="none of the requested models can run here: anthropic:claude-3-5-haiku"):
        evals.run(folder, ["anthropic:claude-3-5-haiku-latest"], store=tmp_path / "s.db")
    assert Store(tmp_path / "s.db").list_runs() == []


def env_for(tmp_path) -> dict[str, str]:
    return {**os.environ, "EVALS_STORE": str(tmp_path / "s.db"), "EVALS_CACHE_DIR": str(tmp_path / "cache")}


def test_check_spreads_its_run_over_workers(make_task, tmp_path) -> None:
    env = env_for(tmp_path)
    with StandinProcess(qa_answer, latency=0.02) as server:
        folder = make_task(rows=qa_rows(N), models=[model(server)], check={"model": "openai:gpt-4o-mini"})
        assert evals_cli("run", folder, "--no-cache", "--no-progress", env=env).returncode == 0
        assert evals_cli("baseline", "set", folder, "latest", env=env).returncode == 0
        done = evals_cli("check", folder, "--workers", "2", "--no-progress", "--json", env=env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["status"] == "pass"
        stats = server.stats()
    assert stats["completed"] == 2 * N and set(stats["completed_by_prompt"].values()) == {2}  # once by the check
    baseline, checked = sorted(Store(tmp_path / "s.db").list_runs(), key=lambda r: r.created_at)
    assert "workers" not in baseline.manifest and checked.manifest["workers"] == 2
    assert (checked.status, checked.n_done, checked.served_calls) == ("completed", N, N)


def test_decide_runs_what_the_store_lacks_over_workers(make_task, tmp_path) -> None:
    env = env_for(tmp_path)
    with StandinProcess(qa_answer, latency=0.02) as server:
        folder = make_task(rows=qa_rows(N), models=[model(server), model(server, "openai:gpt-4o")],
                           decision={"baseline": "openai:gpt-4o", "candidate": "openai:gpt-4o-mini"})
        done = evals_cli("decide", folder, "--workers", "2", "--no-progress", "--json", env=env)
        assert done.returncode == 0, done.stderr
        stats = server.stats()
    assert stats["completed"] == 2 * N and set(stats["completed_by_prompt"].values()) == {2}  # once per model
    runs = Store(tmp_path / "s.db").list_runs()
    assert sorted(r.model for r in runs) == ["openai:gpt-4o", "openai:gpt-4o-mini"]
    assert [(r.status, r.n_done, r.manifest["workers"]) for r in runs] == [("completed", N, 2)] * 2
    assert json.loads(done.stdout)["counts"]["n"] == N


def docs_example() -> str:
    """The Python block of the docs' Python API page."""
    page = (Path(__file__).parents[2] / "docs" / "python-api.md").read_text(encoding="utf-8")
    return page.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_docs_example_runs_as_written(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(Path(__file__).parents[2])
    monkeypatch.setenv("EVALS_STORE", str(tmp_path / "s.db"))
    monkeypatch.setenv("EVALS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with StandinProcess(fixed('{"issues": ["typos"], "score": 4}'), latency=0.01) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(docs_example(), "docs/python-api.md", "exec"), {})
        assert server.stats()["completed"] == 10
    assert printed.getvalue().startswith("openai:gpt-4o-mini ") and " of 10 matched" in printed.getvalue()
    [record] = Store(tmp_path / "s.db").list_runs()
    assert (record.status, record.n_done) == ("completed", 10)


def interrupt_once_stored(db: Path, results: int) -> None:
    """SIGINT to this process once the run in `db` has stored `results` answers (its time in `interrupted`)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if db.exists() and stored(db) >= results:
            break
        time.sleep(0.05)
    interrupted.append(time.monotonic())
    os.kill(os.getpid(), signal.SIGINT)


interrupted: list[float] = []


def test_evals_run_inside_a_running_event_loop_runs_and_stops_on_the_first_interrupt(make_task, tmp_path,
                                                                                   monkeypatch) -> None:
    """As in a notebook, whose kernel runs an event loop in the main thread: the run goes on a loop of its own,
    and the kernel's interrupt (SIGINT to the process) winds it down as Ctrl-C does `evals run`."""
    monkeypatch.setenv("EVALS_CACHE_DIR", str(tmp_path / "cache"))
    with StandinProcess(qa_answer, latency=0.4) as server:
        folder = make_task(rows=qa_rows(N), models=[{**model(server), "concurrency": 2}])

        async def in_a_notebook_cell() -> list[pd.DataFrame]:
            threading.Thread(target=interrupt_once_stored, args=(tmp_path / "s.db", 2), daemon=True).start()
            return evals.run(folder, store=tmp_path / "s.db", cache=False)

        loop = asyncio.new_event_loop()
        try:
            [frame] = loop.run_until_complete(in_a_notebook_cell())
        finally:
            loop.close()
        took = time.monotonic() - interrupted[0]
    [record] = Store(tmp_path / "s.db").list_runs()
    assert record.status == "interrupted" and 0 < record.n_done < N, (record.status, record.n_done)
    assert len(frame) == record.n_done and took < 10  # the calls in flight finished, no new one started
