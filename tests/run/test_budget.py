"""`--budget` as a user would use it, against the stand-in API: most of the budget is spent, never more,
the rest resumes, and a budget no call fits in is refused before any call."""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from evals.cli import app
from tests.conftest import qa_rows
from tests.standin_server import StandinServer, fixed

N = 50


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def triage(make_task, tmp_path):
    """50 examples answered in one word, at gpt-4o-mini prices, through the openai SDK."""
    with StandinServer(fixed("l1")) as server:
        model = {"spec": "openai:gpt-4o-mini", "base_url": server.base_url, "max_tokens": 16, "concurrency": 8}
        folder = make_task(rows=qa_rows(N), models=[model], metrics=[{"name": "exact_match"}],
                           **{"pass": {"exact_match": 1}})
        yield folder, tmp_path / "s.db", server


def spent(store, run_id: str) -> float:
    return sqlite3.connect(store).execute("SELECT SUM(cost_usd) FROM results WHERE run_id = ?", (run_id,)).fetchone()[0]


def test_a_budget_is_mostly_spent_never_passed_and_the_rest_resumes(triage) -> None:
    folder, store, server = triage
    full = invoke("run", folder, "--store", store, "--no-cache", "--no-progress", "--json")
    assert full.exit_code == 0, full.output
    cost = spent(store, json.loads(full.stdout)[0]["run_id"])
    budget = 0.8 * cost
    before = server.counts.completed
    stopped = invoke("run", folder, "--store", store, "--no-cache", "--no-progress", "--json", "--budget", budget)
    assert stopped.exit_code == 0, stopped.output
    [summary] = json.loads(stopped.stdout)
    run_id = summary["run_id"]
    assert summary["status"] == "budget-stopped" and summary["done"] < N
    assert 0.7 * budget <= spent(store, run_id) <= budget  # most of it, never more
    note = stopped.stderr
    assert f"run {run_id} stopped with {N - summary['done']} example(s) to do" in note
    assert "the rest would cost about $" in note and f"evals run --resume {run_id} --budget " in note
    suggested = float(note.split("--budget ")[1].split("`")[0])
    resumed = invoke("run", "--resume", run_id, "--store", store, "--no-cache", "--no-progress", "--json",
                     "--budget", suggested)
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)[0]["status"] == "completed"
    assert server.counts.completed - before == N  # every example paid once across the two sessions


def test_a_budget_smaller_than_one_call_is_refused_before_any_call(triage) -> None:
    folder, store, server = triage
    result = invoke("run", folder, "--store", store, "--no-cache", "--no-progress", "--budget", 0.000001)
    assert result.exit_code == 2 and "less than the worst case of a single call" in result.stderr
    assert "max_tokens" in result.stderr and server.counts.received == 0


async def test_judges_refused_by_the_budget_leave_their_example_to_do_and_a_finished_model_is_completed(
        make_task, tmp_path) -> None:
    """A judge call the budget cannot fit is no score: its example stays to do (a resume scores it), and a
    free model that answered everything is `completed` even though the shared budget ran out."""
    from evals.data.golden import load_samples
    from evals.data.tasks import load_task
    from evals.providers import create_provider
    from evals.run.calls import RunOptions
    from evals.run.runner import run_task
    from evals.run.store import Store, load_run

    rubric = {"name": "rubric_judge", "id": "quality", "rubric": "Is it right?", "judge": "fake:judge"}
    judge = {"spec": "fake:judge", "max_tokens": 50, "price": {"input_per_mtok": 1000, "output_per_mtok": 1000},
             "options": {"responses": ['{"reasoning": "ok", "score": 5}']}}
    paid = {"spec": "fake:paid", "max_tokens": 20, "price": {"input_per_mtok": 100, "output_per_mtok": 100},
            "options": {"responses": ["{}"]}}
    task = load_task(str(make_task(rows=qa_rows(20), models=[{"spec": "fake:free"}, paid, judge],
                                   metrics=[rubric], **{"pass": {"quality": 0.5}})))
    configs = [task.model_config("fake:free"), task.model_config("fake:paid")]
    providers = [(c, create_provider(c)) for c in configs]
    store = Store(tmp_path / "s.db")
    outcomes = await run_task(task, load_samples(task), providers, store, RunOptions(budget_usd=0.5))
    for outcome in outcomes:
        df = load_run(outcome.run_id, store)
        errors = [s["quality"]["error"] for s in df["scores"] if s["quality"]["error"]]
        assert not errors, errors  # no example stored with a judge that was never called
        assert outcome.left == 20 - len(df)
    assert {o.status for o in outcomes} <= {"completed", "budget-stopped"} and any(o.left for o in outcomes)
    assert all(o.status == ("budget-stopped" if o.left else "completed") for o in outcomes)
