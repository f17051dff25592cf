"""A store the viewer tests share: the seed story (baseline 44/50, candidate 47/50) stored by the real runner,
hostile markup as the answers to ex044 (baseline) and ex043 (the candidate's one regression), and a check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import QA_TASK, qa_rows

PAYLOAD = ('<script>alert(1)</script> <img src=x onerror=alert(1)> <a href="javascript:alert(1)">click</a>'
           '\n& "quotes"')


def write_task(folder: Path, n: int = 50) -> Path:
    import json

    folder.mkdir(parents=True, exist_ok=True)
    spec = {**QA_TASK, "decision": {"min_gap": 0.05, "volume": 100_000}}
    (folder / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (folder / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in qa_rows(n)))
    return folder


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def seed_store(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> dict[str, Any]:
    """{'store': path, 'a': baseline run id, 'b': candidate run id, 'task': folder, 'check': check id}: a SQLite
    file, then a PostgreSQL database (its URL)."""
    import tests.cli.test_cli_compare as compare_tests
    from evals.gate.check import evaluate, history_point
    from evals.run.store import Store, load_run

    root = tmp_path_factory.mktemp("view")
    folder, store = write_task(root / "task"), root / "evals.db"
    if request.param == "postgresql":
        store = request.getfixturevalue("postgres_cluster").new_database()
    a = [True] * 43 + [True] + [False] * 4 + [False] * 2
    b = [True] * 43 + [False] + [True] * 4 + [False] * 2
    saved, compare_tests.HOSTILE = compare_tests.HOSTILE, PAYLOAD
    try:
        run_a = compare_tests.store_run(folder, store, "base", a, hostile_at=44)
        run_b = compare_tests.store_run(folder, store, "cand", b, hostile_at=43)
    finally:
        compare_tests.HOSTILE = saved
    db = Store(store)
    db.set_baseline("qa", "fake:base", run_a, note="accepted")
    from evals.data.tasks import load_task

    outcome = evaluate(load_run(run_a, db), load_run(run_b, db), load_task(str(folder)).check,
                       baseline_source=f"baseline {run_a}")
    check_id = db.add_check(outcome.task, outcome.model, outcome.run_id, outcome.baseline_run_id, outcome.status,
                            {**outcome.as_dict(), "point": history_point(outcome)})
    db.close()
    return {"store": store, "a": run_a, "b": run_b, "task": folder, "check": check_id}


def default_answer(i: int, model: str, attempt: int, ok: bool) -> str:
    return f"answer {i} from {model}, attempt {attempt}: {'right' if ok else 'wrong'}"


def store_pair(path: Path, a: list[tuple[bool, ...]], b: list[tuple[bool, ...]],
               answer: Callable[[int, str, int, bool], str] = default_answer) -> tuple[str, str]:
    """Two runs over one golden set, stored as the runner stores them: example i's attempts pass where a[i]
    (b[i]) says, K attempts each (the run's `repeats` when K > 1), answered `answer(i, model, attempt, passed)`
    (by default a line naming them). The (baseline, candidate) run ids."""
    from evals.run.store import Store
    from evals.types import Completion, ExampleResult, Sample, Score

    store = Store(path)
    ids = []
    for model, passes in (("fake:a", a), ("fake:b", b)):
        k = len(passes[0])
        manifest = {"task": {"name": "pair", "path": "", "hash": "t"}, "golden": {"hash": "g", "n": len(passes)},
                    "prompt": {"system": "", "user": "{{ text }}", "few_shot": []}, "model": {"spec": model},
                    "params": {}, "metrics": [], "pass": {"score": 1.0}, "git": {}, **({"repeats": k} if k > 1 else {})}
        run_id = store.create_run("pair", model, len(passes), manifest)
        for i, attempts in enumerate(passes):
            sample = Sample(f"ex{i:03d}", {"text": f"question {i}"}, {"a": i}, i + 1)
            for attempt, ok in enumerate(attempts, 1):
                text = answer(i, model, attempt, ok)
                store.add_result(run_id, ExampleResult(sample, Completion(text, 10, 5, 0.1, 0.0),
                                                       {"score": Score(float(ok))}, ok, attempt))
        store.set_status(run_id, "completed")
        ids.append(run_id)
    store.close()
    return ids[0], ids[1]
