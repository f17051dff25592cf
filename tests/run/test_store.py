"""The store round trip: what the runner writes is what load_run and the CLI read back."""

from __future__ import annotations

import json
import re
import sqlite3

import pandas as pd
import pytest
from typer.testing import CliRunner

from evals import load_run
from evals.analyse.summary import summarize
from evals.cli import app
from evals.run.store import Store
from evals.types import Completion, ExampleResult, Sample, Score


def test_round_trip(store_location) -> None:
    store = Store(store_location)
    run_id = store.create_run("qa", "fake:x", 2, {"golden": {"hash": "abc", "n": 2}})
    sample = Sample("a", {"question": "q?"}, {"labels": ["l1"]}, line=1)
    completion = Completion(text='{"labels": ["l1"]}', input_tokens=12, output_tokens=5, latency_s=0.25,
                            cost_usd=0.001, model_version="fake-1", finish_reason="stop")
    store.add_result(run_id, ExampleResult(sample, completion, {"f1": Score(1.0, details={"p": 1})}, True))
    failed = Sample("b", {"question": "?"}, {"labels": []}, line=2)
    store.add_result(run_id, ExampleResult(failed, Completion(text="", error="HTTP 500"), {}, False))
    store.set_status(run_id, "completed")

    df = load_run(run_id[:4], store_location)  # a unique prefix is enough
    assert df["example_id"].tolist() == ["a", "b"]
    row = df.iloc[0]
    assert (row["output"], row["input_tokens"], row["output_tokens"]) == ('{"labels": ["l1"]}', 12, 5)
    assert row["score.f1"] == 1.0 and row["scores"]["f1"]["details"] == {"p": 1}
    assert row["input"] == {"question": "q?"} and row["reference"] == {"labels": ["l1"]}
    assert df["passed"].tolist() == [True, False] and df.iloc[1]["error"] == "HTTP 500"
    assert df.attrs["manifest"]["golden"]["hash"] == "abc"
    outputs = load_run(run_id, store, texts=("output",))  # what a comparison reads
    assert outputs["output"].tolist() == df["output"].tolist() and not {"input", "reference"} & set(outputs.columns)
    assert not {"input", "reference", "output"} & set(load_run(run_id, store, texts=False).columns)
    record = store.get_run(run_id)
    assert (record.status, record.n_done, record.n_errors) == ("completed", 2, 1)
    assert store.done(run_id) == {("a", 1)}  # the failed example is run again on resume


def test_cli_lists_and_shows_runs(store_location, make_task) -> None:
    folder = make_task()
    db = store_location
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(folder), "--store", db, "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    [summary] = json.loads(result.stdout)
    assert summary["model"] == "fake:scripted" and summary["n"] == 6 and summary["matches"] == 0
    listed = json.loads(runner.invoke(app, ["runs", "--store", db, "--json"]).stdout)
    assert [r["id"] for r in listed] == [summary["run_id"]]
    shown = runner.invoke(app, ["show", summary["run_id"], "--store", db])
    assert shown.exit_code == 0 and "ex000" in shown.stdout
    missing = runner.invoke(app, ["show", "zzzz", "--store", db])
    assert missing.exit_code == 2 and "no run 'zzzz'" in missing.output


FIRST_RELEASE = """
CREATE TABLE runs (id TEXT PRIMARY KEY, task TEXT NOT NULL, model TEXT NOT NULL, status TEXT NOT NULL,
    n_samples INTEGER NOT NULL, created_at TEXT NOT NULL, finished_at TEXT, manifest TEXT NOT NULL);
CREATE TABLE results (run_id TEXT NOT NULL REFERENCES runs(id), example_id TEXT NOT NULL, line INTEGER,
    input TEXT, reference TEXT, output TEXT, error TEXT, passed INTEGER NOT NULL, scores TEXT NOT NULL,
    input_tokens INTEGER, output_tokens INTEGER, latency_s REAL, cost_usd REAL, cached INTEGER,
    model_version TEXT, finish_reason TEXT, completed_at TEXT NOT NULL, PRIMARY KEY (run_id, example_id));
"""


def test_an_older_store_gains_the_timing_columns_and_attempts_and_keeps_its_rows(tmp_path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(FIRST_RELEASE)
        db.execute("INSERT INTO runs VALUES ('r1', 'qa', 'fake:x', 'completed', 1, '2026-01-01', NULL, "
                   "'{\"golden\": {\"hash\": \"h\", \"n\": 1}}')")
        db.execute("INSERT INTO results VALUES ('r1', 'a', 1, '{}', 'null', 'out', NULL, 1, '{}', 10, 2, 0.5, 0.0, 0,"
                   " NULL, 'stop', '2026-01-01')")
    store = Store(path)
    df = load_run("r1", store)
    assert df.loc[0, "queue_s"] == 0 and df.loc[0, "cached_input_tokens"] == 0 and pd.isna(df.loc[0, "ttft_s"])
    assert summarize(df).latency_p50_s == 0.5 and summarize(df).calls_per_hour is None
    store.add_busy_time("r1", 2.0, 1, 4, "CPU: test (2 cores)")
    store.add_busy_time("r1", 2.0, 1, 4, "CPU: test (2 cores)")  # a resume adds to what the run had
    record = store.get_run("r1")
    assert (record.busy_s, record.served_calls, record.concurrency) == (4.0, 2, 4)
    assert summarize(load_run("r1", store)).calls_per_hour == pytest.approx(2 / 4 * 3600)
    # rebuilt keyed by attempt: the old row is attempt 1, and a second attempt of the same example fits beside it
    assert store.done("r1") == {("a", 1)}
    sample = Sample("a", {}, None)
    store.add_result("r1", ExampleResult(sample, Completion(text="again"), {}, False, attempt=2))
    assert store.done("r1") == {("a", 1), ("a", 2)} and Store(path).done("r1") == {("a", 1), ("a", 2)}


def test_show_prints_the_measured_throughput(store_location, make_task) -> None:
    folder = make_task(models=[{"spec": "fake:scripted", "options": {"latency_s": 0.02}}])
    db = store_location
    runner = CliRunner()
    [summary] = json.loads(runner.invoke(app, ["run", str(folder), "--store", db, "--no-progress", "--json"]).stdout)
    assert summary["calls_per_hour"] > 0 and summary["concurrency"] == 8 and summary["hardware"].startswith("CPU: ")
    shown = runner.invoke(app, ["show", summary["run_id"], "--store", db])
    assert re.search(r"throughput [\d,]+ calls/hour \([\d.]+ s busy\) at concurrency 8 on CPU: ", shown.stdout)

