"""The runner: every example completed once, failures recorded as data, cache, budget, resume."""

from __future__ import annotations

import asyncio
import time

import pytest

from evals.analyse.summary import summarize
from evals.data.golden import load_samples
from evals.data.tasks import load_task
from evals.errors import ProviderError
from evals.providers.fake import FakeProvider
from evals.run.budget import Budget
from evals.run.cache import ResponseCache
from evals.run.runner import ModelCalls, RunOptions, execute_run, run_task
from evals.run.store import Store, load_run
from evals.types import ModelConfig, ModelSpec, Price
from tests.conftest import answer_for

FAST = RunOptions(backoff_s=0.001, max_backoff_s=0.01, timeout_s=5)


def _setup(make_task, n=6):
    from tests.conftest import qa_rows

    task = load_task(str(make_task(rows=qa_rows(n))))
    return task, load_samples(task)


def _right_answers(n):
    return [answer_for(i) for i in range(n)]


async def test_every_example_is_scored_and_stored(make_task, tmp_path) -> None:
    task, samples = _setup(make_task)
    fake = FakeProvider(responses=_right_answers(5) + ["not json"])
    store = Store(tmp_path / "s.db")
    [outcome] = await run_task(task, samples, [(task.models[0], fake)], store, FAST)
    df = load_run(outcome.run_id, store)
    assert len(df) == 6 and len(fake.history) == 6
    assert df["passed"].tolist() == [True] * 5 + [False]
    assert df.loc[5, "score.json_valid"] == 0.0
    summary = summarize(df)
    assert summary.matches_text == "5/6 (83%, 95% CI 44-97%)"
    assert df.attrs["manifest"]["golden"]["n"] == 6


async def test_retryable_failures_are_retried_until_success(make_task, tmp_path) -> None:
    task, samples = _setup(make_task, n=3)
    fake = FakeProvider(responses=["{}"], max_concurrency=1)
    fake.enqueue(ProviderError("429", retryable=True), ProviderError("503", retryable=True), answer_for(0),
                 answer_for(1), answer_for(2))
    [outcome] = await run_task(task, samples, [(task.models[0], fake)], Store(tmp_path / "s.db"), FAST)
    assert len(fake.history) == 5
    df = load_run(outcome.run_id, Store(tmp_path / "s.db"))
    assert (outcome.done, outcome.errors) == (3, 0) and df["error"].isna().all()
    assert sorted(df["example_id"]) == [s.id for s in samples]


async def test_final_failure_is_recorded_on_the_example_not_raised(make_task, tmp_path) -> None:
    task, samples = _setup(make_task, n=3)
    fake = FakeProvider(responses=_right_answers(3), max_concurrency=1)
    fake.enqueue(ProviderError("401 invalid key", retryable=False))
    store = Store(tmp_path / "s.db")
    [outcome] = await run_task(task, samples, [(task.models[0], fake)], store, FAST)
    df = load_run(outcome.run_id, store)
    assert df["error"].notna().sum() == 1 and "401" in df["error"].dropna().iloc[0]
    assert len(fake.history) == 3  # not retried
    assert summarize(df).errors == 1 and outcome.status == "completed"


async def test_retry_after_is_honoured(make_task, tmp_path) -> None:
    task, samples = _setup(make_task, n=1)
    fake = FakeProvider(responses=_right_answers(1))
    fake.enqueue(ProviderError("429", retryable=True, retry_after=0.3))
    start = time.perf_counter()
    await run_task(task, samples, [(task.models[0], fake)], Store(tmp_path / "s.db"), FAST)
    assert time.perf_counter() - start >= 0.3


async def test_timeouts_are_retried_then_recorded(make_task, tmp_path) -> None:
    task, samples = _setup(make_task, n=2)
    fake = FakeProvider(latency_s=1.0)
    options = RunOptions(backoff_s=0.001, timeout_s=0.05, max_retries=2)
    [outcome] = await run_task(task, samples, [(task.models[0], fake)], Store(tmp_path / "s.db"), options)
    assert len(fake.history) == 6  # 2 examples x (1 try + 2 retries)
    errors = load_run(outcome.run_id, Store(tmp_path / "s.db"))["error"].tolist()
    assert outcome.errors == 2 and all("timed out after 0.05s" in e for e in errors)


async def test_concurrency_is_bounded(make_task, tmp_path) -> None:
    task, samples = _setup(make_task, n=12)
    in_flight, peak = 0, 0

    class Counting(FakeProvider):
        async def generate(self, messages, params):
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                await asyncio.sleep(0.01)
                return await super().generate(messages, params)
            finally:
                in_flight -= 1

    fake = Counting(max_concurrency=50)
    await run_task(task, samples, [(task.models[0], fake)], Store(tmp_path / "s.db"),
                   RunOptions(concurrency=3))
    assert peak == 3


async def test_second_run_is_served_from_cache(make_task, tmp_path) -> None:
    task, samples = _setup(make_task)
    cache = ResponseCache(tmp_path / "cache.db")
    store = Store(tmp_path / "s.db")
    first = FakeProvider(responses=_right_answers(6), max_concurrency=1)
    [a] = await run_task(task, samples, [(task.models[0], first)], store, FAST, cache=cache)
    second = FakeProvider(responses=["wrong"])
    [b] = await run_task(task, samples, [(task.models[0], second)], store, FAST, cache=cache)
    assert second.history == []
    da, db = load_run(a.run_id, store), load_run(b.run_id, store)
    assert da["output"].tolist() == db["output"].tolist() and db["cached"].all()
    assert summarize(db).spent_usd == 0.0 and summarize(db).matches == 6


async def test_cache_key_changes_with_params(make_task, tmp_path) -> None:
    task, samples = _setup(make_task, n=2)
    cache = ResponseCache(tmp_path / "cache.db")
    store = Store(tmp_path / "s.db")
    await run_task(task, samples, [(task.models[0], FakeProvider())], store, FAST, cache=cache)
    hotter = ModelConfig(spec=task.models[0].spec, temperature=0.7)
    fake = FakeProvider()
    await run_task(task, samples, [(hotter, fake)], store, FAST, cache=cache)
    assert len(fake.history) == 2


def test_cache_tells_servers_and_adapter_contents_apart(make_task, tmp_path) -> None:
    task, samples = _setup(make_task, n=2)
    cache = ResponseCache(tmp_path / "cache.db")
    store = Store(tmp_path / "s.db")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"v1")

    def calls(**settings) -> int:
        config = ModelConfig(spec=ModelSpec("fake", "scripted", adapter=str(adapter)), **settings)
        fake = FakeProvider()
        asyncio.run(run_task(task, samples, [(config, fake)], store, FAST, cache=cache))
        return len(fake.history)

    assert calls(base_url="http://a.example/v1") == 2
    assert calls(base_url="http://a.example/v1") == 0
    assert calls(base_url="http://b.example/v1") == 2  # same model name, another server
    (adapter / "adapter_model.safetensors").write_bytes(b"v2")  # retrained in place
    assert calls(base_url="http://a.example/v1") == 2


async def test_budget_stops_before_spending_past_it(make_task, tmp_path) -> None:
    task, samples = _setup(make_task, n=20)
    # $0.001 a token: each call is estimated at about $0.12 (100 output tokens allowed) but costs under $0.01.
    config = ModelConfig(spec=ModelSpec("fake", "scripted"), max_tokens=100, price=Price(1000, 1000))
    fake = FakeProvider(responses=_right_answers(20), max_concurrency=1, config=config)
    store = Store(tmp_path / "s.db")
    [outcome] = await run_task(task, samples, [(config, fake)], store, RunOptions(budget_usd=0.2))
    df = load_run(outcome.run_id, store)
    assert outcome.status == "budget-stopped"
    assert 0 < len(df) < 20 and len(fake.history) == len(df)
    assert df["cost_usd"].sum() <= 0.2
    assert store.get_run(outcome.run_id).status == "budget-stopped"


async def test_rerun_of_an_interrupted_run_calls_only_what_is_missing(make_task, tmp_path) -> None:
    task, samples = _setup(make_task, n=8)
    store = Store(tmp_path / "s.db")
    config = task.models[0]
    run_id = store.create_run(task.name, str(config.spec), len(samples), {"note": "test"})
    first = FakeProvider(responses=_right_answers(8), max_concurrency=1, latency_s=0.005)  # cancelled midway
    with pytest.raises(asyncio.CancelledError):
        task_ = asyncio.ensure_future(execute_run(task=task, samples=samples, config=config, provider=first,
                                                  store=store, run_id=run_id, models=ModelCalls(task, FAST, Budget())))
        while len(store.done(run_id)) < 3:
            await asyncio.sleep(0.001)
        task_.cancel()
        await task_
    assert store.get_run(run_id).status == "interrupted"
    done_before = store.done(run_id)
    second = FakeProvider(responses=["{}"])
    await execute_run(task=task, samples=samples, config=config, provider=second, store=store, run_id=run_id,
                      models=ModelCalls(task, FAST, Budget()))
    assert len(second.history) == 8 - len(done_before)
    assert len(store.done(run_id)) == 8
    assert store.get_run(run_id).status == "completed"
