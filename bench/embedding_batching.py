"""embedding_similarity: examples scored together (batched encoding) against one at a time.

Scores the same answer/reference pairs with the real metric and the packaged all-MiniLM-L6-v2, first
awaiting one example after another (each encode call holds 2 texts), then all at once as the runner
does when answers arrive together (the texts of every waiting example go into one encode call), and
prints examples/s of each and their ratio. The model is loaded before either is timed.

    .venv/bin/python bench/embedding_batching.py [--n 200]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.metrics import metrics  # noqa: E402
from evals.types import Completion, Sample, ScoreContext  # noqa: E402

WORDS = ["release", "fixes", "login", "crash", "adds", "dark", "mode", "improves", "sync", "speed", "removes", "legacy", "api", "updates", "dependencies", "export", "csv", "faster", "search", "new", "settings", "page", "better", "errors"]


def pairs(n: int, seed: int = 0) -> list[ScoreContext]:
    rng = random.Random(seed)

    def sentence() -> str:
        return " ".join(rng.choices(WORDS, k=rng.randint(12, 40))).capitalize() + "."

    return [ScoreContext(sample=Sample(f"x{i}", {}, sentence()), completion=Completion(text=sentence()))
            for i in range(n)]


async def main(n: int) -> None:
    contexts = pairs(n)
    metric = metrics.create("embedding_similarity")
    await metric(contexts[0])  # load the model outside the timings
    start = time.perf_counter()
    one_by_one = [await metric(c) for c in contexts]
    sequential = time.perf_counter() - start
    batched_metric = metrics.create("embedding_similarity")
    start = time.perf_counter()
    together = await asyncio.gather(*(batched_metric(c) for c in contexts))
    batched = time.perf_counter() - start
    drift = max(abs(a.value - b.value) for a, b in zip(one_by_one, together, strict=True))
    print(f"{n} examples: one at a time {n / sequential:.0f}/s, batched {n / batched:.0f}/s "
          f"({batched_metric.encoder.batches} encode calls): {sequential / batched:.1f}x; max score drift {drift:.1e}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    asyncio.run(main(parser.parse_args().n))
