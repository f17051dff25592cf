"""bench/sdk_floor.py, the floor the start-up and scale benches print beside `evals run`, makes the calls it
claims: N chat completions through the openai SDK, as many in flight as asked, each answered."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.standin_server import StandinProcess, fixed

ROOT = Path(__file__).resolve().parents[2]


def test_the_sdk_floor_sends_every_request_once() -> None:
    with StandinProcess(fixed('{"labels": ["l0"]}'), latency=0.05) as server:
        done = subprocess.run([sys.executable, str(ROOT / "bench" / "sdk_floor.py"), "--n", "30", "--concurrency",
                               "10"], env={**os.environ, "OPENAI_BASE_URL": server.base_url}, capture_output=True,
                              text=True, timeout=120)
        stats = server.stats()
    assert done.returncode == 0, done.stderr
    assert stats["received"] == stats["completed"] == 30
    assert sorted(stats["completed_by_prompt"]) == sorted(f"question {i}" for i in range(30))
