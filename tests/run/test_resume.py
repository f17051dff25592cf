"""A run killed mid-way (SIGKILL, no chance to clean up) resumes without losing or re-paying examples."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from evals.cli import app
from evals.run.store import Store, load_run
from tests.conftest import qa_rows
from tests.providers.test_providers_api import qa_answer
from tests.standin_server import StandinServer

N = 24


def _wait_for_results(db: Path, at_least: int, proc: subprocess.Popen, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()}"
        if db.exists():
            runs = Store(db).list_runs()
            if runs and runs[0].n_done >= at_least:
                return runs[0].id
        time.sleep(0.05)
    raise AssertionError("no results appeared in the store")


def test_killed_run_resumes_without_losing_or_repaying_examples(make_task, tmp_path) -> None:
    with StandinServer(qa_answer, latency=0.15) as server:
        model = {"spec": "openai:gpt-4o-mini", "base_url": server.base_url, "concurrency": 2}
        folder = make_task(rows=qa_rows(N), models=[model])
        db = tmp_path / "runs.db"
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        proc = subprocess.Popen([sys.executable, "-m", "evals", "run", str(folder), "--store", str(db),
                                 "--no-progress", "--no-cache"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            run_id = _wait_for_results(db, 6, proc)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            proc.kill()
        stored_before = set(load_run(run_id, db)["example_id"])
        assert 6 <= len(stored_before) < N
        paid_before = sum(server.counts.completed_by_prompt.values())

        result = CliRunner().invoke(app, ["run", "--resume", run_id, "--store", str(db), "--no-progress",
                                          "--no-cache", "--json"])
        assert result.exit_code == 0, result.output

        df = load_run(run_id, db)
        assert sorted(df["example_id"]) == [r["id"] for r in qa_rows(N)]  # nothing lost, nothing doubled
        assert df["passed"].all() and df["error"].isna().all()
        assert Store(db).get_run(run_id).status == "completed"
        by_prompt = server.counts.completed_by_prompt
        stored_prompts = {f"question {int(i[2:])}" for i in stored_before}
        assert all(by_prompt[p] == 1 for p in stored_prompts)  # finished before the kill: never paid again
        # Only requests in flight at the moment of the kill (at most `concurrency`) were paid twice.
        assert sum(by_prompt.values()) - N <= 2
        assert sum(by_prompt.values()) > paid_before
