"""`evals view` on a big run: server time of the run page and of example pages, measured side by side.

Builds a store with one run of N examples (default 10,000; stored through Store.add_result as the runner
stores them, each with an input of about 400 characters, an answer and two scores), then asks the app
(in process, through Starlette's test client) for each page several times and reads the app's own
Server-Timing header (the time from request to rendered page, the network left out):

    .venv/bin/python bench/view_pages.py --n 10000 --repeat 5

Prints the median server time of: the run page cold (its summary computed, as on a first visit) and warm
(memoised), examples page 1 and page 40 (plain and failures-only), a text search, and one example;
and the ratio page 40 / page 1. Targets: run page under 300 ms cold; page 40 within 1.5x of page 1.
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


def build_store(path: Path, n: int) -> str:
    store = Store(path)
    manifest = {"task": {"name": "big", "path": "", "hash": "t"}, "golden": {"hash": "g", "n": n},
                "prompt": {"system": "Answer with JSON.", "user": "{{ text }}", "few_shot": []},
                "model": {"spec": "fake:big"}, "params": {}, "metrics": [], "pass": {"json_valid": 1.0}, "git": {}}
    run_id = store.create_run("big", "fake:big", n, manifest)
    for i in range(n):
        ok = i % 4 != 0
        sample = Sample(f"ex{i:05d}", {"text": f"example {i}: " + "lorem ipsum dolor sit amet " * 15}, {"a": i}, i + 1)
        completion = Completion('{"a": %d}' % i if ok else "not json " * 10, 120, 12, 0.4 + i % 7 / 10, 0.00002)
        scores = {"json_valid": Score(1.0 if ok else 0.0, "parsed" if ok else "not JSON"),
                  "closeness": Score((i % 10) / 10, details={"distance": i % 10})}
        store.add_result(run_id, ExampleResult(sample, completion, scores, ok))
    store.set_status(run_id, "completed")
    store.close()
    return run_id


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
        run_id = build_store(path, args.n)
        print(f"store: 1 run of {args.n:,} examples, {path.stat().st_size / 1e6:.1f} MB, built in "
              f"{time.perf_counter() - start:.1f} s")
        cold = []
        for _ in range(args.repeat):  # a new app each time: nothing memoised
            client = TestClient(create_app(path, allowed_hosts=["testserver"]))
            cold.append(server_ms(client, f"/runs/{run_id}"))
        urls = {"run page (warm)": f"/runs/{run_id}",
                "examples page 1": f"/runs/{run_id}?page=1",
                "examples page 40": f"/runs/{run_id}?page=40",
                "failures page 1": f"/runs/{run_id}?failures=1&page=1",
                "failures page 40": f"/runs/{run_id}?failures=1&page=40",
                "closeness < 0.3, page 40": f"/runs/{run_id}?metric=closeness&below=0.3&page=40",
                "text search": f"/runs/{run_id}?q=example+9999",
                "one example": f"/runs/{run_id}/examples/ex04321"}
        times = {name: [] for name in urls}
        for _ in range(args.repeat):  # interleaved, so the pages share the machine's state
            for name, url in urls.items():
                times[name].append(server_ms(client, url))
        median = {name: statistics.median(t) for name, t in times.items()}
        print(f"{'page':28} {'median server ms':>17}   (of {args.repeat})")
        print(f"{'run page (cold)':28} {statistics.median(cold):17.1f}")
        for name, ms in median.items():
            print(f"{name:28} {ms:17.1f}")
        print(f"ratio page 40 / page 1: {median['examples page 40'] / median['examples page 1']:.2f} (plain), "
              f"{median['failures page 40'] / median['failures page 1']:.2f} (failures only)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    main(parser.parse_args())
