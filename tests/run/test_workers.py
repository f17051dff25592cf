"""`evals run --workers N`: one run's calls spread over forked processes writing to one store, as a user runs
it (a real process, real signals, the SDK against the stand-in): each attempt asked once, the run settled
once, a stop reaches every worker, the budget holds across them, and what cannot be spread is refused."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from typer.testing import CliRunner

from evals.cli import app
from evals.run.calls import RunOptions, lane_width
from tests.conftest import qa_rows
from tests.providers.test_providers_api import qa_answer
from tests.run.test_signals import stored
from tests.standin_server import StandinProcess

N = 40


def evals(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evals", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def setting(tmp_path, make_task, server, concurrency: int = 8, **model):
    folder = make_task(rows=qa_rows(N), models=[{"spec": "openai:gpt-4o-mini", "base_url": server.base_url,
                                                 "concurrency": concurrency, **model}])
    db = tmp_path / "s.db"
    return folder, db, {**os.environ, "EVALS_STORE": str(db), "EVALS_CACHE_DIR": str(tmp_path / "cache")}


def running_with_workers(folder, db, env: dict[str, str], until_stored: int) -> subprocess.Popen:
    """`evals run FOLDER --workers 2` started as a user starts it, once it has stored `until_stored` results."""
    proc = subprocess.Popen([sys.executable, "-m", "evals", "run", str(folder), "--no-cache", "--workers", "2",
                             "--progress", "plain"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while stored(db) < until_stored and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


def test_two_workers_ask_every_example_once_and_settle_one_run(make_task, tmp_path) -> None:
    with StandinProcess(qa_answer, latency=0.05) as server:
        folder, db, env = setting(tmp_path, make_task, server)
        done = evals("run", str(folder), "--no-cache", "--workers", "2", "--json", env=env)
        assert done.returncode == 0, done.stderr
        assert not (tmp_path / "s.db-wal").exists()  # the last connection closed: its log checkpointed, removed
        [summary] = json.loads(done.stdout)
        stats = server.stats()
    assert stats["completed"] == N and set(stats["completed_by_prompt"].values()) == {1}
    assert summary["matches"] == summary["done"] == N and summary["errors"] == 0
    runs = sqlite3.connect(db).execute("SELECT status, served_calls, concurrency FROM runs").fetchall()
    assert runs == [("completed", N, 8)]  # one run, its calls counted once, at the concurrency asked for
    assert stored(db) == N


def test_a_command_closes_its_store_on_the_way_out(make_task, tmp_path) -> None:
    """The exit skips the collector's last pass; the store's connection is closed all the same (sqlite3 keeps
    a connection in a reference cycle), so its write-ahead log does not stay beside it."""
    env = {**os.environ, "EVALS_STORE": str(tmp_path / "s.db"), "EVALS_CACHE_DIR": str(tmp_path / "cache")}
    done = evals("run", str(make_task(models=["fake:echo"])), "--progress", "none", env=env)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "s.db-wal").exists()  # (reading the store below opens it again)
    assert stored(tmp_path / "s.db") == 6


def test_a_signal_reaches_every_worker_and_the_run_resumes_with_them(make_task, tmp_path) -> None:
    with StandinProcess(qa_answer, latency=0.5) as server:
        folder, db, env = setting(tmp_path, make_task, server, concurrency=4)
        proc = running_with_workers(folder, db, env, until_stored=8)
        proc.send_signal(signal.SIGTERM)  # to the parent only, as a cancelled CI job sends it
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 143, err
        assert "Traceback" not in err and "interrupted by SIGTERM" in err
        run_id = err.split("evals run --resume ")[1].split("`")[0]
        [(status,)] = sqlite3.connect(db).execute("SELECT status FROM runs").fetchall()
        assert status == "interrupted"
        assert server.stats()["completed"] == stored(db) < N  # the workers stored every answer that arrived
        resumed = evals("run", "--resume", run_id, "--no-cache", "--workers", "2", "--progress", "none", env=env)
        assert resumed.returncode == 0, resumed.stderr
        stats = server.stats()
    assert stored(db) == N and stats["completed"] == N and set(stats["completed_by_prompt"].values()) == {1}
    [(status,)] = sqlite3.connect(db).execute("SELECT status FROM runs").fetchall()
    assert status == "completed"


def test_the_budget_holds_across_workers(make_task, tmp_path) -> None:
    with StandinProcess(qa_answer, latency=0.05) as server:
        folder, db, env = setting(tmp_path, make_task, server, max_tokens=16,
                                  price={"input_per_mtok": 1000, "output_per_mtok": 1000})
        done = evals("run", str(folder), "--no-cache", "--workers", "2", "--budget", "0.3", "--progress", "none",
                     env=env)
        paid = server.stats()["completed"]
    assert done.returncode == 0, done.stderr
    assert "budget reached" in done.stderr and "evals run --resume" in done.stderr
    assert "split over 2 workers, each share less than one more call's worst case" in done.stderr
    spent, count = sqlite3.connect(db).execute("SELECT SUM(cost_usd), COUNT(*) FROM results").fetchone()
    [(status,)] = sqlite3.connect(db).execute("SELECT status FROM runs").fetchall()
    assert 0 < count == paid < N and 0.15 <= spent <= 0.3 and status == "budget-stopped"  # most of it, never more


def test_what_cannot_be_spread_is_refused_before_a_run_is_stored(make_task, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EVALS_STORE", str(tmp_path / "s.db"))
    folder = make_task(models=["fake:echo"])
    local = CliRunner().invoke(app, ["run", str(folder), "--workers", "2"])
    assert local.exit_code == 2 and "fake:echo run(s) in this process" in local.stderr
    batch = CliRunner().invoke(app, ["run", str(folder), "-m", "openai:gpt-4o-mini", "--batch", "--workers", "2"],
                               env={"OPENAI_API_KEY": "sk-test"})
    assert batch.exit_code == 2 and "--batch sends a run's calls as one batch" in batch.stderr
    assert not sqlite3.connect(tmp_path / "s.db").execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def test_workers_share_each_models_concurrency() -> None:
    class Provider:
        max_concurrency = 16

    assert lane_width(RunOptions(concurrency=50, processes=2), Provider()) == 25
    assert lane_width(RunOptions(concurrency=5, processes=2), Provider()) == 3  # rounded up: never none
    assert lane_width(RunOptions(processes=4), Provider()) == 4
    assert lane_width(RunOptions(concurrency=50), Provider()) == 50


def test_a_killed_worker_is_said_in_one_line_and_the_run_resumes(make_task, tmp_path) -> None:
    import psutil

    with StandinProcess(qa_answer, latency=0.5) as server:
        folder, db, env = setting(tmp_path, make_task, server, concurrency=4)
        proc = running_with_workers(folder, db, env, until_stored=4)
        psutil.Process(proc.pid).children()[0].kill()  # one worker gone, as the OOM killer does it
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 2 and "Traceback" not in err, err
        assert "was killed by SIGKILL" in err and "every result stored is kept" in err
        run_id = err.split("evals run --resume ")[1].split("`")[0]
        assert sqlite3.connect(db).execute("SELECT status FROM runs").fetchone() == ("interrupted",)
        resumed = evals("run", "--resume", run_id, "--no-cache", "--progress", "none", env=env)
        assert resumed.returncode == 0, resumed.stderr
    assert stored(db) == N


def test_a_run_bound_by_this_process_cpu_suggests_workers() -> None:
    from evals.run.workers import cpu_bound_hint

    class Api:
        hardware = "remote: api.openai.com"

    class Here:
        hardware = None

    api, here = [(None, Api())], [(None, Here())]
    hint = cpu_bound_hint(7.6, 8.0, api, 8)
    assert hint and "busy 95% of the run's 8.0 s" in hint and "--workers 4" in hint
    assert cpu_bound_hint(1.6, 8.0, api, 8) is None  # waiting on the API, as it should
    assert cpu_bound_hint(7.6, 8.0, here, 8) is None  # a local model: workers cannot spread it
    assert cpu_bound_hint(7.6, 8.0, api, 1) is None  # no core to spare
    assert cpu_bound_hint(2.9, 3.0, api, 8) is None  # too short to tell


def test_a_batched_run_resumed_with_workers_is_refused() -> None:
    """A run started with --batch resumes as it started, polling its batches from one process."""
    import pytest

    from evals.errors import EvalsError
    from evals.run.workers import check_workers
    from evals.types import ModelConfig, ModelSpec

    class Api:
        hardware = "remote: api.openai.com"

    batched = ModelConfig(spec=ModelSpec.parse("openai:gpt-4o-mini"), batch=True)
    with pytest.raises(EvalsError, match="one batch from one process"):
        check_workers(2, None, [], [(batched, Api())], RunOptions())


def test_a_budget_whose_share_per_worker_fits_no_call_is_refused_naming_the_split(make_task, tmp_path,
                                                                                   monkeypatch) -> None:
    monkeypatch.setenv("EVALS_STORE", str(tmp_path / "s.db"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    folder = make_task(models=[{"spec": "openai:gpt-4o-mini", "max_tokens": 16,
                                "price": {"input_per_mtok": 1000, "output_per_mtok": 1000}}])
    one = CliRunner().invoke(app, ["run", str(folder), "--budget", "0.02", "--workers", "4"])
    assert one.exit_code == 2, one.output
    assert "--budget $0.02 over 4 workers ($0.005 each) is less than the worst case of a single call" in one.stderr
    assert not sqlite3.connect(tmp_path / "s.db").execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def test_no_sqlite_connection_crosses_the_fork_and_the_parent_reads_on(tmp_path, monkeypatch) -> None:
    """SQLite forbids carrying a connection over fork(): a worker would share its lock state with the parent's.
    The store and cache are closed before the workers start, and the parent's store works after."""
    import evals.run.workers as workers
    from evals._util import OPEN_DATABASES
    from evals.run.cache import ResponseCache
    from evals.run.store import Store

    def census(conn, *args) -> None:  # what a worker inherits, instead of a run
        conn.send(("open databases", len(OPEN_DATABASES)))
        conn.close()

    monkeypatch.setattr(workers, "_worker", census)
    store = Store(tmp_path / "s.db")
    pool = workers.start_workers(None, [], [], store, RunOptions(), ResponseCache(tmp_path / "c.db"), 2)
    reports = []
    for conn in pool.processes:
        reports.append(conn.recv())
    assert reports == [("open databases", 0)] * 2
    assert store.list_runs() == []  # the parent's store reopened


def test_shards_cover_every_attempt_once_whatever_the_others_stored_before_one_starts() -> None:
    """A fast worker (cache hits) can store its half before the other reads what is done: the shards must not
    move with that, or examples fall between them."""
    from evals.run.runner import attempts_to_do
    from evals.types import Sample

    samples = [Sample(id=f"ex{i}", fields={}, reference=None, line=i + 1) for i in range(10)]
    first = attempts_to_do(samples, 2, set(), (0, 2))
    after_first = {(s.id, a) for s, a in first}  # worker 1 finished before worker 2 looked
    second = attempts_to_do(samples, 2, after_first, (1, 2))
    assert sorted((s.id, a) for s, a in first + second) == sorted((s.id, a) for a in (1, 2) for s in samples)
    assert attempts_to_do(samples, 2, {("ex1", 1)}, (1, 2))[0][0].id == "ex3"  # a resume skips what is done
