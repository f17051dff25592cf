"""`evals optimize` on the triage task of the tests (tests/triage_standin.py) against the stand-in API: the
seed's and the winner's golden match rates, their paired interval, the search's calls and the wall time.

The stand-in model is right on billing tickets always and on the others only with a demo of their label or the
stand-in proposer's hint in the system prompt, so the figures say what the search found, not how good a model is.

    .venv/bin/python bench/optimize_triage.py --golden 60 --proposer
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.standin_server import StandinProcess  # noqa: E402
from tests.triage_standin import TriageModel, write_task  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=100)
    parser.add_argument("--golden", type=int, default=60)
    parser.add_argument("--proposer", action="store_true", help="add rewrites by the stand-in proposer (gepa)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "triage"
        with StandinProcess(TriageModel(folder / "train.jsonl", folder / "golden.jsonl")) as server:
            write_task(folder, server.base_url, n_train=args.train, n_golden=args.golden)
            env = {**os.environ, "EVALS_CACHE_DIR": f"{tmp}/cache", "OPENAI_BASE_URL": server.base_url,
                   "PYTHONPATH": str(ROOT)}
            command = [sys.executable, "-m", "evals", "optimize", str(folder), "--store", f"{tmp}/s.db", "--json",
                       "--no-progress", *(["--proposer", "openai:gpt-4o"] if args.proposer else [])]
            start = time.perf_counter()
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            wall = time.perf_counter() - start
            requests = server.stats()["completed"]
    out = json.loads(done.stdout)
    g = out["golden"]
    print(f"train {args.train} ({out['split']}), golden {g['n']}; candidates {len(out['candidates'])}; "
          f"winner {out['winner']}")
    print(f"golden: seed {g['seed']['matches']}/{g['n']}, winner {g['winner']['matches']}/{g['n']}, paired "
          f"{g['paired'][0] * 100:+.1f} points (95% CI {g['paired'][1] * 100:+.1f} to {g['paired'][2] * 100:+.1f})")
    print("dev: " + ", ".join(f"{r['name']} {r['matches']}/{r['n']} ({r['input_tokens']:.0f} tok)"
                              + (" winner" if r["winner"] else " tied" if r["tied"] else "")
                              for r in out["candidates"]))
    print(f"search calls {out['search_calls']} (${out['search_spent_usd']:.4f}), requests in all {requests}, "
          f"wall {wall:.1f} s")


if __name__ == "__main__":
    main()
