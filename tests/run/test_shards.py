"""`evals run TASK --shard I/N --run-group NAME`: N processes (machines, in CI) split one run's examples by
position, writing to one PostgreSQL store: every example stored once, the run settled once, by the last shard
to report; a shard killed with SIGKILL leaves the run running, and `evals run --resume` finishes its share."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from typer.testing import CliRunner

from evals.cli import app
from evals.run.store import Store
from tests.conftest import qa_rows
from tests.providers.test_providers_api import qa_answer
from tests.standin_server import StandinProcess

N = 40


def shard(folder, i: int, env: dict[str, str], group: str = "nightly-1") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "evals", "run", str(folder), "--no-cache", "--shard", f"{i}/4",
                             "--run-group", group, "--progress", "plain"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def setting(postgres_url, make_task, tmp_path, server):
    folder = make_task(rows=qa_rows(N), models=[{"spec": "openai:gpt-4o-mini", "base_url": server.base_url,
                                                 "concurrency": 2}])
    return folder, {**os.environ, "EVALS_STORE": postgres_url, "EVALS_CACHE_DIR": str(tmp_path / "cache")}


def stored(url: str) -> list[tuple[str, int]]:
    return [tuple(r) for r in Store(url).database.rows("SELECT example_id, attempt FROM results")]


def test_four_shards_store_every_example_once_and_settle_the_run_once(postgres_url, make_task, tmp_path) -> None:
    with StandinProcess(qa_answer, latency=0.02) as server:
        folder, env = setting(postgres_url, make_task, tmp_path, server)
        procs = [shard(folder, i, env) for i in range(1, 5)]
        outputs = [p.communicate(timeout=180)[0] for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, outputs
        stats = server.stats()
    assert stats["completed"] == N and set(stats["completed_by_prompt"].values()) == {1}  # each example asked once
    store = Store(postgres_url)
    [run] = store.list_runs()
    assert (run.status, run.n_samples, run.n_done, run.n_errors, run.served_calls) == ("completed", N, N, 0, N)
    keys = stored(postgres_url)
    assert len(keys) == len(set(keys)) == N
    assert sum("settled completed: every one of its 4 shards has reported" in o for o in outputs) == 1, outputs
    assert store.database.rows("SELECT COUNT(*) FROM run_shards WHERE run_id = ?", (run.id,)) == [(4,)]


def test_a_shard_killed_is_finished_by_resume(postgres_url, make_task, tmp_path) -> None:
    with StandinProcess(qa_answer, latency=0.3) as server:
        folder, env = setting(postgres_url, make_task, tmp_path, server)
        procs = [shard(folder, i, env) for i in range(1, 5)]
        deadline = time.monotonic() + 60
        while len(stored(postgres_url)) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        procs[1].send_signal(signal.SIGKILL)  # shard 2/4, mid-way: no chance to report
        outputs = [p.communicate(timeout=180)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, -signal.SIGKILL, 0, 0], outputs
        [run] = Store(postgres_url).list_runs()
        assert run.status == "running" and run.n_done < N  # not settled: one shard never reported
        assert not any("settled" in o for o in outputs)
        resumed = CliRunner().invoke(app, ["run", "--resume", run.id, "--no-cache", "--progress", "none"],
                                     env={"EVALS_STORE": postgres_url})
        assert resumed.exit_code == 0, resumed.output
    [run] = Store(postgres_url).list_runs()
    keys = stored(postgres_url)
    assert (run.status, run.n_done) == ("completed", N) and len(keys) == len(set(keys)) == N


def test_shard_flags_are_checked_before_anything_runs(make_task) -> None:
    from tests.conftest import assert_refused

    folder = str(make_task())
    for args, where in ((["--shard", "5/4", "--run-group", "g"], "field '--shard'"),
                        (["--shard", "two", "--run-group", "g"], "field '--shard'"),
                        (["--shard", "1/2"], "field '--run-group'"),
                        (["--run-group", "g"], "field '--shard'"),
                        (["--shard", "1/2", "--run-group", "g", "--workers", "2"], "field '--shard'")):
        assert_refused(CliRunner().invoke(app, ["run", folder, *args]), where)


def test_shards_of_another_task_cannot_join_a_group(make_task, tmp_path) -> None:
    store = str(tmp_path / "s.db")  # sharding works on a SQLite store too (machines sharing a file system)
    first = CliRunner().invoke(app, ["run", str(make_task(rows=qa_rows(6))), "--shard", "1/2", "--run-group", "g",
                                     "--store", store, "--progress", "plain"])
    assert first.exit_code == 0 and "settled" not in first.output, first.output
    second = CliRunner().invoke(app, ["run", str(make_task(rows=qa_rows(6))), "--shard", "2/2", "--run-group", "g",
                                      "--store", store, "--progress", "plain"])
    assert second.exit_code == 0 and "settled completed" in second.output, second.output
    other = CliRunner().invoke(app, ["run", str(make_task(rows=qa_rows(5))), "--shard", "1/2", "--run-group", "g",
                                     "--store", store])
    assert other.exit_code == 2 and "of another task, golden set or repeats" in other.stderr
    wrong_n = CliRunner().invoke(app, ["run", str(make_task(rows=qa_rows(6))), "--shard", "1/3", "--run-group", "g",
                                       "--store", store])
    assert wrong_n.exit_code == 2 and "started with 2 shards, not 3" in wrong_n.stderr
    [run] = Store(store).list_runs()
    assert (run.status, run.n_done) == ("completed", 6)
