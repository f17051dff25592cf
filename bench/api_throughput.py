"""Harness overhead on API models: N examples through the real runner and SDK against a stand-in server.

The stand-in server (tests/standin_server.py) runs in a separate process, so the CPU time measured
here (time.process_time over the run) is the harness alone: runner, SDK, HTTP client, metrics, store.

    .venv/bin/python bench/api_throughput.py --n 500 --latency 0.2 --concurrency 50 --provider openai

Prints wall time, the ideal (N / concurrency x latency), their ratio, and CPU ms per example.
Targets: ratio <= 1.3 and < 2 ms CPU per example at 500 examples, 200 ms latency, concurrency 50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evals.golden import load_samples  # noqa: E402
from evals.runner import RunOptions, run_task  # noqa: E402
from evals.store import Store  # noqa: E402
from evals.tasks import load_task  # noqa: E402
from evals.types import ModelConfig, ModelSpec  # noqa: E402
from tests.standin_server import StandinProcess, fixed  # noqa: E402

ANSWER = '{"labels": ["l0"]}'
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}


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
    # The factories directly: the same objects the registry would build for "openai:"/"anthropic:".
    if name == "openai":
        from evals.providers.openai import openai_provider

        return openai_provider(config)
    from evals.providers.anthropic import anthropic_provider

    return anthropic_provider(config)


async def one_run(args: argparse.Namespace, server: StandinProcess, tmp: Path, i: int) -> dict[str, float]:
    folder = tmp / f"task{i}"
    folder.mkdir()
    task = load_task(str(write_task(folder, args.n)))
    samples = load_samples(task)
    config = ModelConfig(spec=ModelSpec(args.provider, MODELS[args.provider]),
                         base_url=server.base_url_for(args.provider), concurrency=args.concurrency)
    provider = make_provider(args.provider, config)
    store = Store(tmp / f"store{i}.db")
    options = RunOptions(concurrency=args.concurrency, timeout_s=60)
    before = server.stats()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    [outcome] = await run_task(task, samples, [(config, provider)], store, options, cache=None, progress=None)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    after = server.stats()
    errors = sum(r.completion.error is not None for r in outcome.results)
    served = after["completed"] - before["completed"]
    if len(outcome.results) != args.n or errors or served != args.n:
        raise SystemExit(f"run incomplete: {len(outcome.results)} results, {errors} errors, {served} served")
    store.close()
    return {"wall": wall, "cpu": cpu, "server_cpu": after["cpu_s"] - before["cpu_s"]}


async def main(args: argparse.Namespace) -> None:
    ideal = args.n / args.concurrency * args.latency
    with StandinProcess(fixed(ANSWER), latency=args.latency) as server, tempfile.TemporaryDirectory() as d:
        for i in range(args.repeat):
            m = await one_run(args, server, Path(d), i)
            ratio, cpu_ms = m["wall"] / ideal, m["cpu"] / args.n * 1000
            print(f"run {i + 1}: {args.provider} n={args.n} concurrency={args.concurrency} "
                  f"latency={args.latency}s | "
                  f"wall {m['wall']:.3f}s  ideal {ideal:.3f}s  ratio {ratio:.3f} (target <= 1.3) | "
                  f"harness CPU {m['cpu']:.3f}s = {cpu_ms:.2f} ms/example (target < 2) | "
                  f"server CPU {m['server_cpu'] / args.n * 1000:.2f} ms/request (not counted)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--provider", choices=sorted(MODELS), default="openai")
    parser.add_argument("--repeat", type=int, default=1, help="runs in one process (later runs are warm)")
    asyncio.run(main(parser.parse_args()))
