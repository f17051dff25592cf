"""What the verdict's cost and latency rest on, measured as a user would: a local batched run's throughput and
per-request latency, `evals latency` profiles that `decide` uses, provider errors that stop a verdict until
they are retried, and the `decision:` settings checked at load with file, line and field."""

from __future__ import annotations

import json
import time
from datetime import date

import pytest
from typer.testing import CliRunner

from evals.analyse.decide import revisit_note
from evals.analyse.summary import summarize
from evals.cli import app
from evals.data.golden import load_samples
from evals.data.tasks import load_task
from evals.run.store import Store, load_run
from tests.conftest import answer_for, assert_refused_at_load, qa_rows
from tests.standin_server import Fault, StandinServer, last_user_message


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    pytest.importorskip("torch")
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


async def test_local_batched_run_measures_throughput_and_per_request_latency(tiny_dir, make_task, tmp_path) -> None:
    from evals.providers import create_provider
    from evals.run.runner import RunOptions, run_task
    from evals.types import GenerateParams, Message, ModelConfig, ModelSpec

    task = load_task(str(make_task(rows=qa_rows(50))))
    config = ModelConfig(spec=ModelSpec("local", str(tiny_dir)), max_tokens=24, concurrency=8)
    provider = create_provider(config)
    await provider.generate([Message("user", "warm up")], GenerateParams(max_tokens=1))  # load the model first
    store = Store(tmp_path / "s.db")
    start = time.perf_counter()
    [outcome] = await run_task(task, load_samples(task), [(config, provider)], store, RunOptions())
    wall = time.perf_counter() - start
    df = load_run(outcome.run_id, store)
    s = summarize(df)
    assert s.done == 50 and s.errors == 0
    assert s.calls_per_hour == pytest.approx(50 / wall * 3600, rel=0.15)
    assert s.concurrency == 8 and s.hardware.startswith("CPU: ")
    # seven batches of up to eight: one request's latency is its own row's, not its batch's queue plus the run's
    assert s.latency_p50_s < wall / 3 and df["latency_s"].max() < 0.8 * wall
    assert s.queue_p50_s > 0 and (df["queue_s"] + df["latency_s"] <= wall).all()
    assert 0 < s.ttft_p50_s <= s.latency_p50_s


def test_latency_profile_is_stored_and_decide_costs_from_it(tiny_dir, make_task, tmp_path) -> None:
    local = f"local:{tiny_dir}"
    models = [{"spec": "fake:base", "options": {"responses": ["not json"]},
               "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}, {"spec": local, "max_tokens": 16}]
    decision = {"baseline": "fake:base", "candidate": local, "volume": 10_000, "max_error_rate": 1,
                "self_hosted": {"gpu_hourly_usd": 1.0}}
    folder = make_task(rows=qa_rows(8), models=models, decision=decision)
    store = tmp_path / "s.db"
    measured = invoke("latency", folder, "-m", local, "--concurrency", "1,4", "-n", "4", "--store", store,
                      "--no-progress", "--json")
    assert measured.exit_code == 0, measured.output
    profile = json.loads(measured.stdout)
    assert [lv["concurrency"] for lv in profile["levels"]] == [1, 4]
    for lv in profile["levels"]:
        assert lv["n"] == 4 and lv["errors"] == 0 and lv["calls_per_hour"] > 0
        assert 0 < lv["ttft_p50_s"] <= lv["latency_p50_s"] <= lv["latency_p95_s"]
    assert profile["hardware"].startswith("CPU: ")
    table = invoke("latency", folder, "-m", local, "--concurrency", "2", "-n", "2", "--store", store, "--no-progress")
    assert table.exit_code == 0 and "calls/h" in table.stdout and "stored as latency profile 2" in table.stderr

    decided = invoke("decide", folder, "--store", store, "--no-progress", "--json")
    assert decided.exit_code == 0, decided.output
    verdict = json.loads(decided.stdout)["verdict"]
    newest = Store(store).latency_profile(load_task(str(folder)).name, local)
    assert newest.id == 2 and verdict["latency"]["candidate"]["concurrency"] == 2
    assert "`evals latency` profile 2" in verdict["costs"]["candidate"]["basis"]
    assert verdict["costs"]["candidate"]["per_call_usd"] == pytest.approx(
        1.0 / (newest.levels[0]["calls_per_hour"] * 0.7))


def test_latency_flags_are_checked(make_task) -> None:
    folder = make_task()
    bad = invoke("latency", folder, "-m", "fake:x", "--concurrency", "1,eight")
    assert bad.exit_code == 2 and "--concurrency takes numbers" in bad.stderr


def qa_answer(body) -> str:
    return answer_for(int(last_user_message(body).split()[-1]))


def test_decide_refuses_a_flaky_baseline_then_retries_only_its_errors(make_task, tmp_path) -> None:
    with StandinServer(qa_answer) as server:
        models = [{"spec": "openai:gpt-4o-mini", "base_url": server.base_url},
                  {"spec": "fake:cand", "options": {"responses": ["{}"]}}]
        folder = make_task(rows=qa_rows(50), models=models,
                           decision={"baseline": "openai:gpt-4o-mini", "candidate": "fake:cand"})
        store = tmp_path / "s.db"
        server.inject(*[Fault(500)] * 10)  # an outage: 10 of 50 calls fail, and nothing retries them
        first = invoke("decide", folder, "--store", store, "--no-progress", "--retries", "0")
        assert first.exit_code == 2, first.output
        assert "failed on 10 of 50 examples (20%), above decision.max_error_rate 5%" in first.stderr
        assert "Traceback" not in first.output
        received = server.counts.received

        second = invoke("decide", folder, "--store", store, "--no-progress", "--json")  # the provider recovered
        assert second.exit_code == 0, second.output
        assert server.counts.received - received == 10  # only the errored examples were called again
        assert "has 10 provider error(s): retrying those examples first" in second.stderr
        data = json.loads(second.stdout)
        assert data["a"]["summary"]["errors"] == 0 and data["a"]["summary"]["matches"] == 50
    note = revisit_note(Store(store), load_task(str(folder)).name)
    assert note and f"decision of {date.today().isoformat()}" in note and "is due for revisit by" in note


@pytest.mark.parametrize(("block", "field", "message"), [
    ({"self_hosted": {"gpu_hourly_usd": 1, "utilization": 0.5}}, "decision.self_hosted.utilization",
     "did you mean 'utilisation'"),
    ({"self_hosted": {"gpu_hourly_usd": 1, "utilisation": 1.5}}, "decision.self_hosted.utilisation",
     "less than or equal to 1"),
    ({"self_hosted": {"calls_per_hour": 100}}, "decision.self_hosted.gpu_hourly_usd", "required"),
    ({"api_batch": "yes"}, "decision.api_batch", "valid boolean"),
    ({"max_p95_s": -1}, "decision.max_p95_s", "greater than 0"),
    ({"baseline": "gpt-4o"}, "decision.baseline", "provider:model"),
    ({"volume": "lots"}, "decision.volume", "valid number"),
])
def test_decision_settings_are_validated_at_load_with_file_line_and_field(make_task, block, field, message) -> None:
    assert_refused_at_load(make_task(decision=block), field, message)
