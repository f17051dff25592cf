"""The store on a PostgreSQL server (a throwaway cluster, tests/postgres_server.py): every command that takes
--store reads and writes it, writers on several connections store a result once, --workers runs on it, and an
unreachable server, wrong credentials or a newer layout are one line naming the host, never the password."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from evals.cli import app
from evals.run.store import Store
from evals.types import Completion, ExampleResult, Sample, Score
from tests.conftest import qa_rows
from tests.providers.test_providers_api import qa_answer
from tests.standin_server import StandinProcess

try:
    import psycopg
except ImportError:  # every test here asks for the cluster first, which says what to install (fails in CI)
    psycopg = None


def invoke(*args: object, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def one_line(result, *expected: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    [line] = result.stderr.strip().splitlines()
    assert "Traceback" not in result.output and all(e in line for e in expected), line
    return line


def test_every_store_command_works_on_postgresql(postgres_url, make_task, monkeypatch, tmp_path) -> None:
    """run, runs, show, compare, baseline, check, history, route and the viewer, with the store named by
    EVALS_STORE alone; the password appears in no output, manifest or page."""
    monkeypatch.setenv("EVALS_STORE", postgres_url)
    password = psycopg.conninfo.conninfo_to_dict(postgres_url)["password"]
    folder = make_task(rows=qa_rows(12), models=["fake:echo", "fake:scripted"])
    ran = invoke("run", folder, "--no-progress", "--json")
    assert ran.exit_code == 0, ran.output
    a, b = (s["run_id"] for s in json.loads(ran.stdout))
    outputs = [ran.output]
    for args in (("runs", "--json"), ("show", a), ("compare", a, b), ("baseline", "set", folder, a),
                 ("baseline", "list"), ("check", folder, "--no-progress"), ("history", folder),
                 ("compare", a, b, "--json")):
        result = invoke(*args)
        assert result.exit_code in (0, 1), (args, result.output)  # check: 1 when the rerun regressed
        outputs.append(result.output)
    assert {r["id"] for r in json.loads(outputs[1])} >= {a, b} and "ex000" in outputs[2]
    store = Store(postgres_url)
    assert store.baselines()[0].run_id == a and len(store.checks("qa")) == 1
    assert all(password not in text for text in outputs)
    assert all(password not in json.dumps(r.manifest) for r in store.list_runs(limit=None))
    from evals.view.app import create_app

    client = TestClient(create_app(postgres_url), base_url="http://127.0.0.1")
    for page in ("/", f"/runs/{a}", f"/runs/{a}/examples/ex001", f"/compare/{a}/{b}", "/checks"):
        response = client.get(page)
        assert response.status_code == 200 and password not in response.text, page
    assert "ex001" in client.get(f"/runs/{a}").text and "127.0.0.1" in client.get("/").text


def test_one_result_per_run_example_and_attempt_across_connections(postgres_url) -> None:
    """Eight writers on their own connections store the same attempt: one row, by the table's key; the last
    write is the one kept, as SQLite's INSERT OR REPLACE does."""
    run_id = Store(postgres_url).create_run("qa", "fake:x", 1, {"golden": {"hash": "h", "n": 1}})

    def write(i: int) -> None:
        store = Store(postgres_url)
        for _ in range(20):
            store.add_result(run_id, ExampleResult(Sample("a", {}, None), Completion(text=f"w{i}"),
                                                   {"m": Score(1.0)}, True))
        store.close()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 1
        with pytest.raises(psycopg.errors.UniqueViolation):  # the key is the table's, not the store's care
            db.execute("INSERT INTO results (run_id, example_id, passed, scores, completed_at, attempt)"
                       " SELECT run_id, example_id, passed, scores, completed_at, attempt FROM results")


def test_workers_run_on_postgresql(postgres_url, make_task, tmp_path) -> None:
    with StandinProcess(qa_answer, latency=0.02) as server:
        folder = make_task(rows=qa_rows(30), models=[{"spec": "openai:gpt-4o-mini", "base_url": server.base_url,
                                                      "concurrency": 6}])
        env = {**os.environ, "EVALS_STORE": postgres_url, "EVALS_CACHE_DIR": str(tmp_path / "cache")}
        done = subprocess.run([sys.executable, "-m", "evals", "run", str(folder), "--no-cache", "--workers", "2",
                               "--json"], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert server.stats()["completed"] == 30
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT status, served_calls FROM runs").fetchall() == [("completed", 30)]
        assert db.execute("SELECT COUNT(DISTINCT example_id), COUNT(*) FROM results").fetchone() == (30, 30)


def test_a_server_lost_mid_run_is_one_line_and_resume_finishes_the_run(postgres_cluster, make_task,
                                                                        tmp_path) -> None:
    from tests.postgres_server import Cluster

    cluster = Cluster()  # its own: this one is crashed on purpose
    try:
        url = cluster.new_database()
        with StandinProcess(qa_answer, latency=0.3) as server:
            folder = make_task(rows=qa_rows(40), models=[{"spec": "openai:gpt-4o-mini", "base_url": server.base_url,
                                                          "concurrency": 2}])
            env = {**os.environ, "EVALS_STORE": url, "EVALS_CACHE_DIR": str(tmp_path / "cache")}
            proc = subprocess.Popen([sys.executable, "-m", "evals", "run", str(folder), "--no-cache", "--progress",
                                     "none"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and Store(url).database.rows("SELECT COUNT(*) FROM results")[0][0] < 4:
                time.sleep(0.05)
            cluster.halt()  # the server crashes mid-run
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 2, (out, err)
            [line] = err.strip().splitlines()
            assert "Traceback" not in err and f"127.0.0.1:{cluster.port}" in line and cluster.password not in line
            [run_id] = re.findall(r"evals run --resume (\w+)", line)
            cluster.start()
            kept = Store(url).database.rows("SELECT COUNT(*) FROM results")[0][0]
            assert kept >= 4  # what was stored before the crash is still there
            resumed = invoke("run", "--resume", run_id, "--no-cache", "--progress", "none", env=env)
            assert resumed.exit_code == 0, resumed.output
        [run] = Store(url).list_runs()
        assert (run.id, run.status, run.n_done, run.n_errors) == (run_id, "completed", 40, 0)
        keys = Store(url).database.rows("SELECT example_id, attempt FROM results")
        assert len(keys) == len(set(keys)) == 40
    finally:
        cluster.stop()


def test_an_unreachable_server_is_one_line_naming_the_host(postgres_cluster) -> None:
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    line = one_line(invoke("runs", "--store", f"postgresql://evals:hunter2secret@127.0.0.1:{port}/x"),
                    f"127.0.0.1:{port}", "could not connect to the run store")
    assert "hunter2secret" not in line


def test_wrong_credentials_are_one_line_without_the_password(postgres_cluster) -> None:
    url = postgres_cluster.url(password="not-the-password-42")
    line = one_line(invoke("runs", "--store", url), f"127.0.0.1:{postgres_cluster.port}", "password authentication")
    assert "not-the-password-42" not in line
    runs = invoke("runs", "--json", env={"EVALS_STORE": url})  # the same through EVALS_STORE
    assert runs.exit_code == 2 and "not-the-password-42" not in runs.output


def test_a_store_from_a_newer_evals_is_refused(store_location) -> None:
    Store(store_location).close()
    if "://" in store_location:
        with psycopg.connect(store_location, autocommit=True) as db:
            db.execute("UPDATE evals_schema SET version = 99")
    else:
        with sqlite3.connect(store_location) as db:
            db.execute("PRAGMA user_version = 99")
    line = one_line(invoke("runs", "--store", store_location), "written by a newer evals version (store layout 99")
    if "://" in store_location:
        assert "127.0.0.1" in line and psycopg.conninfo.conninfo_to_dict(store_location)["password"] not in line
    with pytest.raises(Exception, match="newer evals"):
        Store(store_location, readonly=True)


def test_any_text_round_trips_on_both_backends(store_location) -> None:
    """PostgreSQL's text holds no NUL, SQLite's does: an answer with one (or with the escape's own mark) reads back
    as it was written."""
    store = Store(store_location)
    run_id = store.create_run("qa", "fake:x", 1, {"golden": {"hash": "h", "n": 1}})
    text = "a\x00b \uffff0 \uffff1 \uffff c\x00"
    store.add_result(run_id, ExampleResult(Sample("a", {"q": text}, None), Completion(text=text), {}, False))
    df = store.results_frame(run_id)
    assert df["output"].tolist() == [text] and df["input"].tolist() == [{"q": text}]


def table_rows(location: str) -> dict[str, list[tuple]]:
    from evals.run.store_copy import TABLES

    db = Store(location, readonly=True).database
    return {t: sorted(map(tuple, db.rows(f"SELECT {', '.join(db.columns(t))} FROM {t}")), key=repr)
            for t in TABLES if t in db.tables()}


def test_store_copy_moves_every_table_both_ways(postgres_url, make_task, tmp_path) -> None:
    sqlite_store, back = str(tmp_path / "local.db"), str(tmp_path / "back.db")
    folder = make_task(rows=qa_rows(8), models=["fake:echo"])
    run_id = json.loads(invoke("run", folder, "--store", sqlite_store, "--no-progress", "--json").stdout)[0]["run_id"]
    assert invoke("baseline", "set", folder, run_id, "--store", sqlite_store).exit_code == 0
    assert invoke("check", folder, "--store", sqlite_store, "--no-progress").exit_code in (0, 1)
    local = Store(sqlite_store)
    local.add_label(run_id, "ex001", "wrong", "a \x00 in a comment")
    local.close()

    there = invoke("store", "copy", sqlite_store, postgres_url)
    assert there.exit_code == 0, there.output
    assert "results: 16 row(s)" in there.stdout and "every count checked" in there.stdout  # the run and the check's
    assert psycopg.conninfo.conninfo_to_dict(postgres_url)["password"] not in there.output
    assert table_rows(postgres_url) == table_rows(sqlite_store)
    assert invoke("store", "copy", postgres_url, back).exit_code == 0
    assert table_rows(back) == table_rows(sqlite_store)
    copied = Store(postgres_url)
    assert copied.add_label(run_id, "ex002", "right").id == 2  # ids continue after the copied ones
    again = invoke("store", "copy", sqlite_store, postgres_url)
    one_line(again, "already holds rows")


def test_a_metric_naming_a_store_url_records_it_without_the_password(make_task) -> None:
    """A pairwise judge's `store: postgresql://user:password@...` is recorded as user@host: the password stays
    out of the manifest (a resume then takes it from PGPASSWORD or ~/.pgpass)."""
    from evals.data.tasks import load_task
    from evals.run.manifest import build_manifest, without_passwords

    url = "postgresql://team:s3cret-pw@db.internal:5432/evals"
    assert without_passwords({"store": url, "n": [url, 3]}) == {
        "store": "postgresql://team@db.internal:5432/evals", "n": ["postgresql://team@db.internal:5432/evals", 3]}
    folder = make_task(metrics=[{"name": "json_valid"}, {"name": "pairwise_judge", "judge": "fake:judge",
                                                         "against": "run:abcd", "store": url}],
                       **{"pass": {"json_valid": 1}})
    task = load_task(str(folder))
    manifest = build_manifest(task, task.models[0], "fake:scripted", "h", 6)
    assert "s3cret-pw" not in json.dumps(manifest) and "team@db.internal" in json.dumps(manifest)
