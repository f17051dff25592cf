"""How `evals` grows with the golden set: `evals run` as a whole process on 500 to 100,000 examples against a
stand-in API in its own process, then `evals show` and `evals compare` on the stored run.

    .venv/bin/python bench/scale.py                                # 500, 5,000, 50,000 at concurrency 50 and 200
    .venv/bin/python bench/scale.py --sizes 5000 --concurrency 200
    .venv/bin/python bench/scale.py --with-100k                    # and 100,000
    .venv/bin/python bench/scale.py --workers 1,2                  # in one process, and over 2 (--workers)
    .venv/bin/python bench/scale.py --sizes 5000 --concurrency 200 --repeat 5   # medians of 5 alternating rounds

Prints per size, concurrency and worker count: wall / ideal (N / concurrency x latency), CPU ms per example
(user + sys of the `evals run` process and its workers), peak RSS (of the largest process: forked workers share
their start-up pages), the store's size, and the wall time of `show` and `compare`; and per size and
concurrency a row `sdk`: bench/sdk_floor.py, the same calls through the openai SDK alone as a whole process,
the floor under any harness that calls through it. With --repeat R, each row is the median of R rounds taken
in turn (the ratios of each round in brackets); show and compare are timed on the first round's run.
Targets (issue 12): at 5,000 x c200 at most 1.5x the ideal and 1.2 ms CPU per example; at 50,000 a peak RSS
under 600 MB.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.api_throughput import compile_evals, write_task  # noqa: E402  (the same synthetic task)
from tests.standin_server import StandinProcess, fixed  # noqa: E402

EVALS = [sys.executable, "-m", "evals"]


def measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """(wall s, user+sys CPU s, peak RSS MB, stdout) of this one child process (os.wait4 reads its own rusage)."""
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd)} exited {os.waitstatus_to_exitcode(status)}:\n{err.read()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out


def run_one(n: int, concurrency: int, workers: int, latency: float, server: StandinProcess,
            tmp: Path, views: bool = True) -> dict[str, float]:
    folder = tmp / f"task-{n}-{concurrency}-{workers}"
    folder.mkdir(exist_ok=True)
    write_task(folder, n)
    store = tmp / f"store-{n}-{concurrency}-{workers}-{time.monotonic_ns()}.db"
    env = dict(os.environ, OPENAI_BASE_URL=server.base_url, EVALS_STORE=str(store), EVALS_CACHE_DIR=str(tmp / "c"))
    env.pop("OPENAI_API_KEY", None)
    run = [*EVALS, "run", str(folder), "-m", "openai:gpt-4o-mini", "--concurrency", str(concurrency), "--no-cache",
           "--progress", "none", "--json", "--workers", str(workers)]
    import json

    wall, cpu, rss, out = measured(run, env)
    [summary] = json.loads(out)
    if summary["done"] != n or summary["errors"]:
        raise SystemExit(f"incomplete run: {summary['done']}/{n}, {summary['errors']} errors")
    size = sum(p.stat().st_size for p in store.parent.glob(store.name + "*"))
    times = {name: measured([*EVALS, *cmd], env)[0] if views else float("nan")
             for name, cmd in (("show", ["show", summary["run_id"]]),
                               ("compare", ["compare", summary["run_id"], summary["run_id"]]))}
    return {"wall": wall, "ideal": n / concurrency * latency, "cpu_ms": cpu / n * 1000,
            "rss_mb": rss, "store_mb": size / 2**20, **times}


def sdk_floor(n: int, concurrency: int, latency: float, server: StandinProcess) -> dict[str, float]:
    env = dict(os.environ, OPENAI_BASE_URL=server.base_url)
    wall, cpu, rss, _ = measured([sys.executable, str(ROOT / "bench" / "sdk_floor.py"), "--n", str(n),
                                  "--concurrency", str(concurrency)], env)
    return {"wall": wall, "ideal": n / concurrency * latency, "cpu_ms": cpu / n * 1000, "rss_mb": rss}


def main(args: argparse.Namespace) -> None:
    compile_evals()
    sizes = args.sizes + ([100_000] if args.with_100k else [])
    print(f"{'examples':>9} {'conc':>5} {'workers':>7} {'wall/ideal':>11} {'CPU ms/ex':>10} {'peak RSS':>9} {'store':>8} "
          f"{'show':>7} {'compare':>8}", flush=True)
    with StandinProcess(fixed('{"labels": ["l0"]}'), latency=args.latency) as server, \
            tempfile.TemporaryDirectory() as d:
        for n in sizes:
            for c in args.concurrency:
                rows: dict[str, list[dict[str, float]]] = {str(w): [] for w in args.workers} | {"sdk": []}
                for round_ in range(args.repeat):  # alternating, so a noisy moment touches every row alike
                    for w in args.workers:
                        rows[str(w)].append(run_one(n, c, w, args.latency, server, Path(d), views=round_ == 0))
                    rows["sdk"].append(sdk_floor(n, c, args.latency, server))
                for name, ms in rows.items():
                    m = {k: statistics.median(x[k] for x in ms) for k in ms[0]}
                    each = ", ".join(f"{x['wall'] / x['ideal']:.2f}" for x in ms)
                    ratios = f"  ({each})" if args.repeat > 1 else ""
                    views = (f"{m['store_mb']:>6.1f}MB {ms[0]['show']:>6.2f}s {ms[0]['compare']:>7.2f}s"
                             if name != "sdk" else f"{'':>8} {'':>7} {'':>8}")
                    print(f"{n:>9,} {c:>5} {name:>7} {m['wall'] / m['ideal']:>10.2f}x {m['cpu_ms']:>10.2f} "
                          f"{m['rss_mb']:>7.0f}MB {views}{ratios}", flush=True)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[500, 5000, 50000])
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[50, 200])
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--with-100k", action="store_true", help="also 100,000 examples")
    parser.add_argument("--repeat", type=int, default=1, help="rounds per row, alternating; medians printed")
    main(parser.parse_args())
