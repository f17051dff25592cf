"""`evals run` with and without `--batch`, side by side in one session: cost, wall time, harness CPU and
HTTP requests for N examples against the stand-in API (tests/standin_server.py, another process).

    .venv/bin/python bench/batch_api.py --n 500 --latency 0.2 --concurrency 50 --batch-delay 5 --provider openai

The stand-in answers a plain call after `--latency` and ends a batch `--batch-delay` seconds after it is
created (a real batch takes minutes to hours: what is measured here is the price and the harness's own
work, not the provider's queue). Prints, per mode: wall seconds, user+sys CPU of `evals run` (start-up
included) per example, the run's cost from the store, and the requests the server received; then the
cost ratio batched / plain (the Batch API's discount is 50%).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.api_throughput import write_task  # noqa: E402  (the same synthetic task)
from bench.cli_startup import EVALS, timed  # noqa: E402
from tests.standin_server import StandinProcess, fixed  # noqa: E402

MODELS = {"openai": "openai:gpt-4o-mini", "anthropic": "anthropic:claude-haiku-4-5"}


def main(args: argparse.Namespace) -> None:
    with StandinProcess(fixed('{"labels": ["l0"]}'), latency=args.latency, batch_delay=args.batch_delay) as server, \
            tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        task = write_task(tmp, args.n)
        spec = json.loads((task / "task.yaml").read_text())
        spec["models"] = [{"spec": MODELS[args.provider], "base_url": server.base_url_for(args.provider),
                           "concurrency": args.concurrency, "options": {"batch_poll_s": args.poll}}]
        (task / "task.yaml").write_text(json.dumps(spec))
        rows = []
        for label, extra in (("plain", []), ("--batch", ["--batch"])):
            db = tmp / f"{label.strip('-')}.db"
            env = dict(os.environ, EVALS_STORE=str(db), EVALS_CACHE_DIR=str(tmp / "cache"))
            before = server.stats()
            wall, cpu = timed([*EVALS, "run", str(task), "--no-cache", "--no-progress", *extra], env, 0)
            after = server.stats()
            cost, passed = sqlite3.connect(db).execute("SELECT SUM(cost_usd), SUM(passed) FROM results").fetchone()
            requests = after["received"] - before["received"]
            batches = after["batches"]["created"] - before["batches"]["created"]
            polls = after["batches"]["polls"] - before["batches"]["polls"]
            rows.append((label, wall, cpu, cost, passed, requests, batches, polls))
        print(f"{args.n} examples, {args.provider}, plain calls {args.latency * 1000:.0f} ms at concurrency "
              f"{args.concurrency}; batches end {args.batch_delay:g} s after creation, polled every {args.poll:g} s")
        print(f"{'mode':8} {'wall s':>7} {'CPU ms/ex':>9} {'cost $':>10} {'matches':>7} {'calls':>6} "
              f"{'batches':>7} {'polls':>5}")
        for label, wall, cpu, cost, passed, requests, batches, polls in rows:
            print(f"{label:8} {wall:7.2f} {cpu / args.n * 1000:9.2f} {cost:10.6f} {passed:7d} {requests:6d} "
                  f"{batches:7d} {polls:5d}")
        print(f"cost batched / plain: {rows[1][3] / rows[0][3]:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--batch-delay", type=float, default=5.0)
    parser.add_argument("--poll", type=float, default=1.0)
    parser.add_argument("--provider", choices=sorted(MODELS), default="openai")
    main(parser.parse_args())
