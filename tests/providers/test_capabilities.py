"""Providers declare what they can do on their class (BaseProvider's defaults, overridden where a backend does
more), and callers ask the class: a new backend, a plugin's, then works at task loading, in servers, costs and
routing without an edit outside its own module; a plugin's plain factory gets the defaults."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from evals.analyse.economics import is_self_hosted
from evals.data.tasks import load_task
from evals.errors import EvalsError
from evals.providers import (
    BaseProvider,
    close_provider,
    create_provider,
    prepare_provider,
    provider_class,
    providers,
    register_provider,
)
from evals.run.calls import RunOptions, complete_with_retries
from evals.run.hardware import hardware_of, this_machine
from evals.run.workers import runs_elsewhere
from evals.types import Completion, GenerateParams, Message, ModelConfig, ModelSpec

REPO = Path(__file__).resolve().parents[2]


class OwnServer(BaseProvider):
    """A backend of a plugin's: its SDK reads OWN_BASE_URL, and it serves a model the team runs itself."""

    base_url_env = "OWN_BASE_URL"
    self_hosted = True

    def __init__(self, config: ModelConfig):
        self.id, self.max_concurrency = str(config.spec), 2

    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion:
        return Completion(text="ok")


class Plain:
    """A provider written to the Provider protocol alone, with a few optional members of its own."""

    def __init__(self, config: ModelConfig, **members: object):
        self.id, self.max_concurrency, self.closed = str(config.spec), 1, 0
        self.__dict__.update(members)

    async def generate(self, messages: Sequence[Message], params: GenerateParams) -> Completion:
        await asyncio.sleep(1.0)
        return Completion(text="late")


@pytest.fixture
def registered() -> Iterator[None]:
    register_provider("own")(OwnServer)

    @register_provider("plain")
    def plain(config: ModelConfig) -> Plain:
        return Plain(config, **config.options)

    try:
        yield
    finally:
        providers._factories.pop("own", None)
        providers._factories.pop("plain", None)


def test_a_plugin_class_declares_its_server_variable_and_that_it_is_self_hosted(registered, make_task,
                                                                                monkeypatch) -> None:
    monkeypatch.setenv("OWN_BASE_URL", "http://gpu-box:8000/v1")
    task = load_task(str(make_task(models=[{"spec": "own:m"}])))
    assert task.models[0].base_url == "http://gpu-box:8000/v1"  # caching, manifests and reuse tell servers apart
    assert task.model_config("own:other").base_url == "http://gpu-box:8000/v1"  # a model the task does not list
    assert task.model_config("fake:x").base_url is None  # fake declares no variable
    assert is_self_hosted(task.models[0], None) and not is_self_hosted(task.model_config("fake:x"), None)
    assert not is_self_hosted(ModelConfig(spec=ModelSpec("notinstalled", "m")), None)  # a stored run's, say

    with pytest.raises(EvalsError) as e:
        load_task(str(make_task(models=[{"spec": "own:m", "adapter": "adapters/x"}])))
    assert e.value.field == "models.0.adapter" and "loads its adapter itself" in e.value.message
    with pytest.raises(EvalsError) as e:
        load_task(str(make_task(models=[{"spec": "own:m", "batch": True}])))
    assert e.value.field == "models.0.batch" and "batch works with anthropic, openai" in e.value.message


def test_the_registry_says_what_each_provider_can_do_without_importing_an_sdk() -> None:
    code = """
import json, sys
from evals.providers import provider_class
kinds = {n: provider_class(n) for n in ("openai", "anthropic", "local", "fake")}
print(json.dumps({"env": {n: k.base_url_env for n, k in kinds.items()},
                  "batch": sorted(n for n, k in kinds.items() if k.batch),
                  "self_hosted": sorted(n for n, k in kinds.items() if k.self_hosted),
                  "imported": [m for m in ("openai", "anthropic", "torch", "transformers") if m in sys.modules]}))
"""
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == {
        "env": {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL", "local": None, "fake": None},
        "batch": ["anthropic", "openai"], "self_hosted": ["local"], "imported": []}


def test_a_provider_asks_for_logprobs_only_where_it_must_be_asked() -> None:
    openai = ModelConfig(spec=ModelSpec("openai", "gpt-4o-mini"), options={"headers": {"x": "y"}})
    asked = provider_class("openai").with_logprobs(openai)
    assert asked.options == {"headers": {"x": "y"}, "logprobs": True}
    assert provider_class("openai").with_logprobs(asked) == asked
    local = ModelConfig(spec=ModelSpec("local", "smollm2"))
    assert provider_class("local").with_logprobs(local) is local  # it records them on every answer


async def test_a_plain_factory_plugin_gets_the_defaults_and_keeps_its_own_members(registered) -> None:
    options = RunOptions(timeout_s=300, max_retries=0)
    bare = create_provider(ModelConfig(spec=ModelSpec("plain", "m")))
    assert isinstance(bare, BaseProvider) and bare.id == "plain:m" and bare.max_concurrency == 1
    assert bare.call_timeout_s(300) == 300 and hardware_of(bare) == this_machine() and not runs_elsewhere(bare)
    await prepare_provider(bare, None)  # nothing to prepare, nothing to close: the defaults
    await close_provider(bare)

    members = {"hardware": "remote: h", "timeout_s": 0.05}
    own = create_provider(ModelConfig(spec=ModelSpec("plain", "m"), options=members))
    assert hardware_of(own) == "remote: h" and runs_elsewhere(own)
    done = await complete_with_retries(own, [Message("user", "hi")], GenerateParams(), options)
    assert done.error == "timed out after 0.05s"  # its own timeout, not the run's 300 s

    closed: list[str] = []

    async def aclose() -> None:
        closed.append("closed")

    plain = Plain(ModelConfig(spec=ModelSpec("plain", "m")), aclose=aclose)
    await close_provider(plain)  # handed in as it is (a test's, the Python API's): its own close is called
    assert closed == ["closed"]
