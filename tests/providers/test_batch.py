"""Batch API runs through the real SDKs against the stand-in's batch endpoints: every example scored at
batch prices, failed items and expired batches resubmitted for what they left unfinished, the budget
reserved before a batch is submitted, providers and servers without a Batch API refused before any call,
and Anthropic's prompt cache marked on the shared prefix only and priced at its own rates."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sqlite3
from typing import Any

import pytest
from typer.testing import CliRunner

from evals.cli import app
from evals.data.golden import load_samples
from evals.data.prompts import render_messages
from evals.data.tasks import load_task
from evals.errors import EvalsError
from evals.providers import create_provider
from evals.run.budget import Budget, estimate_cost
from evals.run.runner import RunOptions, run_task
from evals.run.store import Store, load_run
from tests.conftest import assert_refused_at_load, qa_rows
from tests.providers.test_providers_api import MODELS, qa_answer
from tests.standin_server import StandinServer

FAST = RunOptions(backoff_s=0.001, max_backoff_s=0.01, timeout_s=5)
PROVIDERS = ("openai", "anthropic")


def batched_task(make_task, server: StandinServer, provider: str, n: int, *, options: dict[str, Any] | None = None,
                 task: dict[str, Any] | None = None, **model_settings: Any):
    model = {"spec": f"{provider}:{MODELS[provider]}", "base_url": server.base_url_for(provider), "batch": True,
             "options": {"batch_poll_s": 0.05, **(options or {})}, **model_settings}
    task = load_task(str(make_task(rows=qa_rows(n), models=[model], **(task or {}))))
    return task, load_samples(task)


def run(task, samples, store: Store, options: RunOptions = FAST, budget: Budget | None = None):
    providers = [(c, create_provider(c)) for c in task.models]
    return asyncio.run(run_task(task, samples, providers, store, options, budget=budget))


def submitted(server: StandinServer) -> dict[str, int]:
    return server.stats()["batches"]["submitted_by_prompt"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_500_example_batched_run_scores_every_example_at_batch_prices(make_task, provider) -> None:
    with StandinServer(qa_answer, batch_delay=0.3, record=False) as server:
        task, samples = batched_task(make_task, server, provider, 500)
        store = Store()
        [outcome] = run(task, samples, store)
        df = load_run(outcome.run_id, store)
        assert outcome.status == "completed" and df["passed"].all() and len(df) == 500
        # one batch of 500, each example in it once; nothing went through the plain endpoint
        assert server.stats()["batches"]["created"] == 1 and server.counts.received == 0
        assert submitted(server) == {f"question {i}": 1 for i in range(500)}
        # "Answer with JSON." + "question i": 5 input tokens; '{"labels": ["l0"]}': 2 output tokens
        per_mtok = {"openai": (0.15, 0.60), "anthropic": (1.00, 5.00)}[provider]
        batch_price = (5 * per_mtok[0] + 2 * per_mtok[1]) / 1e6 * 0.5
        assert df["cost_usd"].tolist() == pytest.approx([batch_price] * 500)
        [batch] = store.batches_of(outcome.run_id)
        assert batch["items"] == 500 and batch["status"] == "ended"
        assert (df["latency_s"] >= 0.3).all()  # a batched call's latency is its batch's turnaround


@pytest.mark.parametrize("provider", PROVIDERS)
def test_failed_items_go_again_in_a_batch_of_their_own(make_task, provider) -> None:
    flaky = frozenset({"question 3", "question 7"})
    with StandinServer(qa_answer, batch_fail_once=flaky) as server:
        task, samples = batched_task(make_task, server, provider, 12)
        store = Store()
        [outcome] = run(task, samples, store)
        assert outcome.status == "completed" and load_run(outcome.run_id, store)["passed"].all()
        stats = server.stats()["batches"]
        assert stats["created"] == 2
        assert submitted(server) == {f"question {i}": 2 if f"question {i}" in flaky else 1 for i in range(12)}
        assert set(stats["completed_by_prompt"].values()) == {1}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_expired_batch_is_resubmitted_for_its_unfinished_items_only(make_task, provider) -> None:
    with StandinServer(qa_answer, batch_expire=1) as server:
        task, samples = batched_task(make_task, server, provider, 10)
        store = Store()
        [outcome] = run(task, samples, store)
        assert outcome.status == "completed" and load_run(outcome.run_id, store)["passed"].all()
        # the first half was answered before the batch expired; only the second half went again
        assert submitted(server) == {f"question {i}": 1 if i < 5 else 2 for i in range(10)}
        assert set(server.stats()["batches"]["completed_by_prompt"].values()) == {1}
        assert [b["status"] for b in store.batches_of(outcome.run_id)] == ["lost", "ended"]


def test_the_budget_is_reserved_before_a_batch_is_submitted_and_never_passed(make_task) -> None:
    with StandinServer(qa_answer) as server:
        task, samples = batched_task(make_task, server, "openai", 40, max_tokens=2000)
        config = task.models[0]
        worst = estimate_cost(config, render_messages(task.prompt, samples[0].fields, config), config.params)
        limit = worst * 7.5  # room for the worst case of 7 calls at batch prices, not 8
        store = Store()
        [outcome] = run(task, samples, store, budget=Budget(limit))
        batches = store.batches_of(outcome.run_id)
        assert batches[0]["items"] == 7  # the first batch held what the budget could cover at its worst
        df = load_run(outcome.run_id, store)
        spent = df["cost_usd"].sum()
        assert spent <= limit and outcome.budget.spent_usd == pytest.approx(spent)
        assert sum(submitted(server).values()) == len(df) == outcome.done  # nothing submitted went unpaid-for
        if outcome.status == "budget-stopped":
            assert outcome.left == 40 - outcome.done


@pytest.mark.parametrize("spec", ["fake:scripted", "local:smollm2"])
def test_batch_on_a_provider_without_a_batch_api_is_refused_before_anything_is_called(make_task, spec) -> None:
    folder = make_task(rows=qa_rows(3), models=[{"spec": spec}])
    result = CliRunner().invoke(app, ["run", str(folder), "--batch", "--no-cache"])
    assert result.exit_code == 2 and "field '--batch'" in result.stderr
    assert f"the {spec.split(':')[0]} provider has no Batch API (batch works with anthropic, openai)" in result.stderr
    assert "Traceback" not in result.stderr and not Store().list_runs()
    assert_refused_at_load(make_task(rows=qa_rows(3), models=[{"spec": spec, "batch": True}]), "models.0.batch",
                           "has no Batch API")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_server_without_batch_endpoints_is_refused_before_any_call(make_task, provider) -> None:
    with StandinServer(qa_answer, batches=False) as server:
        task, samples = batched_task(make_task, server, provider, 3)
        store = Store()
        with pytest.raises(EvalsError, match=r"has no Batch API \(it answered HTTP 404 to GET .*batches\)"):
            run(task, samples, store)
        assert server.counts.received == 0 and not store.list_runs()


def test_cache_control_marks_the_shared_prefix_only_and_cached_tokens_are_priced_at_their_rates(make_task) -> None:
    few_shot = [{"fields": {"question": "question 99"}, "answer": '{"labels": ["l0"]}'}]
    with StandinServer(qa_answer) as server:
        task, samples = batched_task(make_task, server, "anthropic", 3, options={"cache_prompt": True},
                                     task={"prompt": {"system": "Answer with JSON.", "user": "{{ question }}",
                                                      "few_shot": few_shot}})
        store = Store()
        [outcome] = run(task, samples, store)
        [batch] = server.batches.batches.values()
        for _, body in batch.items:
            assert body["system"] == "Answer with JSON."  # covered by the breakpoint after it
            shot_user, shot_answer, own = body["messages"]
            assert shot_user == {"role": "user", "content": "question 99"}
            assert shot_answer["content"] == [{"type": "text", "text": '{"labels": ["l0"]}',
                                               "cache_control": {"type": "ephemeral"}}]
            assert isinstance(own["content"], str)  # the example's own message is never marked
        df = load_run(outcome.run_id, store).sort_values("example_id")
        # prefix: system 3 + few-shot 2 + 2 words = 7 tokens (written by the first item, read by the rest);
        # each example adds 2 fresh input tokens and answers with 2 output tokens. claude-haiku-4-5 per million:
        # input $1.00, cache write $1.25, cache read $0.10, output $5.00; batch: half of each.
        write = (2 * 1.00 + 7 * 1.25 + 2 * 5.00) / 1e6 * 0.5
        read = (2 * 1.00 + 7 * 0.10 + 2 * 5.00) / 1e6 * 0.5
        assert df["cache_write_tokens"].tolist() == [7, 0, 0] and df["cached_input_tokens"].tolist() == [0, 7, 7]
        assert df["cost_usd"].tolist() == pytest.approx([write, read, read])
        result = CliRunner().invoke(app, ["show", outcome.run_id])
        saved = (2 * 7 * (1.00 - 0.10) - 7 * (1.25 - 1.00)) / 1e6 * 0.5  # two reads, less the one write
        assert f"the prompt cache saved ${saved:.6f}: 14 of 27 input tokens read from it, 7 written" in result.stdout
        assert "every cost is at batch prices" in result.stdout


def test_without_cache_prompt_nothing_is_marked(make_task) -> None:
    with StandinServer(qa_answer) as server:
        model = {"spec": "anthropic:claude-haiku-4-5", "base_url": server.anthropic_base_url}
        task = load_task(str(make_task(rows=qa_rows(2), models=[model])))
        run(task, load_samples(task), Store())
        assert all("cache_control" not in str(r.body) for r in server.requests)
        marked = load_task(str(make_task(rows=qa_rows(2), models=[{**model, "options": {"cache_prompt": True}}])))
        run(marked, load_samples(marked), Store())
        body = server.requests[-1].body  # no few-shot turns: the system prompt is the shared prefix
        assert body["system"] == [{"type": "text", "text": "Answer with JSON.", "cache_control": {"type": "ephemeral"}}]
        assert isinstance(body["messages"][-1]["content"], str)


def test_a_batched_run_is_recorded_and_shown(make_task) -> None:
    with StandinServer(qa_answer) as server:
        folder = make_task(rows=qa_rows(4), models=[{"spec": "openai:gpt-4o-mini", "base_url": server.base_url,
                                                     "options": {"batch_poll_s": 0.05}}, "fake:scripted"])
        result = CliRunner().invoke(app, ["run", str(folder), "--batch", "--no-cache", "--progress", "plain"])
        assert result.exit_code == 0, result.stderr
        # a model without a Batch API beside one with it: named, and run as usual
        assert "fake:scripted: the fake provider has no Batch API; it runs without --batch" in result.stderr
        assert "batch batch_" in result.stderr and "submitted with 4 request(s)" in result.stderr
        assert "4 done, 0 failed" in result.stderr and "at batch prices" in result.stderr
        assert "$0.0000 batch" in result.stdout and "every cost is at batch prices" in result.stdout
        batched, plain = sorted(Store().list_runs(), key=lambda r: r.model, reverse=True)
        assert batched.manifest["model"]["batch"] is True and plain.manifest["model"]["batch"] is False
        items = sqlite3.connect(Store().path).execute("SELECT custom_id, example_id FROM batch_items").fetchall()
        assert sorted(items) == [(f"ex{i:03d}-1", f"ex{i:03d}") for i in range(4)]


def test_a_store_that_cannot_keep_a_batch_stops_the_run_with_one_message(make_task, monkeypatch) -> None:
    from evals.errors import StorageError

    def full(*args: Any, **kwargs: Any) -> None:
        raise StorageError("could not write the run store: database or disk is full", file="evals.db")

    with StandinServer(qa_answer) as server:
        task, samples = batched_task(make_task, server, "openai", 5)
        store = Store()
        monkeypatch.setattr(store, "add_batch", full)
        with pytest.raises(StorageError, match=r"disk is full\. 0 result\(s\) of run \w+ are safely stored; once it "
                                               r"is fixed, resume with `evals run --resume \w+`"):
            run(task, samples, store)


def test_a_nightly_check_runs_batched_and_gates_as_usual(make_task) -> None:
    with StandinServer(qa_answer) as server:
        model = {"spec": "openai:gpt-4o-mini", "base_url": server.base_url, "options": {"batch_poll_s": 0.05}}
        folder = make_task(rows=qa_rows(6), models=[model], check={"model": "openai:gpt-4o-mini"})
        cli = CliRunner()
        assert cli.invoke(app, ["run", str(folder), "--no-cache", "--progress", "none"]).exit_code == 0
        assert cli.invoke(app, ["baseline", "set", str(folder), "latest", "-m", "openai:gpt-4o-mini"]).exit_code == 0
        result = cli.invoke(app, ["check", str(folder), "--batch", "--progress", "none"])
        assert result.exit_code == 0, result.stderr
        assert "check PASS" in result.stderr and server.stats()["batches"]["created"] == 1
        checked = Store().list_runs()[0]
        assert checked.manifest["model"]["batch"] is True and checked.n_done == 6


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_stored_batch_the_provider_no_longer_knows_is_resubmitted(make_task, provider) -> None:
    from evals.providers.batch import BatchItem, request_key
    from evals.types import CALL_FOR, CallFor, Message

    with StandinServer(qa_answer) as server:
        task, _ = batched_task(make_task, server, provider, 1)
        store, config = Store(), task.models[0]
        messages = [Message("system", "Answer with JSON."), Message("user", "question 0")]

        async def resumed() -> str:
            batching = create_provider(config)
            await batching.prepare(store)
            key = request_key(batching._api.request(messages, config.params))
            store.add_batch("batch_deleted", batching.id, [BatchItem("", "ex000-1", "run1", "ex000", key)])
            CALL_FOR.set(CallFor("run1", "ex000"))
            try:
                return (await batching.generate(messages, config.params)).text
            finally:
                await batching.aclose()

        assert asyncio.run(resumed()) == '{"labels": ["l0"]}'
        assert server.stats()["batches"]["created"] == 1  # the unknown batch's item, submitted anew
        assert [b["status"] for b in store.batches_of("run1")] == ["lost", "ended"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_run_killed_while_submitting_finds_its_openai_batch_by_its_token(make_task, monkeypatch, provider) -> None:
    """The one window a kill could otherwise cost money: the batch created, its id not yet stored."""
    with StandinServer(qa_answer, batch_delay=0.5) as server:
        task, samples = batched_task(make_task, server, provider, 4)
        store = Store()
        monkeypatch.setattr(store, "batch_created", lambda token, batch_id: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):  # the process "dies" right after the API created the batch
            run(task, samples, store)
        [run_id] = [r.id for r in store.list_runs()]
        from evals.run.resume import resume_run

        outcome = asyncio.run(resume_run(run_id, Store(store.path), FAST))  # a new process, the same store
        assert outcome.status == "completed" and load_run(run_id, Store(store.path))["passed"].all()
        created = server.stats()["batches"]["created"]
        # OpenAI's batch carries the token in its metadata: found and polled. Anthropic's cannot: sent again.
        assert created == {"openai": 1, "anthropic": 2}[provider]


def test_a_run_cancelled_as_the_batch_is_created_finds_it_again(make_task, monkeypatch) -> None:
    """Ctrl-C or SIGTERM cancels the submit after the API created the batch: the resume polls that batch."""
    from evals.providers.openai import OpenAIBatches

    created = OpenAIBatches.submit

    async def submit_then_cancelled(self, lines, token):
        await created(self, lines, token)
        raise KeyboardInterrupt  # the signal lands before the batch id comes back

    with StandinServer(qa_answer, batch_delay=0.5) as server:
        task, samples = batched_task(make_task, server, "openai", 4)
        store = Store()
        monkeypatch.setattr(OpenAIBatches, "submit", submit_then_cancelled)
        with pytest.raises(KeyboardInterrupt):
            run(task, samples, store)
        monkeypatch.setattr(OpenAIBatches, "submit", created)
        [run_id] = [r.id for r in store.list_runs()]
        from evals.run.resume import resume_run

        outcome = asyncio.run(resume_run(run_id, Store(store.path), FAST))
        assert outcome.status == "completed" and load_run(run_id, Store(store.path))["passed"].all()
        assert server.stats()["batches"]["created"] == 1  # found by its token, not paid for twice


@pytest.mark.parametrize("provider", PROVIDERS)
def test_polls_that_keep_failing_stop_the_run_interrupted_and_its_resume_polls_the_same_batch(make_task,
                                                                                              provider) -> None:
    """Bounded as a live call's retries are: the first failed poll and max_retries more, then the run stops."""
    from evals.errors import BatchUnreachable
    from evals.run.resume import resume_run

    with StandinServer(qa_answer, batch_fail_polls=10**6) as server:
        task, samples = batched_task(make_task, server, provider, 4)
        store = Store()
        with pytest.raises(BatchUnreachable) as stopped:
            run(task, samples, store, dataclasses.replace(FAST, max_retries=3))
        [record] = store.list_runs()
        [batch] = store.batches_of(record.id)
        assert server.stats()["batches"]["polls"] == 4  # the first failed poll and 3 retries
        assert re.fullmatch(
            re.escape(f"{task.models[0].spec}: polling batch {batch['id']} failed 4 time(s) in a row over ") +
            r"\d+s \(last: .*503.*\); " + re.escape(
                f"its id is stored and it goes on at the provider. 0 result(s) of run {record.id} are safely "
                f"stored; `evals run --resume {record.id}` polls the same batch (nothing is submitted or paid for "
                "again)"), str(stopped.value))
        assert "\n" not in str(stopped.value)
        assert record.status == "interrupted" and record.n_done == 0 and batch["status"] != "ended"

        server.batches.fail_polls = 0
        outcome = asyncio.run(resume_run(record.id, Store(store.path), FAST))
        assert outcome.status == "completed" and load_run(record.id, Store(store.path))["passed"].all()
        assert server.stats()["batches"]["created"] == 1  # the same batch, collected: nothing paid for twice


def test_polls_that_fail_for_longer_than_retry_for_stop_the_run_on_the_command_line(make_task) -> None:
    """`evals run --batch --retries 1000 --retry-for 0.3`: one line, exit 2, the resume command; then it resumes."""
    with StandinServer(qa_answer, batch_fail_polls=10**6) as server:
        task, _ = batched_task(make_task, server, "openai", 3)
        stopped = CliRunner().invoke(app, ["run", str(task.dir), "--retries", "1000", "--retry-for", "0.3",
                                           "--no-cache", "--progress", "none"])
        assert stopped.exit_code == 2, stopped.output
        [record] = Store().list_runs()
        [line] = stopped.stderr.strip().splitlines()
        assert line.startswith("error: openai:gpt-4o-mini: polling batch batch_") and "Traceback" not in line
        assert f"`evals run --resume {record.id}` polls the same batch" in line
        assert 3 <= server.stats()["batches"]["polls"] < 30 and record.status == "interrupted"
        server.batches.fail_polls = 0
        resumed = CliRunner().invoke(app, ["run", "--resume", record.id, "--no-cache", "--progress", "none"])
        assert resumed.exit_code == 0, resumed.output
        assert Store().get_run(record.id).n_done == 3 and server.stats()["batches"]["created"] == 1
