"""`evals view` on a big run: server time of the run page, example pages and the compare page, side by side.

Builds a store with two runs of N examples each over one golden set (default 10,000; stored through
Store.add_result as the runner stores them, each with an input of about 400 characters, an answer and two
scores; the candidate matches where the baseline does not on a fifth of them), then asks the app (in process,
through Starlette's test client) for each page several times and reads the app's own Server-Timing header (the
time from request to rendered page, the network left out):

    .venv/bin/python bench/view_pages.py --n 10000 --repeat 5

Prints the median server time of: the run page cold (its summary computed, as on a first visit) and warm
(memoised), examples page 1 and page 40 (plain and failures-only), a text search, and one example; the compare
page cold (the comparison computed) and warm, its changed examples page 1 and a late page, both missed page 1;
diffing every changed example once (what each compare page did before it was paged); and the ratios late page /
page 1. Targets: run page under 300 ms cold; a late page within 1.5x of page 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evals.run.store import Store  # noqa: E402
from evals.types import Completion, ExampleResult, Sample, Score  # noqa: E402


def build_run(store: Store, n: int, model: str, every: int) -> str:
    """A run of `model` over the same n examples: every `every`-th answer is not JSON."""
    manifest = {"task": {"name": "big", "path": "", "hash": "t"}, "golden": {"hash": "g", "n": n},
                "prompt": {"system": "Answer with JSON.", "user": "{{ text }}", "few_shot": []},
                "model": {"spec": model}, "params": {}, "metrics": [], "pass": {"json_valid": 1.0}, "git": {}}
    run_id = store.create_run("big", model, n, manifest)
    for i in range(n):
        ok = i % every != 0
        sample = Sample(f"ex{i:05d}", {"text": f"example {i}: " + "lorem ipsum dolor sit amet " * 15}, {"a": i}, i + 1)
        answer = '{"a": %d, "by": "%s"}' % (i, model) if ok else f"not json from {model}, example {i} " * 5
        completion = Completion(answer, 120, 12, 0.4 + i % 7 / 10, 0.00002)
        scores = {"json_valid": Score(1.0 if ok else 0.0, "parsed" if ok else "not JSON"),
                  "closeness": Score((i % 10) / 10, details={"distance": i % 10})}
        store.add_result(run_id, ExampleResult(sample, completion, scores, ok))
    store.set_status(run_id, "completed")
    return run_id


def build_store(path: Path, n: int) -> tuple[str, str]:
    store = Store(path)
    runs = build_run(store, n, "fake:big", 4), build_run(store, n, "fake:other", 5)
    store.close()
    return runs


def server_ms(client, url: str) -> float:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code, response.text[:500])
    return float(response.headers["server-timing"].split("dur=")[1])


def main(args: argparse.Namespace) -> None:
    from starlette.testclient import TestClient

    from evals.view.app import create_app

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "evals.db"
        start = time.perf_counter()
        run_id, other = build_store(path, args.n)
        print(f"store: 2 runs of {args.n:,} examples, {path.stat().st_size / 1e6:.1f} MB, built in "
              f"{time.perf_counter() - start:.1f} s")
        cold = []
        for _ in range(args.repeat):  # a new app each time: nothing memoised
            client = TestClient(create_app(path, allowed_hosts=["testserver"]))
            cold.append(server_ms(client, f"/runs/{run_id}"))
        compare = f"/compare/{run_id}/{other}"
        compare_cold = server_ms(client, compare)  # once: the comparison (bootstrap CIs, figures) computed
        late = changed_pages(path, run_id, other) * 6 // 7
        urls = {"run page (warm)": f"/runs/{run_id}",
                "examples page 1": f"/runs/{run_id}?page=1",
                "examples page 40": f"/runs/{run_id}?page=40",
                "failures page 1": f"/runs/{run_id}?failures=1&page=1",
                "failures page 40": f"/runs/{run_id}?failures=1&page=40",
                "closeness < 0.3, page 40": f"/runs/{run_id}?metric=closeness&below=0.3&page=40",
                "text search": f"/runs/{run_id}?q=example+9999",
                "one example": f"/runs/{run_id}/examples/ex{args.n * 43 // 100:05d}",
                "compare, changed page 1": compare,
                f"compare, changed page {late}": f"{compare}?page={late}",
                "compare, both missed page 1": f"{compare}?outcome=both-missed"}
        times = {name: [] for name in urls}
        for _ in range(args.repeat):  # interleaved, so the pages share the machine's state
            for name, url in urls.items():
                times[name].append(server_ms(client, url))
        median = {name: statistics.median(t) for name, t in times.items()}
        print(f"{'page':32} {'median server ms':>17}   (of {args.repeat})")
        print(f"{'run page (cold)':32} {statistics.median(cold):17.1f}")
        for name, ms in median.items():
            print(f"{name:32} {ms:17.1f}")
        print(f"{'compare page (cold, once)':32} {compare_cold:17.1f}")
        n_changed, diff_ms = diff_everything(path, run_id, other)
        print(f"{f'diffing all {n_changed:,} changed (once)':32} {diff_ms:17.1f}   (each compare page, before paging)")
        print(f"ratio page 40 / page 1: {median['examples page 40'] / median['examples page 1']:.2f} (plain), "
              f"{median['failures page 40'] / median['failures page 1']:.2f} (failures only); compare page "
              f"{late} / page 1: {median[f'compare, changed page {late}'] / median['compare, changed page 1']:.2f}")


def changed_pages(path: Path, run_a: str, run_b: str) -> int:
    from evals.view import queries

    store = Store(path, readonly=True)
    counts = queries.outcome_counts(store, run_a, run_b)
    return queries.outcomes_page(store, run_a, run_b, ("regressed", "improved"), counts).pages


def diff_everything(path: Path, run_a: str, run_b: str) -> tuple[int, float]:
    """Every changed example's two answers read and diffed word by word: (examples, ms)."""
    from evals.view import queries
    from evals.view.present import diff_pieces

    store = Store(path, readonly=True)
    counts = queries.outcome_counts(store, run_a, run_b)
    rows = queries.outcomes_page(store, run_a, run_b, ("regressed", "improved"), counts, page_size=10**9).rows
    start = time.perf_counter()
    found_a = store.outputs(run_a, [(r.example_id, r.attempt_a) for r in rows])
    found_b = store.outputs(run_b, [(r.example_id, r.attempt_b) for r in rows])
    for r in rows:
        diff_pieces(found_a[r.example_id, r.attempt_a]["output"], found_b[r.example_id, r.attempt_b]["output"])
    return len(rows), (time.perf_counter() - start) * 1000


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    main(parser.parse_args())
