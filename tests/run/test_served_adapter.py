"""The serving recipe: a base model and its LoRA adapters behind vLLM's OpenAI-compatible server
(`--enable-lora --lora-modules NAME=finetune/adapters/NAME`), evaluated as `openai:NAME` with `base_url`,
the adapter declared beside the spec so its hash is in every run's manifest, cache key and latency profile.
Against the stand-in server answering as vLLM does (its model list, its 404 for a name it does not serve)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from evals._util import dir_hash
from evals.analyse.economics import is_self_hosted
from evals.cli import app
from evals.data.tasks import load_task
from evals.run.latency import profile_identity
from evals.run.store import Store, load_run
from tests.conftest import assert_refused_at_load
from tests.standin_server import StandinServer

BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"


def write_adapter(folder: Path, weights: bytes = b"lora weights v1") -> Path:
    """A peft adapter folder as `evals finetune` leaves it (its contents are what the hash covers)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": BASE, "peft_type": "LORA",
                                                            "r": 16, "lora_alpha": 32}))
    (folder / "adapter_model.safetensors").write_bytes(weights)
    return folder


@pytest.fixture
def served(tmp_path, monkeypatch):
    """An adapter in finetune/adapters/resume-feedback (relative to the working folder, as evals finetune
    writes it) and a server started with it as a LoRA module."""
    monkeypatch.chdir(tmp_path)
    adapter = write_adapter(Path("finetune/adapters/resume-feedback"))
    with StandinServer(served={BASE: None, "resume-feedback": str(adapter)}) as server:
        yield server, adapter


def _task(make_task, server, **entry):
    model = {"spec": "openai:resume-feedback", "base_url": server.base_url, "adapter": "finetune/adapters/resume-feedback",
             **entry}
    return make_task(models=[model])


def _run(folder, db, *args):
    return CliRunner().invoke(app, ["run", str(folder), "--store", str(db), "--no-progress", *args])


def test_a_served_adapter_is_called_by_its_module_name_and_its_hash_recorded(served, make_task, tmp_path) -> None:
    server, adapter = served
    folder = _task(make_task, server)
    db = tmp_path / "s.db"
    result = _run(folder, db)
    assert result.exit_code == 0, result.output
    [run] = Store(db).list_runs()
    df = load_run(run.id, db)
    assert run.n_done == 6 and df["error"].isna().all()
    assert {r.body["model"] for r in server.requests} == {"resume-feedback"}
    manifest = df.attrs["manifest"]
    assert manifest["adapter"] == {"path": "finetune/adapters/resume-feedback", "hash": dir_hash(adapter)}
    assert manifest["model"]["spec"] == "openai:resume-feedback" and manifest["model"]["adapter"] == str(adapter)
    assert set(df["model_version"]) == {"resume-feedback"}  # the name the server answered under


def test_a_retrained_adapter_is_called_again_not_answered_from_the_cache(served, make_task, tmp_path) -> None:
    server, adapter = served
    folder = _task(make_task, server)
    db = tmp_path / "s.db"
    assert _run(folder, db).exit_code == 0
    assert _run(folder, db).exit_code == 0  # the same adapter: every answer from the cache
    assert server.counts.received == 6
    first_hash = dir_hash(adapter)
    write_adapter(adapter, b"lora weights v2")  # retrained and reloaded by the server
    assert _run(folder, db).exit_code == 0
    assert server.counts.received == 12
    hashes = Counter(load_run(r.id, db).attrs["manifest"]["adapter"]["hash"] for r in Store(db).list_runs())
    assert hashes == {first_hash: 2, dir_hash(adapter): 1}


def test_a_name_the_server_does_not_serve_fails_with_its_message(served, make_task, tmp_path) -> None:
    server, _ = served
    folder = make_task(models=[{"spec": "openai:resume-feedbak", "base_url": server.base_url,
                                "adapter": "finetune/adapters/resume-feedback"}])
    db = tmp_path / "s.db"
    _run(folder, db, "--retries", "0")
    [run] = Store(db).list_runs()
    errors = load_run(run.id, db)["error"]
    assert errors.str.contains("The model `resume-feedbak` does not exist").all()


def test_latency_profiles_and_costs_know_the_served_adapter(served, make_task, tmp_path) -> None:
    server, adapter = served
    folder = _task(make_task, server, stream=True)
    db = tmp_path / "s.db"
    result = CliRunner().invoke(app, ["latency", str(folder), "-m", "openai:resume-feedback", "--concurrency", "1,2",
                                      "-n", "2", "--hardware", "1x L4 24GB", "--store", str(db), "--no-progress"])
    assert result.exit_code == 0, result.output
    config = load_task(str(folder)).models[0]
    profile = Store(db).latency_profile("qa", "openai:resume-feedback", profile_identity(config))
    assert profile is not None and profile.hardware == "1x L4 24GB"
    write_adapter(adapter, b"lora weights v2")
    assert Store(db).latency_profile("qa", "openai:resume-feedback", profile_identity(config)) is None
    assert is_self_hosted(config, None)  # a served fine-tune is costed by the GPU hour, not as an API


def test_a_declared_adapter_that_is_not_here_skips_the_model_with_a_hint(served, make_task, tmp_path) -> None:
    server, _ = served
    folder = make_task(models=[{"spec": "openai:other", "base_url": server.base_url,
                                "adapter": "finetune/adapters/other"}, "fake:scripted"])
    result = _run(folder, tmp_path / "s.db")
    assert result.exit_code == 0, result.output
    assert "skipped openai:other: no LoRA adapter at 'finetune/adapters/other'" in result.stderr
    assert server.counts.received == 0


def test_a_local_model_takes_its_adapter_in_the_spec_not_beside_it(make_task) -> None:
    folder = make_task(models=[{"spec": "local:smollm2", "adapter": "finetune/adapters/x"}])
    assert_refused_at_load(folder, "models.0.adapter", "local:smollm2+lora:finetune/adapters/x")
    raw = yaml.safe_load((folder / "task.yaml").read_text())
    raw["models"] = [{"spec": "openai:x", "adapter": 3}]
    (folder / "task.yaml").write_text(yaml.safe_dump(raw))
    assert_refused_at_load(folder, "models.0.adapter", "expected a non-empty string")
