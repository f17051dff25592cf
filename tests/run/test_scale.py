"""A large run stays light: the resume query and the run's summary do not read every answer into memory."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc

import pytest

from evals.analyse.summary import summarize, summarize_stored
from evals.run import schema
from evals.run.store import Store, load_run

N = 20_000
ANSWER = "x" * 2000  # 2 KB answers: 40 MB of output text in the store, as much again in inputs and references


@pytest.fixture(scope="module")
def big_run(tmp_path_factory) -> tuple[Store, str]:
    store = Store(tmp_path_factory.mktemp("scale") / "big.db")
    run = store.create_run("t", "fake:x", N, {"golden": {"hash": "h", "n": N}})
    scores = json.dumps({"json_valid": {"value": 1.0, "explanation": "", "error": None, "details": {}, "usage": None}})
    rows = [(run, f"ex{i:05d}", i, json.dumps({"q": ANSWER}), json.dumps(ANSWER), ANSWER, None, i % 2, scores, 10, 5,
             0.2, 0.001, 0, "m", "stop", "2026-12-01", None, 0, 0, 0, None, 1, None) for i in range(N)]
    store.connection.execute("BEGIN")
    store.connection.executemany(schema.INSERT_RESULT, rows)
    store.connection.execute("COMMIT")
    store.set_status(run, "completed")
    return store, run


def peak_mb(work) -> tuple[float, object]:
    tracemalloc.start()
    try:
        result = work()
        return tracemalloc.get_traced_memory()[1] / 2**20, result
    finally:
        tracemalloc.stop()


def test_resume_reads_ids_not_results(big_run) -> None:
    store, run = big_run
    peak, done = peak_mb(lambda: store.done(run))
    assert len(done) == N
    assert peak < 10  # 20,000 (id, attempt) pairs; the results themselves are about 120 MB


def test_the_summary_streams_the_results_and_reads_no_answers(big_run) -> None:
    store, run = big_run
    peak, summary = peak_mb(lambda: summarize_stored(run, store))
    assert (summary.n, summary.matches) == (N, N // 2)
    frame, from_frame = peak_mb(lambda: summarize(load_run(run, store, texts=False)))
    full, _ = peak_mb(lambda: summarize(load_run(run, store)))
    assert from_frame == summary
    assert peak < 10 < frame < full  # no frame of the run; the texts (120 MB) never read for a summary


def test_a_run_summary_imports_neither_pandas_nor_numpy(big_run) -> None:
    store, run = big_run
    code = ("import sys; from evals.analyse.summary import summarize_stored; from evals.report.terminal import "
            "summary_table; from evals.run.store import Store; "
            f"s = summarize_stored({run!r}, Store({str(store.path)!r})); summary_table([s]); "
            "print(s.matches, sorted({'pandas', 'numpy'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split(maxsplit=1) == [str(N // 2), "[]\n"]
