"""Tool calls through the real SDKs over loopback HTTP to the stand-in: tools and tool_choice in each API's
form, a history's calls and results sent as each API pairs them, answers' calls read back (parallel ones too,
streamed deltas assembled), and a whole run (live, cached, batched) storing the calls and scoring them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from evals.data.golden import load_samples
from evals.data.tasks import load_task
from evals.providers import create_provider
from evals.run.cache import ResponseCache
from evals.run.runner import RunOptions, run_task
from evals.run.store import Store, load_run
from evals.types import GenerateParams, Message, Tool, ToolCall
from tests.providers.test_providers_api import FACTORIES, MODELS, config_for
from tests.standin_server import StandinServer, calls

FAST = RunOptions(backoff_s=0.001, max_backoff_s=0.01, timeout_s=5)
LOOKUP = Tool("lookup_order", "Find an order.", {"type": "object", "properties": {"order_id": {"type": "string"}},
                                                 "required": ["order_id"]})
REFUND = Tool("refund", "Refund an order.", {"type": "object", "properties": {
    "order_id": {"type": "string"}, "amount": {"type": "number"}}, "required": ["order_id"]})
TWO_CALLS = calls({"name": "lookup_order", "arguments": {"order_id": "A1"}},
                  {"name": "refund", "arguments": {"order_id": "A1", "amount": 12.5, "note": "late, sorry"}})
MADE = (("lookup_order", {"order_id": "A1"}), ("refund", {"order_id": "A1", "amount": 12.5, "note": "late, sorry"}))
PROVIDERS = ("openai", "anthropic")
HISTORY = [
    Message("system", "You are a support assistant."),
    Message("user", "Refund A1 please"),
    Message("assistant", "Let me look.", (ToolCall("lookup_order", {"order_id": "A1"}, "c1"),
                                          ToolCall("lookup_order", {"order_id": "A2"}, "c2"))),
    Message("tool", '{"status": "lost"}', (), "c1"),
    Message("tool", '{"status": "delivered"}', (), "c2"),
]


def made(completion: Any) -> tuple[tuple[str, Any], ...]:
    return tuple((c.name, c.arguments) for c in completion.tool_calls)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_parallel_calls_come_back_streamed_or_not(provider: str, stream: bool) -> None:
    with StandinServer(TWO_CALLS, record=True) as server:
        p = FACTORIES[provider](config_for(provider, server, stream=stream))
        c = await p.generate(HISTORY[:2], GenerateParams(tools=(LOOKUP, REFUND)))
        await p.aclose()
    assert c.error is None and made(c) == MADE and c.text == ""
    assert all(call.id for call in c.tool_calls)
    assert c.finish_reason == {"openai": "tool_calls", "anthropic": "tool_use"}[provider]
    assert c.output_tokens > 2  # the calls' names and arguments are counted as output
    assert (c.ttft_s is not None) == stream


async def test_openai_request_carries_tools_choice_and_the_history_in_its_form() -> None:
    with StandinServer(calls({"name": "refund", "arguments": {"order_id": "A1"}}), record=True) as server:
        p = FACTORIES["openai"](config_for("openai", server))
        await p.generate(HISTORY, GenerateParams(tools=(LOOKUP, REFUND), tool_choice="refund",
                                                 parallel_tool_calls=False))
        await p.aclose()
        body = server.requests[0].body
    assert body["tools"][0] == {"type": "function", "function": {
        "name": "lookup_order", "description": "Find an order.", "parameters": LOOKUP.parameters}}
    assert body["tool_choice"] == {"type": "function", "function": {"name": "refund"}}
    assert body["parallel_tool_calls"] is False
    assistant, first, second = body["messages"][2:]
    assert assistant == {"role": "assistant", "content": "Let me look.", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id": "A1"}'}},
        {"id": "c2", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id": "A2"}'}}]}
    assert first == {"role": "tool", "tool_call_id": "c1", "content": '{"status": "lost"}'}
    assert second["tool_call_id"] == "c2"


async def test_anthropic_request_carries_tools_choice_and_the_history_as_blocks() -> None:
    with StandinServer(calls({"name": "refund", "arguments": {"order_id": "A1"}}), record=True) as server:
        p = FACTORIES["anthropic"](config_for("anthropic", server))
        for choice in ("required", "refund", "none", None):
            await p.generate(HISTORY, GenerateParams(tools=(LOOKUP, REFUND), tool_choice=choice,
                                                     parallel_tool_calls=False))
        await p.aclose()
        bodies = [r.body for r in server.requests]
    body = bodies[0]
    assert body["system"] == "You are a support assistant."
    assert body["tools"][1] == {"name": "refund", "description": "Refund an order.", "input_schema": REFUND.parameters}
    assert [b["tool_choice"] for b in bodies] == [
        {"type": "any", "disable_parallel_tool_use": True}, {"type": "tool", "name": "refund",
                                                             "disable_parallel_tool_use": True},
        {"type": "none"}, {"type": "auto", "disable_parallel_tool_use": True}]
    assistant, results = body["messages"][1:]
    assert assistant == {"role": "assistant", "content": [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "c1", "name": "lookup_order", "input": {"order_id": "A1"}},
        {"type": "tool_use", "id": "c2", "name": "lookup_order", "input": {"order_id": "A2"}}]}
    assert results == {"role": "user", "content": [  # both results in the one user turn after the calls
        {"type": "tool_result", "tool_use_id": "c1", "content": '{"status": "lost"}'},
        {"type": "tool_result", "tool_use_id": "c2", "content": '{"status": "delivered"}'}]}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_text_answer_with_tools_offered_has_no_calls(provider: str) -> None:
    with StandinServer(record=True) as server:
        p = FACTORIES[provider](config_for(provider, server, stream=True))
        c = await p.generate(HISTORY[:2], GenerateParams(tools=(LOOKUP,)))
        await p.aclose()
    assert c.text == "Refund A1 please" and c.tool_calls == ()


def tool_task(tmp_path: Path, server: StandinServer, provider: str, **model: Any) -> Path:
    folder = tmp_path / "support"
    folder.mkdir()
    spec = {"name": "support", "dataset": {"golden": "golden.jsonl"}, "prompt": {"system": "Help."},
            "tools": [LOOKUP.as_openai(), REFUND.as_openai()],
            "models": [{"spec": f"{provider}:{MODELS[provider]}", "base_url": server.base_url_for(provider), **model}],
            "metrics": ["tool_calls_f1", "tool_sequence", "tool_args"], "pass": {"tool_calls_f1": 1}}
    (folder / "task.yaml").write_text(yaml.safe_dump(spec))
    rows = [{"id": f"ex{i}", "messages": [{"role": "user", "content": f"refund A1 ({i})"}],
             "reference": [{"name": n, "arguments": a} for n, a in MADE]} for i in range(6)]
    (folder / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def run(folder: Path, store: Store, cache: ResponseCache | None = None) -> str:
    task = load_task(str(folder))
    providers = [(c, create_provider(c)) for c in task.models]
    [outcome] = asyncio.run(run_task(task, load_samples(task), providers, store, FAST, cache=cache))
    assert outcome.status == "completed"
    return outcome.run_id


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_run_stores_scores_and_caches_the_calls(tmp_path: Path, provider: str) -> None:
    with StandinServer(TWO_CALLS, record=True) as server:
        folder = tool_task(tmp_path, server, provider, stream=True)
        store, cache = Store(), ResponseCache()
        df = load_run(run(folder, store, cache), store)
        assert df["passed"].all() and (df["score.tool_sequence"] == 1).all() and (df["score.tool_args"] == 1).all()
        assert df["tool_calls"][0][1]["name"] == "refund" and df["tool_calls"][0][1]["arguments"]["amount"] == 12.5
        assert df["input"][0]["messages"][0]["content"] == "refund A1 (0)"
        manifest = df.attrs["manifest"]
        assert [t["function"]["name"] for t in manifest["params"]["tools"]] == ["lookup_order", "refund"]
        sent = server.counts.received
        again = load_run(run(folder, store, cache), store)  # from the cache: the calls come back as they were
        assert server.counts.received == sent and again["cached"].all() and again["passed"].all()
        assert again["tool_calls"].tolist() == df["tool_calls"].tolist()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_batched_run_sends_the_tools_and_reads_the_calls(tmp_path: Path, provider: str) -> None:
    with StandinServer(TWO_CALLS, batch_delay=0.05, record=False) as server:
        folder = tool_task(tmp_path, server, provider, batch=True, options={"batch_poll_s": 0.05})
        store = Store()
        df = load_run(run(folder, store), store)
        assert server.counts.received == 0 and server.stats()["batches"]["created"] == 1
        assert df["passed"].all() and [c["name"] for c in df["tool_calls"][0]] == ["lookup_order", "refund"]
