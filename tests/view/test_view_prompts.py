"""The viewer rebuilds an example's prompt from its run's manifest, which a store shipped from elsewhere may make
hostile: a template the sandbox forbids, or one that would build gigabytes, is a note on the page, not a 500."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from evals.run.store import Store
from evals.types import Completion, ExampleResult, Sample, Score
from evals.view.app import create_app


def stored_run(path: Path, user: str) -> str:
    store = Store(path)
    manifest = {"task": {"name": "t", "path": "", "hash": "t"}, "golden": {"hash": "g", "n": 1},
                "prompt": {"system": "", "user": user, "few_shot": [], "max_chars": 10**12},
                "model": {"spec": "fake:a"}, "params": {}, "metrics": [], "pass": {"score": 1.0}, "git": {}}
    run_id = store.create_run("t", "fake:a", 1, manifest)
    store.add_result(run_id, ExampleResult(Sample("ex0", {"text": "hello"}, "r", 1), Completion("answer"),
                                           {"score": Score(1.0)}, True))
    store.set_status(run_id, "completed")
    store.close()
    return run_id


@pytest.mark.parametrize(("user", "why"), [
    ("{{ ''.__class__.__mro__ }} {{ text }}", "the sandbox forbids"),
    ("{{ text * 3000000000 }}", "over 1,000,000 characters"),  # the stored max_chars is not believed past the default
])
def test_a_hostile_stored_prompt_is_a_note_on_the_example_page(tmp_path: Path, user: str, why: str) -> None:
    run_id = stored_run(tmp_path / "evals.db", user)
    client = TestClient(create_app(tmp_path / "evals.db", allowed_hosts=["testserver"], token="t"))
    page = client.get(f"/runs/{run_id}/examples/ex0")
    assert page.status_code == 200
    shown = html.unescape(re.sub(r"<[^>]+>", "", page.text))
    assert "the prompt cannot be rebuilt" in shown and why in shown and "answer" in shown
