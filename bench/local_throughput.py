"""Local provider throughput: generated tokens/s at the default batch size against one sequence at a time.

Both modes run the same prompts through the real `local:` provider and the real runner, in one
process, one after the other, and print tokens/s of each and their ratio. Two workloads:
- `task` (default): the task's own prompts (system prompt, few-shot turns, the example). Each
  example has hundreds of prompt tokens of its own per few dozen generated, so prompt processing
  bounds the batched rate;
- `generation`: short prompts asking for long answers (a cover letter per resume), so decoding
  dominates; this is the case batching is for.
Target on a 2-core CPU with the embedded model: at least 15x.

    .venv/bin/python bench/local_throughput.py [--workload task|generation] [--n 32] [--single-n 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.data.golden import load_samples  # noqa: E402
from evals.data.tasks import load_task  # noqa: E402
from evals.providers import create_provider  # noqa: E402
from evals.run.runner import RunOptions, run_task  # noqa: E402
from evals.run.store import Store, load_run  # noqa: E402
from evals.types import ModelConfig, ModelSpec  # noqa: E402


async def measure(task, samples, spec: str, batch: int | None, max_tokens: int, store: Store) -> tuple[float, int]:
    """(seconds, generated tokens) for these samples through the runner at this batch size."""
    config = ModelConfig(spec=ModelSpec.parse(spec), max_tokens=max_tokens, concurrency=batch)
    provider = create_provider(config)
    await provider.generate(*_warmup(task, samples))  # load weights and cache the shared prefix outside the clock
    start = time.perf_counter()
    [outcome] = await run_task(task, samples, [(config, provider)], store, RunOptions(timeout_s=3600))
    seconds = time.perf_counter() - start
    df = load_run(outcome.run_id, store)
    if outcome.errors:
        raise SystemExit(f"generation failed: {df['error'].dropna().iloc[0]}")
    return seconds, int(df["output_tokens"].sum())


def cover_letter_task(task):
    """The task's examples with a short prompt asking for a long answer."""
    import dataclasses

    from evals.types import PromptSpec

    prompt = PromptSpec(system="You are a helpful writing assistant.",
                        user="Write a cover letter for the person whose resume starts: {{ resume[:60] }}")
    return dataclasses.replace(task, prompt=prompt)


def _warmup(task, samples):
    from evals.data.prompts import render_messages
    from evals.types import GenerateParams

    return render_messages(task.prompt, samples[-1].fields), GenerateParams(max_tokens=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="resume-feedback")
    parser.add_argument("--workload", choices=["task", "generation"], default="task")
    parser.add_argument("--model", default="local:smollm2")
    parser.add_argument("--n", type=int, default=32, help="examples for the batched run")
    parser.add_argument("--single-n", type=int, default=4, help="examples for the one-at-a-time run")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the provider's)")
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()

    task = load_task(args.task)
    if args.workload == "generation":
        task = cover_letter_task(task)
    samples = load_samples(task)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        single_s, single_tok = asyncio.run(measure(task, samples[: args.single_n], args.model, 1,
                                                   args.max_tokens, store))
        batch_s, batch_tok = asyncio.run(measure(task, samples[: args.n], args.model, args.batch,
                                                 args.max_tokens, store))
    single_rate, batch_rate = single_tok / single_s, batch_tok / batch_s
    print(f"model {args.model}, task {args.task}, workload {args.workload}, max_tokens {args.max_tokens}")
    print(f"one at a time : {args.single_n:4d} examples {single_tok:6d} tokens {single_s:7.1f}s "
          f"{single_rate:7.1f} tokens/s")
    print(f"batched       : {args.n:4d} examples {batch_tok:6d} tokens {batch_s:7.1f}s "
          f"{batch_rate:7.1f} tokens/s")
    print(f"ratio batched / one at a time: {batch_rate / single_rate:.1f}x (target >= 15x)")


if __name__ == "__main__":
    main()
