"""The machine's faults: a store that fills up mid-run, a cache that cannot be opened. One clear line,
exit 2, no traceback, what is safe and how to resume; nothing already stored is lost."""

from __future__ import annotations

import json
import sqlite3

from typer.testing import CliRunner

from evals.cli import app
from evals.run.store import Store
from tests.conftest import qa_rows

N = 40


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_a_full_disk_mid_run_says_what_is_safe_and_the_run_resumes(make_task, tmp_path, monkeypatch) -> None:
    folder = make_task(rows=qa_rows(N), models=[{"spec": "fake:slow", "concurrency": 4,
                                                 "options": {"responses": ["{}"], "latency_s": 0.01}}])
    store = tmp_path / "s.db"
    real = Store.add_result
    written = []

    def filling_up(self, run_id, result):  # the disk fills after 12 results, as a real one would
        if len(written) >= 12:
            raise self._db.failure("write", sqlite3.OperationalError("database or disk is full"))
        written.append(result.sample.id)
        real(self, run_id, result)

    monkeypatch.setattr(Store, "add_result", filling_up)
    result = invoke("run", folder, "--store", store, "--progress", "none")
    assert result.exit_code == 2, result.output
    [line] = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert line.startswith(f"error: {store}: could not write the run store: database or disk is full.")
    assert "12 result(s) of run" in line and "answer(s) already paid for could not be written" in line
    assert "Traceback" not in result.output
    run_id = line.split("evals run --resume ")[1].split("`")[0]
    monkeypatch.setattr(Store, "add_result", real)  # space is back
    record = Store(store).get_run(run_id)
    assert (record.status, record.n_done) == ("interrupted", 12)
    resumed = invoke("run", "--resume", run_id, "--store", store, "--progress", "none", "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)[0]["done"] == N and Store(store).get_run(run_id).status == "completed"


def test_a_cache_that_cannot_be_opened_is_one_line_with_the_way_out(make_task, tmp_path) -> None:
    folder = make_task()
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    result = invoke("run", folder, "--store", tmp_path / "s.db", "--cache-path", blocker / "responses.db",
                    "--progress", "none")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{blocker / 'responses.db'}: could not open the response cache" in result.stderr
    assert "--no-cache" in result.stderr


def test_a_full_disk_with_two_models_is_still_one_line(make_task, tmp_path, monkeypatch) -> None:
    models = [{"spec": f"fake:m{i}", "concurrency": 2, "options": {"responses": ["{}"], "latency_s": 0.01}}
              for i in range(2)]
    folder = make_task(rows=qa_rows(N), models=models)
    real = Store.add_result
    count = []

    def filling_up(self, run_id, result):
        count.append(1)
        if len(count) > 10:
            raise self._db.failure("write", sqlite3.OperationalError("database or disk is full"))
        real(self, run_id, result)

    monkeypatch.setattr(Store, "add_result", filling_up)
    result = invoke("run", folder, "--store", tmp_path / "s.db", "--progress", "none")
    assert result.exit_code == 2, result.output
    assert len([ln for ln in result.stderr.splitlines() if ln.strip()]) == 1, result.stderr
    assert "never retrieved" not in result.output and "Traceback" not in result.output
