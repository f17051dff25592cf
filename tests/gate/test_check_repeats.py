"""A repeated baseline makes `evals check` noise-aware: an example that was flaky then is reported as flaky,
not as a regression, and the report states the run-to-run noise floor next to the drop."""

from __future__ import annotations

import math

import pytest

from evals.data.golden import load_samples
from evals.data.tasks import load_task
from evals.gate.check import evaluate
from evals.providers.fake import FakeProvider
from evals.report.check import check_sections
from evals.run.runner import RunOptions, run_task
from evals.run.store import Store, load_run
from evals.types import CheckSettings
from tests.conftest import answer_for, qa_rows

WRONG = '{"labels": ["wrong"]}'


async def stored_run(task, samples, store, answers, repeats):
    fake = FakeProvider(max_concurrency=1)
    fake.enqueue(*answers)  # attempt by attempt, example by example
    [outcome] = await run_task(task, samples, [(task.models[0], fake)], store,
                               RunOptions(timeout_s=5, repeats=repeats))
    return load_run(outcome.run_id, store)


async def test_a_flaky_baseline_example_is_not_a_regression_and_the_noise_floor_is_stated(make_task, tmp_path):
    n = 8
    task = load_task(str(make_task(rows=qa_rows(n))))
    samples = load_samples(task)
    store = Store(tmp_path / "s.db")
    right = [answer_for(i) for i in range(n)]
    # baseline, 3 attempts: ex001 passes 2 of 3 (flaky), every other example all 3
    base_attempts = [right, right, [WRONG if i == 1 else a for i, a in enumerate(right)]]
    baseline = await stored_run(task, samples, store, [a for attempt in base_attempts for a in attempt], 3)
    # this check, 1 attempt: misses ex001 (flaky in the baseline) and ex005 (solid in the baseline)
    current = await stored_run(task, samples, store, [WRONG if i in (1, 5) else a for i, a in enumerate(right)], 1)
    outcome = evaluate(baseline, current, CheckSettings())
    assert [d.example_id for d in outcome.regressed] == ["ex005"]
    assert [d.example_id for d in outcome.flaky] == ["ex001"]
    assert {e.example_id: e.status for e in outcome.examples}["ex001"] == "flaky"
    # within-example variance from the baseline: ex001's 2/3 gives 2/3 * 1/3 * 3/2 = 1/3, averaged over 8 examples
    within = (2 / 3 * 1 / 3 * 3 / 2) / n
    assert outcome.noise_floor == pytest.approx(1.959964 * math.sqrt(within / n * (1 / 3 + 1)), rel=1e-5)
    gate = next(g for g in outcome.gates if g.name == "match rate")
    assert "1 regressed (and 1 flaky in the baseline)" in gate.message
    assert f"noise floor is {outcome.noise_floor * 100:.1f} points" in gate.message
    text = "\n".join(line for s in check_sections(outcome) for line in s.lines)
    assert "Flaky, not counted as regressions (1): ex001" in text and "Noise floor" in text


async def test_an_unrepeated_baseline_has_no_noise_floor(make_task, tmp_path):
    task = load_task(str(make_task(rows=qa_rows(4))))
    samples = load_samples(task)
    store = Store(tmp_path / "s.db")
    right = [answer_for(i) for i in range(4)]
    baseline = await stored_run(task, samples, store, right, 1)
    current = await stored_run(task, samples, store, [WRONG, *right[1:]], 1)
    outcome = evaluate(baseline, current, CheckSettings())
    assert outcome.noise_floor is None and outcome.flaky == ()
    assert [d.example_id for d in outcome.regressed] == ["ex000"]
