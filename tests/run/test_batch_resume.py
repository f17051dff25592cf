"""A batched `evals run` killed with SIGKILL after its batch was created and before it ended: the resume
polls the same batch (its id is in the store), submits nothing again, and scores every example."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.conftest import qa_rows
from tests.providers.test_providers_api import qa_answer
from tests.standin_server import StandinProcess

N = 50


def stored_batches(db) -> list[tuple[str, int]]:
    """The batches the store knows were created (a row is written as `submitting` before the create call)."""
    try:
        return sqlite3.connect(db).execute("SELECT id, n_items FROM batches WHERE status = 'submitted'").fetchall()
    except sqlite3.Error:
        return []


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_batched_run_killed_mid_batch_resumes_from_the_stored_batch_ids(make_task, tmp_path, provider) -> None:
    with StandinProcess(qa_answer, batch_delay=4.0) as server:
        spec = {"openai": "openai:gpt-4o-mini", "anthropic": "anthropic:claude-haiku-4-5"}[provider]
        folder = make_task(rows=qa_rows(N), models=[{"spec": spec, "base_url": server.base_url_for(provider),
                                                     "options": {"batch_poll_s": 0.2}}])
        db = tmp_path / "s.db"
        env = {**os.environ, "EVALS_STORE": str(db), "EVALS_CACHE_DIR": str(tmp_path / "cache")}
        proc = subprocess.Popen([sys.executable, "-m", "evals", "run", str(folder), "--batch", "--no-cache",
                                 "--progress", "plain"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + 60
        while not stored_batches(db) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # no handler, no clean-up: the process is simply gone
        proc.communicate(timeout=30)
        [(batch_id, n_items)] = stored_batches(db)
        assert n_items == N
        stats = server.stats()["batches"]
        assert stats["created"] == 1 and not stats["completed_by_prompt"]  # killed before the batch ended
        run_id, = sqlite3.connect(db).execute("SELECT id FROM runs").fetchone()

        resumed = subprocess.run([sys.executable, "-m", "evals", "run", "--resume", run_id, "--no-cache",
                                  "--progress", "plain"], env=env, capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        stats = server.stats()["batches"]
        assert stats["created"] == 1  # the same batch was polled, no second one created
        assert stats["submitted_by_prompt"] == {f"question {i}": 1 for i in range(N)}  # each example once
        assert server.stats()["received"] == 0  # nor was anything called one by one
        rows = sqlite3.connect(db).execute("SELECT passed, cost_usd FROM results WHERE run_id = ?", (run_id,)).fetchall()
        assert len(rows) == N and all(passed for passed, _ in rows)
        assert [b for b, in sqlite3.connect(db).execute("SELECT DISTINCT batch_id FROM batch_items")] == [batch_id]
        assert f"{N} done, 0 failed" in resumed.stderr
