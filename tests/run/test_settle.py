"""A run always ends completed or interrupted: settling it survives a module half-imported by another thread,
bookkeeping that fails, and a process that died without settling (it reads as interrupted and resumes)."""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evals.cli import app
from evals.data.golden import load_samples
from evals.data.tasks import load_task
from evals.providers.fake import FakeProvider
from evals.run.cache import ResponseCache
from evals.run.runner import RunOptions, run_task
from evals.run.store import Store
from tests.conftest import answer_for, qa_rows

FAST = RunOptions(backoff_s=0.001, max_backoff_s=0.01, timeout_s=30)
IMPORT_STARTED = threading.Event()


class ImportsTorch(FakeProvider):
    """A model whose first call imports torch in a thread, as a local model loads its weights."""

    async def generate(self, messages, params):
        await asyncio.to_thread(importlib.import_module, "torch")
        return await super().generate(messages, params)


@pytest.fixture
def slow_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`torch` is a stand-in whose import takes a second before it has `cuda` (the real one takes seconds)."""
    package = tmp_path / "slow" / "torch"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(f"""
        import time
        import {__name__} as test
        test.IMPORT_STARTED.set()
        time.sleep(1.0)
        class cuda:
            is_available = staticmethod(lambda: False)
    """))
    def torch_modules() -> dict[str, Any]:
        return {m: sys.modules.pop(m) for m in [m for m in sys.modules if m == "torch" or m.startswith("torch.")]}

    real = torch_modules()
    monkeypatch.syspath_prepend(str(tmp_path / "slow"))
    IMPORT_STARTED.clear()
    yield
    torch_modules()  # the stand-in never outlives the test: a later `import torch` gets the real one again
    sys.modules.update(real)


async def test_a_cached_run_settles_while_another_model_imports_torch(make_task, tmp_path, slow_torch) -> None:
    task = load_task(str(make_task(rows=qa_rows(3))))
    samples = load_samples(task)
    store, cache = Store(tmp_path / "s.db"), ResponseCache(tmp_path / "cache.db")
    cached = FakeProvider(responses=[answer_for(i) for i in range(3)], max_concurrency=1)
    await run_task(task, samples, [(task.models[0], cached)], store, FAST, cache=cache)  # its answers now cached

    class Waits(FakeProvider):  # the same model, whose answers all come from the cache
        async def generate(self, messages, params):
            raise AssertionError("answered from the cache")

    loading = ImportsTorch(model="loading", responses=[answer_for(i) for i in range(3)])
    second_run = asyncio.create_task(run_task(task, samples, [(task.model_config("fake:loading"), loading)], store,
                                              FAST, cache=cache))
    assert await asyncio.to_thread(IMPORT_STARTED.wait, 10)
    [first] = await run_task(task, samples, [(task.models[0], Waits(max_concurrency=1))], store, FAST, cache=cache)
    [second] = await second_run
    for outcome in (first, second):
        record = store.get_run(outcome.run_id)
        assert (outcome.status, record.status, record.n_done) == ("completed", "completed", 3)
        assert record.hardware.startswith("CPU: ")


async def test_settling_a_run_whose_bookkeeping_fails_says_so_and_ends_it(make_task, tmp_path) -> None:
    task = load_task(str(make_task(rows=qa_rows(2))))

    class NoHardware(FakeProvider):
        @property
        def hardware(self) -> str:
            raise RuntimeError("cannot tell")

    said: list[str] = []
    store = Store(tmp_path / "s.db")
    [outcome] = await run_task(task, load_samples(task), [(task.models[0], NoHardware())], store, FAST,
                               warn=said.append)
    assert store.get_run(outcome.run_id).status == "completed"
    assert said == [f"run {outcome.run_id}: its busy time was not recorded (RuntimeError: cannot tell)"]


def test_a_run_whose_process_died_reads_interrupted_and_resumes(make_task, tmp_path) -> None:
    folder = make_task(rows=qa_rows(4), models=[{"spec": "fake:scripted", "options": {
        "responses": [answer_for(i) for i in range(4)]}}])
    store_path = tmp_path / "s.db"
    # a process that stores a run and one result, then dies before it can settle the run
    died = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os
        from evals.data.golden import load_samples
        from evals.data.tasks import load_task
        from evals.providers import create_provider
        from evals.run.runner import RunOptions, create_runs
        from evals.run.store import Store
        from evals.types import Completion, ExampleResult
        task = load_task({str(folder)!r})
        samples = load_samples(task)
        store = Store({str(store_path)!r})
        [job] = create_runs(task, samples, [(task.models[0], create_provider(task.models[0]))], store, RunOptions())
        run_id = job.run_id
        store.add_result(run_id, ExampleResult(samples[0], Completion(text="{{}}"), {{}}, False, 1))
        print(run_id)
        os._exit(9)
    """)], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())}, timeout=120)
    assert died.returncode == 9, died.stderr
    run_id = died.stdout.strip()
    assert Store(store_path, readonly=True).get_run(run_id).status == "interrupted"  # read as it stands, unwritten
    listed = CliRunner().invoke(app, ["runs", "--store", str(store_path), "--json"])
    assert listed.exit_code == 0 and '"status": "interrupted"' in listed.output
    resumed = CliRunner().invoke(app, ["run", "--resume", run_id, "--store", str(store_path), "--no-progress"])
    assert resumed.exit_code == 0, resumed.output
    record = Store(store_path).get_run(run_id)
    assert (record.status, record.n_done) == ("completed", 4)


def test_a_running_run_of_a_live_process_stays_running(tmp_path) -> None:
    store = Store(tmp_path / "s.db")
    run_id = store.create_run("t", "fake:x", 1, {})
    assert Store(tmp_path / "s.db").get_run(run_id).status == "running"  # this process still runs it
