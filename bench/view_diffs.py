"""The compare page's diff of two long answers: the bounded diff (evals.view.present.diff_pieces) beside the uncapped
word diff it replaced (whitespace a token of its own, SequenceMatcher without autojunk), on the same pairs.

Each pair is two answers of N words (a Zipf-like vocabulary of 5,000 words, 20 to a line) that differ in one word
in twenty. The old diff is timed only up to --old-up-to words (it grows with the product of the sizes: the issue
measured 105 s at 16,000 words); then a compare page of 50 such pairs at the largest size, cold (every pair
diffed) and warm (memoised), from the app's own Server-Timing header:

    .venv/bin/python bench/view_diffs.py --sizes 500 1000 2000 4000 16000 --old-up-to 4000
"""

from __future__ import annotations

import argparse
import difflib
import random
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OLD_TOKENS = re.compile(r"\s+|[^\s]+")


def old_diff(a: str, b: str) -> None:
    ta, tb = OLD_TOKENS.findall(a), OLD_TOKENS.findall(b)
    difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes()


def pair(n: int, rng: random.Random) -> tuple[str, str]:
    vocab = [f"w{i}" for i in range(5000)]
    words = rng.choices(vocab, [1 / (i + 1) for i in range(5000)], k=n)
    edited = [rng.choice(vocab) if rng.random() < 0.05 else w for w in words]
    lines = lambda ws: "\n".join(" ".join(ws[i:i + 20]) for i in range(0, len(ws), 20))  # noqa: E731
    return lines(words), lines(edited)


def seconds(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def page_ms(n: int, rng: random.Random) -> tuple[float, float]:
    from starlette.testclient import TestClient

    from evals.view.app import create_app
    from tests.view.conftest import store_pair

    texts = [pair(n, rng) for _ in range(50)]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "evals.db"
        a, b = store_pair(path, [(True,)] * 50, [(False,)] * 50,
                          answer=lambda i, model, attempt, ok: texts[i][model == "fake:b"])
        client = TestClient(create_app(path, allowed_hosts=["testserver"]))
        client.get(f"/compare/{a}/{b}?outcome=both-missed")  # the comparison itself computed, no pair shown
        timed = [float(client.get(f"/compare/{a}/{b}").headers["server-timing"].split("dur=")[1]) for _ in range(2)]
    return timed[0], timed[1]


def main(args: argparse.Namespace) -> None:
    from evals.view.present import diff_pieces

    rng = random.Random(0)
    print(f"{'words a side':>12} {'bounded diff':>13} {'how':>5} {'uncapped word diff':>19} {'ratio':>7}")
    for n in args.sizes:
        a, b = pair(n, rng)
        new = seconds(diff_pieces, a, b)
        how = diff_pieces(a, b).by or "none"
        old = seconds(old_diff, a, b) if n <= args.old_up_to else None
        print(f"{n:12,} {new * 1000:10.1f} ms {how:>5} " + (f"{old * 1000:16.1f} ms {old / new:6.0f}x" if old else
                                                             f"{'(not run)':>19}"))
    cold, warm = page_ms(max(args.sizes), rng)
    print(f"compare page, 50 pairs of {max(args.sizes):,} words: {cold:.0f} ms cold, {warm:.0f} ms warm (memoised)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 4000, 16000])
    parser.add_argument("--old-up-to", type=int, default=4000)
    main(parser.parse_args())
