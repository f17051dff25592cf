"""Tool calls and conversations as data: `tools:` and `tool_choice:` in task.yaml, a golden line's `messages`,
references that are calls, each refused at load with file, line and field when wrong."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from evals.cli import app
from evals.data.golden import load_samples
from evals.data.prompts import sample_messages
from evals.data.tasks import load_task
from evals.errors import EvalsError
from evals.types import Message, ToolCall
from tests.conftest import assert_refused

LOOKUP = {"type": "function", "function": {
    "name": "lookup_order", "description": "Find an order.",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string", "pattern": "^A[0-9]+$"}},
                   "required": ["order_id"], "additionalProperties": False}}}
REFUND = {"name": "refund", "description": "Refund an order.",  # the inner mapping alone is accepted too
          "parameters": {"type": "object", "properties": {"order_id": {"type": "string"},
                                                          "amount": {"type": "number", "minimum": 0}},
                         "required": ["order_id"]}}
TASK: dict[str, Any] = {
    "name": "support",
    "dataset": {"golden": "golden.jsonl"},
    "prompt": {"system": "You are a support assistant."},
    "tools": [LOOKUP, REFUND],
    "models": [{"spec": "fake:scripted"}],
    "metrics": [{"name": "tool_calls_f1"}],
}


def write(tmp_path: Path, rows: list[dict[str, Any]], **overrides: Any) -> Path:
    folder = tmp_path / "support"
    folder.mkdir(exist_ok=True)
    (folder / "task.yaml").write_text(yaml.safe_dump({**TASK, **overrides}, sort_keys=False))
    (folder / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def chat(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def test_tools_history_and_call_references_load(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "messages": chat("Where is A12?"), "reference": {"name": "lookup_order",
                                                                   "arguments": {"order_id": "A12"}}},
        {"id": "b", "messages": [
            {"role": "user", "content": "Refund A7, it never came"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "lookup_order",
                                                              "arguments": "{\"order_id\": \"A7\"}"}}]},
            {"role": "tool", "content": "{\"status\": \"lost\"}"}],
         "reference": [{"name": "refund", "arguments": {"order_id": "A7", "amount": 12.5}}]},
        {"id": "c", "messages": chat("Thanks!"), "reference": "You're welcome."},
    ]
    task = load_task(str(write(tmp_path, rows, tool_choice="auto", parallel_tool_calls=False)))
    assert [t.name for t in task.tools] == ["lookup_order", "refund"]
    assert task.tools[1].as_anthropic()["input_schema"]["required"] == ["order_id"]
    params = task.params_for(task.models[0])
    assert params.tool_choice == "auto" and params.parallel_tool_calls is False
    assert params.as_dict()["tools"][1] == {"type": "function", "function": REFUND}
    samples = load_samples(task)
    history = samples[1].messages
    assert history[1] == Message("assistant", "", (ToolCall("lookup_order", {"order_id": "A7"}, "c1"),))
    assert history[2] == Message("tool", "{\"status\": \"lost\"}", (), "c1")  # paired with the open call
    chat_sent = sample_messages(task.prompt, samples[1])
    assert [m.role for m in chat_sent] == ["system", "user", "assistant", "tool"]


def test_a_history_besides_template_fields_ends_with_the_rendered_turn(tmp_path: Path) -> None:
    rows = [{"id": "a", "order": "A1", "messages": [{"role": "user", "content": "Hi"},
                                                    {"role": "assistant", "content": "Hello! How can I help?"}],
             "reference": {"name": "lookup_order", "arguments": {"order_id": "A1"}}}]
    task = load_task(str(write(tmp_path, rows, prompt={"system": "S", "user": "Where is {{ order }}?"})))
    sent = sample_messages(task.prompt, load_samples(task)[0])
    assert [(m.role, m.content) for m in sent] == [("system", "S"), ("user", "Hi"),
                                                   ("assistant", "Hello! How can I help?"), ("user", "Where is A1?")]


@pytest.mark.parametrize(("reference", "field", "message"), [
    ({"name": "cancel_order", "arguments": {}}, "reference.name", "'cancel_order' is not a declared function"),
    ({"name": "lookup_order", "arguments": {"order_id": "B1"}}, "reference.arguments.order_id", "does not match"),
    ({"name": "lookup_order", "arguments": {}}, "reference.arguments", "'order_id' is a required property"),
    ({"name": "lookup_order"}, "reference.arguments", "needs its arguments"),
    ([{"name": "lookup_order", "arguments": {"order_id": "A1"}}, {"name": "refund", "arguments": {
        "order_id": "A1", "amount": -3}}], "reference[1].arguments.amount", "less than the minimum"),
    (7, "reference", "expected text, a call"),
])
def test_a_wrong_reference_is_refused_at_load_with_file_line_and_field(tmp_path: Path, reference: Any, field: str,
                                                                        message: str) -> None:
    rows = [{"id": "ok", "messages": chat("hi"), "reference": "hello"},
            {"id": "bad", "messages": chat("x"), "reference": reference}]
    folder = write(tmp_path, rows)
    with pytest.raises(EvalsError) as e:
        load_samples(load_task(str(folder)))
    assert (e.value.line, e.value.field) == (2, field) and message in e.value.message, e.value.message
    assert_refused(CliRunner().invoke(app, ["run", str(folder)]), f"golden.jsonl:2 field '{field}'")


@pytest.mark.parametrize(("messages", "field", "message"), [
    ([{"role": "robot", "content": "x"}], "messages[0].role", "expected one of"),
    ([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "messages[1].role",
     "the last turn is the model's to answer"),
    ([{"role": "tool", "content": "x"}], "messages[0].tool_call_id", "answers a call"),
    ([{"role": "user", "content": "x", "tool_calls": []}], "messages[0].tool_calls", "only an assistant turn"),
    ([{"role": "assistant", "content": "", "tool_calls": [{"name": "nope", "arguments": {}}]},
      {"role": "tool", "content": "x"}], "messages[0].tool_calls[0]", "not a declared function"),
    ([], "messages", "non-empty list"),
])
def test_a_wrong_history_is_refused_with_its_turn(tmp_path: Path, messages: Any, field: str, message: str) -> None:
    folder = write(tmp_path, [{"id": "a", "messages": messages, "reference": "ok"}])
    with pytest.raises(EvalsError) as e:
        load_samples(load_task(str(folder)))
    assert (e.value.line, e.value.field) == (1, field) and message in e.value.message, e.value.message


def test_a_line_without_history_needs_a_user_template(tmp_path: Path) -> None:
    folder = write(tmp_path, [{"id": "a", "question": "q", "reference": "ok"}])
    with pytest.raises(EvalsError) as e:
        load_samples(load_task(str(folder)))
    assert (e.value.line, e.value.field) == (1, "messages") and "no user template" in e.value.message


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools.0.function.name", "1-64 letters"),
    ({"tools": [REFUND, REFUND]}, "tools.1.name", "declared twice"),
    ({"tools": [{**REFUND, "parameters": {"type": "object", "properties": {"x": {"type": "strnig"}}}}]},
     "tools.0.parameters", "not a valid JSON schema"),
    ({"tools": [{"type": "retrieval"}]}, "tools.0.type", "only function tools"),
    ({"tool_choice": "cancel_order"}, "tool_choice", "expected auto, none, required or a declared function"),
    ({"tools": None, "tool_choice": "auto"}, "tool_choice", "needs tools"),
    ({"parallel_tool_calls": "no"}, "parallel_tool_calls", "true or false"),
    ({"prompt": {"system": "S", "few_shot": [{"fields": {}, "answer": "x"}]}}, "prompt.few_shot",
     "rendered with the user template"),
])
def test_wrong_tool_settings_are_refused_in_task_yaml(tmp_path: Path, overrides: dict[str, Any], field: str,
                                                      message: str) -> None:
    folder = write(tmp_path, [{"id": "a", "messages": chat("x"), "reference": "ok"}], **overrides)
    with pytest.raises(EvalsError) as e:
        load_task(str(folder))
    assert e.value.field == field and message in e.value.message, (e.value.field, e.value.message)
    assert e.value.file.endswith("task.yaml") and e.value.line


def test_a_named_tool_choice_is_kept_as_the_function_name(tmp_path: Path) -> None:
    folder = write(tmp_path, [{"id": "a", "messages": chat("x"), "reference": "ok"}],
                   tool_choice={"type": "function", "function": {"name": "refund"}})
    assert load_task(str(folder)).tool_choice == "refund"


def test_text_tasks_keep_their_cache_keys_and_params(tmp_path: Path) -> None:
    """A task without tools sends and keys exactly what it did before tools existed."""
    from evals.run.cache import cache_key
    from evals.types import GenerateParams

    params = GenerateParams()
    assert set(params.as_dict()) == {"temperature", "max_tokens", "top_p", "stop", "seed"}
    messages = [Message("user", "hi")]
    before = {"provider": "m", "messages": [["user", "hi"]], "params": params.as_dict()}  # the key's old payload
    assert cache_key("m", messages, params) == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()

    def history(order: str) -> list[Message]:
        return [Message("assistant", "", (ToolCall("refund", {"order_id": order}, "c1"),)), Message("tool", "ok", (), "c1")]

    assert cache_key("m", history("A1"), params) != cache_key("m", history("A2"), params)
