"""The viewer's learning-curves page: each curve in finetune/curves/ with its answer, table and figure; a
curve's text is data (escaped), and a file that is not a curve is named with why, not an error page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from starlette.testclient import TestClient

from evals.analyse.learning_curve import Params, answer
from evals.analyse.rates import wilson_interval
from evals.run.store import Store
from evals.view.app import create_app


def synthetic_curve(task: str) -> dict:
    """A curve of rate(n) = 0.8 - 2 n^-0.5 measured on 50 golden examples at four sizes."""
    true, sizes = Params(0.8, 2.0, 0.5), [50, 100, 200, 400]
    u = np.random.default_rng(0).random(50)
    passed = np.array([u < true.rate(n) for n in sizes], int)
    got = answer(sizes, passed, {"baseline": 0.7})
    points = [{"size": n, "rate": p.mean(), "matches": int(p.sum()), "n": 50,
               "ci95": list(wilson_interval(int(p.sum()), 50)), "run_id": f"run{n}", "metrics": {"json_valid": 1.0},
               "passed": p.tolist(), "train": {"wall_seconds": 60.0 * n, "device": "cpu", "tokens": 700 * n,
                                              "cost_usd": None, "cost_basis": "no gpu_hourly_usd set"}}
              for n, p in zip(sizes, passed, strict=True)]
    fit = {**got.as_dict(), "draws": 1000, "bootstrap_params": [[q.a, q.b, q.c] for q in got.bootstrap],
           "baseline": {"run_id": "base1", "model": "openai:gpt-4o-mini", "rate": 0.7, "min_gap": 0.05}}
    return {"identity": {"task": task, "base": "local:smollm2"}, "points": points, "fit": fit,
            "validation_ids": ["v1", "v2"]}


def test_the_curves_page_shows_each_curve_with_its_figure(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name, record in (("good", synthetic_curve("resume-feedback")), ("hostile", synthetic_curve("<b>x</b>"))):
        Path(f"finetune/curves/{name}").mkdir(parents=True)
        Path(f"finetune/curves/{name}/curve.json").write_text(json.dumps(record))
    Path("finetune/curves/broken").mkdir()
    Path("finetune/curves/broken/curve.json").write_text("{not json")
    Store(tmp_path / "s.db").close()
    client = TestClient(create_app(tmp_path / "s.db", allowed_hosts=["testserver"], token="t"))

    page = client.get("/curves")
    assert page.status_code == 200
    html = page.text
    assert "Learning curve of resume-feedback on local:smollm2" in html
    assert "Answer (extrapolation)" in html and "Expected match rate at 2x the data (800 examples)" in html
    assert html.count("data:image/png;base64,") == 2  # the two curves' figures, inline
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert "finetune/curves/broken/curve.json" in html and "not a learning curve" in html
    assert '<a href="/curves">Curves</a>' in client.get("/").text
