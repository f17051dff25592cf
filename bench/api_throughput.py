"""Harness overhead on API models: N examples through the real runner and SDK against a stand-in server.

The stand-in server (tests/standin_server.py) runs in a separate process, so the CPU time measured
here (time.process_time over the run) is the harness alone: runner, SDK, HTTP client, metrics, store.

    .venv/bin/python bench/api_throughput.py --n 500 --latency 0.2 --concurrency 50 --provider openai
    .venv/bin/python bench/api_throughput.py ... --stream           # streamed answers
    .venv/bin/python bench/api_throughput.py ... --compare-stream   # both, alternating, in one process

Prints wall time, the ideal (N / concurrency x latency), their ratio, and CPU ms per example.
Targets: ratio <= 1.3 and < 2 ms CPU per example at 500 examples, 200 ms latency, concurrency 50.
The answer is ten words; streamed, one word per event, `--token-delay` apart, the first one timed so the
whole answer takes `--latency` as an unstreamed one does. `--compare-stream` first warms both modes up
(unmeasured), then alternates them `--repeat` times and prints the streamed/unstreamed CPU ratio (the rule:
streaming stays off for runs if it costs more than 10% CPU per call).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evals.data.golden import load_samples  # noqa: E402
from evals.data.tasks import load_task  # noqa: E402
from evals.run.runner import RunOptions, run_task  # noqa: E402
from evals.run.store import Store  # noqa: E402
from evals.types import ModelConfig, ModelSpec  # noqa: E402
from tests.standin_server import StandinProcess, fixed  # noqa: E402

ANSWER = '{"labels": ["l0"], "why": "the question names label zero and only"}'  # ten words: ten events
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}


def compile_evals() -> None:
    """Byte-compile evals as installing it would, so that no measured process compiles it from source again on a
    machine that writes no bytecode (PYTHONDONTWRITEBYTECODE, as this one): the SDKs it is measured against are
    installed, and compiled, in site-packages."""
    import compileall

    compileall.compile_dir(ROOT / "evals", quiet=1)


def write_task(folder: Path, n: int) -> Path:
    """A synthetic classification task: n distinct questions, JSON answers, two cheap metrics."""
    task = {
        "name": "bench",
        "dataset": {"golden": "golden.jsonl", "fields": ["question"]},
        "prompt": {"system": "Answer with JSON.", "user": "{{ question }}"},
        "metrics": [{"name": "json_valid"}, {"name": "set_f1", "id": "labels_f1", "field": "labels"}],
        "pass": {"json_valid": 1, "labels_f1": 1},
    }
    (folder / "task.yaml").write_text(json.dumps(task))  # JSON is YAML
    rows = ({"id": f"ex{i:05d}", "question": f"question {i}", "reference": {"labels": [f"l{i % 3}"]}}
            for i in range(n))
    (folder / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def make_provider(name: str, config: ModelConfig):
    # The registered class directly: the same object create_provider builds for "openai:"/"anthropic:".
    from evals.providers import provider_class

    return provider_class(name).from_config(config)


async def one_run(args: argparse.Namespace, server: StandinProcess, tmp: Path, i: int, stream: bool,
                  n: int | None = None) -> dict[str, float]:
    n = n or args.n
    folder = tmp / f"task{i}"
    folder.mkdir()
    task = load_task(str(write_task(folder, n)))
    samples = load_samples(task)
    config = ModelConfig(spec=ModelSpec(args.provider, MODELS[args.provider]),
                         base_url=server.base_url_for(args.provider), concurrency=args.concurrency, stream=stream)
    provider = make_provider(args.provider, config)
    store = Store(tmp / f"store{i}.db")
    options = RunOptions(concurrency=args.concurrency, timeout_s=60)
    before = server.stats()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    [outcome] = await run_task(task, samples, [(config, provider)], store, options, cache=None, progress=None)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    after = server.stats()
    errors = outcome.errors
    served = after["completed"] - before["completed"]
    if outcome.done != n or errors or served != n:
        raise SystemExit(f"run incomplete: {outcome.done} results, {errors} errors, {served} served")
    store.close()
    return {"wall": wall, "cpu": cpu, "server_cpu": after["cpu_s"] - before["cpu_s"]}


def report(args: argparse.Namespace, label: str, m: dict[str, float]) -> float:
    ideal = args.n / args.concurrency * args.latency
    ratio, cpu_ms = m["wall"] / ideal, m["cpu"] / args.n * 1000
    print(f"{label}: {args.provider} n={args.n} concurrency={args.concurrency} latency={args.latency}s | "
          f"wall {m['wall']:.3f}s  ideal {ideal:.3f}s  ratio {ratio:.3f} (target <= 1.3) | "
          f"harness CPU {m['cpu']:.3f}s = {cpu_ms:.2f} ms/example (target < 2) | "
          f"server CPU {m['server_cpu'] / args.n * 1000:.2f} ms/request (not counted)", flush=True)
    return cpu_ms


async def main(args: argparse.Namespace) -> None:
    words = len(ANSWER.split())
    first_token_delay = max(0.0, args.latency - (words - 1) * args.token_delay)  # the same total time
    with StandinProcess(fixed(ANSWER), latency=args.latency, first_token_delay=first_token_delay,
                        token_delay=args.token_delay) as server, tempfile.TemporaryDirectory() as d:
        tmp, runs = Path(d), itertools.count()
        if not args.compare_stream:
            for i in range(args.repeat):
                m = await one_run(args, server, tmp, next(runs), args.stream)
                report(args, f"run {i + 1}{' streamed' if args.stream else ''}", m)
            return
        for stream in (False, True):  # warm-up, not measured: imports, the SDK's stream classes, connections
            await one_run(args, server, tmp, next(runs), stream, n=min(args.n, 2 * args.concurrency))
        cpu: dict[bool, list[float]] = {False: [], True: []}
        for i in range(args.repeat):
            for stream in (False, True):
                m = await one_run(args, server, tmp, next(runs), stream)
                cpu[stream].append(report(args, f"run {i + 1} {'streamed  ' if stream else 'unstreamed'}", m))
        plain, streamed = (sum(cpu[k]) / len(cpu[k]) for k in (False, True))
        print(f"harness CPU per call, mean of {args.repeat}: unstreamed {plain:.2f} ms, streamed {streamed:.2f} ms, "
              f"streamed/unstreamed {streamed / plain:.3f} (streaming costs {100 * (streamed / plain - 1):+.1f}%)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--provider", choices=sorted(MODELS), default="openai")
    parser.add_argument("--repeat", type=int, default=1, help="runs in one process (later runs are warm)")
    parser.add_argument("--token-delay", type=float, default=0.002, help="streamed: seconds between words")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--stream", action="store_true", help="stream every answer")
    mode.add_argument("--compare-stream", action="store_true",
                      help="unstreamed and streamed runs side by side, with their CPU ratio")
    asyncio.run(main(parser.parse_args()))
