"""Faults of the network: a provider failing half its calls, and one that fails everything for a while."""

from __future__ import annotations

import io

from rich.console import Console

from evals.data.golden import load_samples
from evals.data.tasks import load_task
from evals.run.calls import RunOptions
from evals.run.progress import RunProgress
from evals.run.runner import run_task
from evals.run.store import Store, load_run
from evals.types import ModelConfig, ModelSpec
from tests.conftest import qa_rows
from tests.providers.test_providers_api import qa_answer
from tests.standin_server import StandinServer

FAST = dict(backoff_s=0.001, max_backoff_s=0.01, timeout_s=5)


async def run(server: StandinServer, make_task, tmp_path, n: int, options: RunOptions, progress=None):
    task = load_task(str(make_task(rows=qa_rows(n))))
    config = ModelConfig(spec=ModelSpec("openai", "gpt-4o-mini"), base_url=server.base_url, concurrency=25)
    from evals.providers import create_provider

    store = Store(tmp_path / "s.db")
    [outcome] = await run_task(task, load_samples(task), [(config, create_provider(config))], store, options,
                               progress=progress)
    return outcome, load_run(outcome.run_id, store)


async def test_half_the_calls_failing_still_completes_every_example_in_one_run(make_task, tmp_path) -> None:
    with StandinServer(qa_answer, record=False) as server:
        server.flaky(0.5)
        outcome, df = await run(server, make_task, tmp_path, 500, RunOptions(**FAST))
        counts = server.counts
    assert len(df) == 500 and df["error"].isna().all() and df["passed"].all() and outcome.status == "completed"
    assert counts.received > 800  # about half of the requests failed
    assert set(counts.completed_by_prompt.values()) == {1} and len(counts.completed_by_prompt) == 500  # paid once


async def test_an_outage_pauses_the_calls_and_the_run_completes_when_it_ends(make_task, tmp_path) -> None:
    out = io.StringIO()
    progress = RunProgress(Console(file=out, width=200), mode="plain")
    with StandinServer(qa_answer, record=False) as server:
        server.outage(2.0)
        # three quick retries each: without the breaker every example would spend them inside the outage
        with progress:
            outcome, df = await run(server, make_task, tmp_path, 40, RunOptions(max_retries=3, **FAST), progress)
    assert len(df) == 40 and df["error"].isna().all() and outcome.status == "completed"
    log = out.getvalue()
    assert "failed 8 calls in a row: all calls paused for" in log and "answers again: calls resumed" in log
