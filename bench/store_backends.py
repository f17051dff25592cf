"""The run store on PostgreSQL against SQLite, measured side by side in one run: `evals run` as a whole process
against the stand-in API (in its own process), then `evals show` and `evals compare` on a large stored run.

    .venv/bin/python bench/store_backends.py                       # 5,000 x c200, 3 alternating rounds; 50,000
    .venv/bin/python bench/store_backends.py --n 5000 --concurrency 200 --repeat 5 --views 50000

The PostgreSQL server is a throwaway cluster on this machine (tests/postgres_server.py: initdb, fsync off, over
TCP on 127.0.0.1), so its figures are the client's work plus a loopback round trip per write, not a network's.
Prints per backend: wall / ideal (N / concurrency x latency), the `evals run` process's CPU ms per result
(user + sys), the server's CPU ms per result (PostgreSQL's processes; SQLite has none: it writes from the
client), then the wall time of `show` and `compare` on a run of --views results (one run made on SQLite,
copied into PostgreSQL with `evals store copy`, so both hold the same rows). Medians of --repeat rounds, taken
in turn, each round's ratio in brackets.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.api_throughput import compile_evals, write_task  # noqa: E402  (the same synthetic task)
from bench.scale import EVALS, measured  # noqa: E402
from tests.postgres_server import Cluster, find_missing  # noqa: E402
from tests.standin_server import StandinProcess, fixed  # noqa: E402


def server_cpu_s(cluster: Cluster) -> float:
    """User + sys CPU seconds of the cluster's processes so far (the postmaster and every backend it forked)."""
    import psutil

    postmaster = psutil.Process(int((cluster.data / "postmaster.pid").read_text().split()[0]))
    total = 0.0
    for p in [postmaster, *postmaster.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


def run_once(folder: Path, store: str, n: int, concurrency: int, server: StandinProcess, tmp: Path,
             cluster: Cluster) -> dict[str, float]:
    env = dict(os.environ, OPENAI_BASE_URL=server.base_url, EVALS_STORE=store, EVALS_CACHE_DIR=str(tmp / "c"))
    env.pop("OPENAI_API_KEY", None)
    before = server_cpu_s(cluster)
    wall, cpu, _, out = measured([*EVALS, "run", str(folder), "-m", "openai:gpt-4o-mini", "--concurrency",
                                  str(concurrency), "--no-cache", "--progress", "none", "--json"], env)
    served = server_cpu_s(cluster) - before if store.startswith("postgresql") else 0.0
    [summary] = json.loads(out)
    if summary["done"] != n or summary["errors"]:
        raise SystemExit(f"incomplete run: {summary['done']}/{n}, {summary['errors']} errors")
    return {"wall": wall, "cpu_ms": cpu / n * 1000, "server_ms": served / n * 1000}


def views(stores: dict[str, str], n: int, server: StandinProcess, tmp: Path) -> dict[str, dict[str, float]]:
    """`show` and `compare` wall seconds per backend on one run of n results, made once on SQLite and copied."""
    folder = tmp / f"views-{n}"
    folder.mkdir()
    write_task(folder, n)
    env = dict(os.environ, OPENAI_BASE_URL=server.base_url, EVALS_STORE=stores["sqlite"],
               EVALS_CACHE_DIR=str(tmp / "c"))
    env.pop("OPENAI_API_KEY", None)
    _, _, _, out = measured([*EVALS, "run", str(folder), "-m", "openai:gpt-4o-mini", "--concurrency", "200",
                             "--no-cache", "--progress", "none", "--json"], env)
    run_id = json.loads(out)[0]["run_id"]
    copy_wall = measured([*EVALS, "store", "copy", stores["sqlite"], stores["postgresql"]], env)[0]
    print(f"  {n:,} results copied SQLite -> PostgreSQL by `evals store copy` in {copy_wall:.1f} s", flush=True)
    found = {}
    for name, store in stores.items():
        env["EVALS_STORE"] = store
        found[name] = {cmd: min(measured([*EVALS, cmd, run_id, *([run_id] if cmd == "compare" else [])], env)[0]
                                for _ in range(2)) for cmd in ("show", "compare")}
    return found


def main(args: argparse.Namespace) -> None:
    if missing := find_missing():
        raise SystemExit(missing)
    compile_evals()
    cluster = Cluster()
    try:
        with StandinProcess(fixed('{"labels": ["l0"]}'), latency=args.latency) as server, \
                tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            folder = tmp / "task"
            folder.mkdir()
            write_task(folder, args.n)
            ideal = args.n / args.concurrency * args.latency
            rows: dict[str, list[dict[str, float]]] = {"sqlite": [], "postgresql": []}
            for round_ in range(args.repeat):  # alternating, so a noisy moment touches both alike
                rows["sqlite"].append(run_once(folder, str(tmp / f"run-{round_}.db"), args.n, args.concurrency,
                                               server, tmp, cluster))
                rows["postgresql"].append(run_once(folder, cluster.new_database(), args.n, args.concurrency,
                                                   server, tmp, cluster))
            print(f"{args.n:,} examples x concurrency {args.concurrency}, {args.latency * 1000:.0f} ms latency "
                  f"(ideal {ideal:.1f} s):")
            print(f"  {'store':<11} {'wall/ideal':>10} {'client CPU ms/result':>21} {'server CPU ms/result':>21}")
            for name, ms in rows.items():
                m = {k: statistics.median(x[k] for x in ms) for k in ms[0]}
                each = ", ".join(f"{x['wall'] / ideal:.2f}" for x in ms)
                print(f"  {name:<11} {m['wall'] / ideal:>9.2f}x {m['cpu_ms']:>21.2f} {m['server_ms']:>21.2f}"
                      f"  ({each})", flush=True)
            if args.views:
                found = views({"sqlite": str(tmp / "views.db"), "postgresql": cluster.new_database()}, args.views,
                              server, tmp)
                print(f"`evals show` and `evals compare` on {args.views:,} results (best of 2):")
                for name, t in found.items():
                    print(f"  {name:<11} show {t['show']:.2f} s  compare {t['compare']:.2f} s")
    finally:
        cluster.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--repeat", type=int, default=3, help="rounds per backend, alternating; medians printed")
    parser.add_argument("--views", type=int, default=50_000, help="results of the run show/compare read (0: none)")
    main(parser.parse_args())
