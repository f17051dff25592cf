"""Repeated attempts through the real SDK path: seeds per attempt, pass@k / pass^k / flaky, a cache entry
per attempt, and a killed repeated run that resumes without paying for a stored attempt again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evals.analyse.repeats import by_example
from evals.analyse.summary import summarize, summarize_stored
from evals.cli import app
from evals.run.store import Store, load_run
from tests.conftest import answer_for, qa_rows
from tests.standin_server import StandinServer, last_user_message

# Example i is answered right on these attempts (attempt 1 carries no seed, attempt a > 1 carries seed a - 1).
RIGHT_ON = {0: {1, 2, 3}, 1: {1}, 2: set(), 3: {1, 2}, 4: {2, 3}, 5: {1, 2, 3}}


def attempt_of(body: dict) -> int:
    return 1 if body.get("seed") is None else body["seed"] + 1


def scripted(body: dict) -> str:
    i = int(last_user_message(body).split()[-1])
    return answer_for(i) if attempt_of(body) in RIGHT_ON[i] else '{"labels": ["wrong"]}'


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_repeats_give_pass_at_k_pass_all_k_and_the_flaky_examples(make_task, tmp_path, monkeypatch) -> None:
    folder = make_task(rows=qa_rows(6), models=["openai:gpt-4o-mini"])
    store = tmp_path / "runs.db"
    with StandinServer(scripted) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        args = ["run", folder, "--store", store, "--repeats", "3", "--no-progress", "--json",
                "--cache-path", tmp_path / "cache.db"]
        first = invoke(*args)
        assert first.exit_code == 0, first.output
        assert server.counts.received == 18
        again = invoke(*args)  # every attempt has its own cache entry: nothing asked twice
        assert server.counts.received == 18
    [summary] = json.loads(first.stdout)
    assert (summary["repeats"], summary["matches"], summary["done"]) == (3, 11, 18)
    assert summary["match_rate"] == pytest.approx(sum(len(v) for v in RIGHT_ON.values()) / 18)
    assert (summary["pass_at_k"], summary["pass_all_k"]) == (5, 2)
    assert summary["flaky"] == ["ex001", "ex003", "ex004"]
    assert summary["matches_text"].startswith("11/18 attempts (61%, 95% CI ") and \
        "pass@3 5/6, pass^3 2/6, 3 flaky" in summary["matches_text"]
    assert json.loads(again.stdout)[0]["matches"] == 11
    shown = invoke("show", summary["run_id"], "--store", store)
    assert "flaky (passed some of their 3 attempts, failed others): ex001, ex003, ex004" in shown.output
    assert "ex002 #1" in shown.output  # each attempt its own row
    df = load_run(summary["run_id"], store)
    assert sorted(df["attempt"].unique()) == [1, 2, 3] and len(df) == 18
    per_example = by_example(df).set_index("example_id")["passed"]
    assert per_example.to_dict() == {f"ex{i:03d}": len(RIGHT_ON[i]) / 3 for i in range(6)}
    assert summarize(df) == summarize_stored(summary["run_id"], Store(store))  # a frame's rows, the store's stream


def test_repeats_from_task_yaml_per_model_and_refused_when_not_a_count(make_task, tmp_path) -> None:
    from tests.conftest import assert_refused_at_load

    folder = make_task(repeats=2, models=[{"spec": "fake:scripted", "repeats": 3}, "fake:echo"])
    store = tmp_path / "runs.db"
    result = invoke("run", folder, "--store", store, "--no-progress", "--json")
    assert result.exit_code == 0, result.output
    assert [s["done"] for s in json.loads(result.stdout)] == [18, 12]  # 6 examples x 3, then the task's 2
    assert_refused_at_load(make_task(repeats=0), "repeats", "1 or more")
    assert_refused_at_load(make_task(models=[{"spec": "fake:x", "repeats": "many"}]), "models.0.repeats", "whole")
    bad = invoke("run", folder, "--repeats", "0")
    assert bad.exit_code == 2 and "--repeats" in bad.output


def test_a_killed_repeated_run_resumes_without_paying_for_a_stored_attempt_again(make_task, tmp_path) -> None:
    asked: Counter[tuple[str, int]] = Counter()
    lock = threading.Lock()

    def answer(body: dict) -> str:
        with lock:
            asked[(last_user_message(body), attempt_of(body))] += 1
        return answer_for(int(last_user_message(body).split()[-1]))

    n, k = 10, 3
    with StandinServer(answer, latency=0.15) as server:
        folder = make_task(rows=qa_rows(n), models=[{"spec": "openai:gpt-4o-mini", "base_url": server.base_url,
                                                      "concurrency": 2}])
        db = tmp_path / "runs.db"
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        proc = subprocess.Popen([sys.executable, "-m", "evals", "run", str(folder), "--store", str(db),
                                 "--repeats", str(k), "--no-progress", "--no-cache"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not (db.exists() and (runs := Store(db).list_runs()) and runs[0].n_done >= 12):
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            proc.kill()
        run_id = runs[0].id
        stored = {(f"question {int(e[2:])}", a) for e, a in Store(db).done(run_id)}
        assert 12 <= len(stored) < n * k
        resumed = invoke("run", "--resume", run_id, "--store", db, "--no-progress", "--no-cache")
        assert resumed.exit_code == 0, resumed.output
    df = load_run(run_id, db)
    assert len(df) == n * k and df["passed"].all()
    assert sorted(Counter(df["example_id"]).values()) == [k] * n
    assert all(asked[key] == 1 for key in stored)  # stored before the kill: never asked again
    assert sum(asked.values()) - n * k <= 2  # only the calls in flight at the kill (concurrency 2) were repeated


def test_a_resume_keeps_its_repeats_and_refuses_a_new_count(make_task, tmp_path) -> None:
    result = invoke("run", "--resume", "abcd", "--repeats", "2", "--store", tmp_path / "s.db")
    assert result.exit_code == 2 and "keeps the repeats it started with" in result.output
