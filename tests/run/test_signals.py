"""A cancelled CI job (SIGTERM) or Ctrl-C (SIGINT) mid-run, with real signals on a real process: no new
call starts, answers in flight are stored, the run is marked interrupted, the resume command is printed,
and the resume finishes without paying twice for anything."""

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

N = 60


def stored(db) -> int:
    try:
        return sqlite3.connect(db).execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_run_stores_what_arrived_and_the_run_resumes(make_task, tmp_path, sig, code) -> None:
    with StandinProcess(qa_answer, latency=0.5) as server:
        folder = make_task(rows=qa_rows(N), models=[{"spec": "openai:gpt-4o-mini", "base_url": server.base_url,
                                                     "concurrency": 6}])
        db = tmp_path / "s.db"
        env = {**os.environ, "EVALS_STORE": str(db), "EVALS_CACHE_DIR": str(tmp_path / "cache")}
        args = [sys.executable, "-m", "evals", "run", str(folder), "--no-cache", "--progress", "plain"]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while stored(db) < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(sig)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == code, err
        assert time.monotonic() - sent < 5  # in-flight calls (0.5 s each) finished well inside the grace
        assert "Traceback" not in err and f"interrupted by {signal.Signals(sig).name}" in err
        run_id = err.split("evals run --resume ")[1].split("`")[0]
        status, = sqlite3.connect(db).execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        assert status == "interrupted"
        paid = server.stats()["completed"]
        assert paid == stored(db) < N  # every answer that arrived was stored: nothing paid is lost
        resumed = subprocess.run([sys.executable, "-m", "evals", "run", "--resume", run_id, "--no-cache",
                                  "--progress", "none"], env=env, capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        stats = server.stats()
        assert stored(db) == N and stats["completed"] == N  # the rest, once each
        assert set(stats["completed_by_prompt"].values()) == {1}
