"""The CLI as a whole process: `evals run` on N examples against a stand-in API, and a user error, timed.

The stand-in server (tests/standin_server.py) runs in another process with a fixed latency per call;
`evals run` is started as a user would start it (a new Python process, imports and all), so the wall
time includes start-up, the run, the summary and exit.

    .venv/bin/python bench/cli_startup.py --n 500 --latency 0.2 --concurrency 50 --repeat 3
    .venv/bin/python bench/cli_startup.py ... --workers 2     # also over 2 worker processes, alternating

Prints the median wall time against the ideal (N / concurrency x latency) and their ratio, user+sys
CPU of the run, and the median time of `evals run no-such-task` (a user error: exit 2). Beside it, the
floor: bench/sdk_floor.py, the same calls through the openai SDK alone as a whole process (its import,
the calls, the exit), timed alternately with `evals run`.
Targets: ratio <= 1.45 at 500 x c50 x 200 ms; a user error in under 0.5 s.

    .venv/bin/python bench/cli_startup.py --families --repeat 5

times instead a task per shipped metric family (FAMILIES: the same task, only its metrics differ), each as a
whole process, alternating with the SDK alone making the same calls (the anthropic SDK for the Anthropic
task), and prints each family's median wall time over the SDK's median. Target: <= 1.10x for every built-in
family except embeddings and judges (they call models or load one).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.api_throughput import compile_evals, write_task  # noqa: E402  (the same synthetic task)
from tests.standin_server import ANTHROPIC_MODEL, StandinProcess, fixed  # noqa: E402

EVALS = [sys.executable, "-m", "evals"]
FAMILIES: dict[str, list[dict]] = {  # name -> task.yaml's metrics; an "anthropic" name runs an Anthropic model
    "exact/includes": [{"name": "exact_match"}, {"name": "includes", "text": "l0"}],
    "label": [{"name": "label", "field": "labels", "labels": ["l0", "l1", "l2"]}],
    "set_f1": [{"name": "set_f1", "field": "labels"}],
    "rouge_l/rouge_n": [{"name": "rouge_l", "use_stemmer": False}, {"name": "rouge_n", "n": 2}],
    "rouge_l stemmed": [{"name": "rouge_l"}],
    "bleu/chrf": [{"name": "bleu"}, {"name": "chrf"}],
    "regex/json": [{"name": "regex", "pattern": "l[0-9]"}, {"name": "json_valid"}, {"name": "json_fields"},
                   {"name": "contains_json"}],
    "numeric": [{"name": "numeric_within", "tolerance": 0.5}],
    "levenshtein": [{"name": "levenshtein"}],
    "json_schema/tools": [{"name": "json_schema", "schema": {"type": "object", "required": ["labels"]}},
                          {"name": "openai_tools_call", "tools": [{"type": "function", "function": {
                              "name": "label", "parameters": {"type": "object"}}}]}],
    "javascript": [{"name": "javascript", "code": "JSON.parse(output).labels.length > 0"}],
    "max_cost/latency": [{"name": "max_cost", "usd": 1}, {"name": "max_latency", "ms": 60000}],
    "exact, anthropic": [{"name": "exact_match"}],
}


def timed(cmd: list[str], env: dict[str, str], expect: int) -> tuple[float, float]:
    """(wall seconds, user+sys CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != expect:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def family_task(folder: Path, n: int, metrics: list[dict]) -> Path:
    folder.mkdir()
    task = write_task(folder, n)
    spec = json.loads((task / "task.yaml").read_text())
    spec.update(metrics=metrics, name="bench-" + "".join(c for c in metrics[0]["name"] if c.isalnum()))
    spec.pop("pass", None)
    (task / "task.yaml").write_text(json.dumps(spec))
    return task


def families(args: argparse.Namespace) -> None:
    """Each metric family's whole-process wall time over the SDK alone's, measured alternately."""
    if unknown := set(args.only or ()) - set(FAMILIES):
        raise SystemExit(f"unknown families {sorted(unknown)}; known: {', '.join(FAMILIES)}")
    compile_evals()
    with StandinProcess(fixed('{"labels": ["l0"]}'), latency=args.latency) as server, \
            tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        env = dict(os.environ, OPENAI_BASE_URL=server.base_url, ANTHROPIC_BASE_URL=server.anthropic_base_url,
                   EVALS_STORE=str(tmp / "evals.db"), EVALS_CACHE_DIR=str(tmp / "cache"))
        env.pop("OPENAI_API_KEY", None)
        env.pop("ANTHROPIC_API_KEY", None)
        runs = {}
        for i, (name, metrics) in enumerate(FAMILIES.items()):
            if args.only and name not in args.only:
                continue
            model = f"anthropic:{ANTHROPIC_MODEL}" if "anthropic" in name else "openai:gpt-4o-mini"
            runs[name] = [*EVALS, "run", str(family_task(tmp / f"f{i}", args.n, metrics)), "-m", model,
                          "--concurrency", str(args.concurrency), "--no-cache", "--no-progress"]
        floor = {sdk: [sys.executable, str(ROOT / "bench" / "sdk_floor.py"), "--n", str(args.n), "--concurrency",
                       str(args.concurrency), "--sdk", sdk]
                 for sdk in ("openai", "anthropic") if any((sdk == "anthropic") == ("anthropic" in r) for r in runs)}
        walls: dict[str, list[float]] = {k: [] for k in [*floor, *runs]}
        for _ in range(args.repeat):  # alternating, so a noisy moment touches every family alike
            for sdk, cmd in floor.items():
                walls[sdk].append(timed(cmd, env, 0)[0])
            for name, cmd in runs.items():
                walls[name].append(timed(cmd, env, 0)[0])
    median = {k: statistics.median(v) for k, v in walls.items()}
    print(f"n={args.n} concurrency={args.concurrency} latency={args.latency}s, medians of {args.repeat} alternating")
    for sdk in floor:
        print(f"  {sdk} SDK alone: {median[sdk]:.2f}s  rounds " + ", ".join(f"{w:.2f}" for w in walls[sdk]))
    print(f"  {'metric family':<18} {'wall':>7} {'ratio':>6} {'paired':>7}  (target <= 1.10; paired: the median of "
          "each round's ratio to the SDK's run beside it)")
    for name in runs:
        sdk = "anthropic" if "anthropic" in name else "openai"
        paired = statistics.median(w / b for w, b in zip(walls[name], walls[sdk], strict=True))
        print(f"  {name:<18} {median[name]:6.2f}s {median[name] / median[sdk]:5.2f}x {paired:6.2f}x  rounds "
              + ", ".join(f"{w:.2f}" for w in walls[name]))


def main(args: argparse.Namespace) -> None:
    if args.families:
        return families(args)
    compile_evals()
    ideal = args.n / args.concurrency * args.latency
    with StandinProcess(fixed('{"labels": ["l0"]}'), latency=args.latency) as server, \
            tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        task = write_task(tmp, args.n)
        env = dict(os.environ, OPENAI_BASE_URL=server.base_url, EVALS_STORE=str(tmp / "evals.db"),
                   EVALS_CACHE_DIR=str(tmp / "cache"))
        env.pop("OPENAI_API_KEY", None)
        run = [*EVALS, "run", str(task), "-m", "openai:gpt-4o-mini", "--concurrency", str(args.concurrency),
               "--no-cache", "--no-progress"]
        counts = sorted({1, args.workers})
        measured: dict[int, list[tuple[float, float]]] = {w: [] for w in counts}
        floor = [sys.executable, str(ROOT / "bench" / "sdk_floor.py"), "--n", str(args.n), "--concurrency",
                 str(args.concurrency)]
        floors = []
        for _ in range(args.repeat):  # alternating, so a noisy moment touches both alike
            for w in counts:
                measured[w].append(timed([*run, "--workers", str(w)], env, 0))
            floors.append(timed(floor, env, 0))
        errors = [timed([*EVALS, "run", "no-such-task"], env, 2)[0] for _ in range(args.repeat)]
    for w in counts:
        walls = [wall for wall, _ in measured[w]]
        wall, cpu = statistics.median(walls), statistics.median(c for _, c in measured[w])
        print(f"evals run, whole process: n={args.n} concurrency={args.concurrency} latency={args.latency}s "
              f"workers={w} | wall {wall:.2f}s (median of {args.repeat}: {', '.join(f'{x:.2f}' for x in walls)})  "
              f"ideal {ideal:.2f}s  ratio {wall / ideal:.2f} (target <= 1.45) | user+sys CPU {cpu:.2f}s")
    wall, cpu = statistics.median(w for w, _ in floors), statistics.median(c for _, c in floors)
    print(f"the openai SDK alone, whole process (bench/sdk_floor.py): wall {wall:.2f}s  ratio {wall / ideal:.2f} | "
          f"user+sys CPU {cpu:.2f}s")
    print(f"user error (evals run no-such-task, exit 2): {statistics.median(errors):.2f}s median of {args.repeat} "
          "(target < 0.5)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="also time the run over this many workers")
    parser.add_argument("--families", action="store_true", help="a task per metric family against the SDK alone")
    parser.add_argument("--only", nargs="+", metavar="FAMILY", help="with --families: these families only")
    main(parser.parse_args())
