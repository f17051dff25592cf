"""Fine-tuning on tool calls: the chat built with the functions as at evaluation time, the loss on the
assistant's call turn only (as the JSON call format, or as a tools template renders it), the OpenAI
fine-tuning file with `tools` and calls, and a tiny model trained end to end on the shipped tool-calls set."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from evals.data.golden import load_samples
from evals.data.tasks import load_task
from evals.providers.tool_prompt import calls_text, parse_calls
from tests.providers.test_local_tools import NATIVE

pytest.importorskip("peft")
sys.path.insert(0, str(Path(__file__).parents[1]))
from finetune.data import export_openai, tokenize, training_chats  # noqa: E402
from tests.tiny_model import build_tiny_model  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[2] / "golden_sets" / "tool-calls"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def tool_task():
    task = load_task(str(SHIPPED))
    return task, load_samples(task, "train")


def tokenizer_of(tiny_dir: Path, template: str | None = None):
    from evals.providers.local import load_tokenizer, resolve_source

    tokenizer = load_tokenizer(resolve_source(str(tiny_dir)))
    if template:
        tokenizer.chat_template = template
    return tokenizer


def test_the_answer_is_the_call_turn_only_in_the_documented_format(tiny_dir, tool_task) -> None:
    from evals.providers.local import chat_token_ids

    task, train = tool_task
    sample = next(s for s in train if len(s.messages) == 3 and s.messages[-1].role == "tool")  # after a lookup
    chat = training_chats(task, [sample])[0]
    assert chat[-1].role == "assistant" and (chat[-1].tool_calls or chat[-1].content)
    tokenizer = tokenizer_of(tiny_dir)  # ChatML without tools, as SmolLM2's
    [example] = tokenize(tokenizer, [chat], [sample.id], task.tools)
    assert list(example.prompt) == chat_token_ids(tokenizer, chat[:-1], task.tools)
    prompt = tokenizer.decode(example.prompt)
    assert "You can call these functions" in prompt and '"name": "refund_order"' in prompt
    assert "<|im_start|>user\nResult of call" in prompt  # the history's lookup result
    answer = tokenizer.decode(example.answer)
    assert answer.endswith("<|im_end|>")
    if chat[-1].tool_calls:
        assert answer.removesuffix("<|im_end|>") == calls_text(chat[-1].tool_calls)
        assert parse_calls(answer.removesuffix("<|im_end|>"))[1][0].name == chat[-1].tool_calls[0].name


def test_a_tools_template_trains_on_its_own_rendering_of_the_calls(tiny_dir, tool_task) -> None:
    task, train = tool_task
    sample = next(s for s in train if isinstance(s.reference, list))  # two calls
    chat = training_chats(task, [sample])[0]
    tokenizer = tokenizer_of(tiny_dir, NATIVE)
    [example] = tokenize(tokenizer, [chat], [sample.id], task.tools)
    answer = tokenizer.decode(example.answer)
    assert answer.count("<tool_call>") == 2 and answer.endswith("<|im_end|>\n")
    assert "<tools>" in tokenizer.decode(example.prompt) and "<tools>" not in answer
    assert [c.name for c in parse_calls(answer.removesuffix("<|im_end|>\n"))[1]] == [r["name"] for r in
                                                                                      sample.reference]


def test_the_openai_file_carries_the_tools_and_the_calls(tool_task, tmp_path) -> None:
    task, train = tool_task
    path = tmp_path / "ft.jsonl"
    assert export_openai(training_chats(task, train), path, task) == 400
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(len(line["tools"]) == 5 and line["tools"][0]["type"] == "function" for line in lines)
    called = next(line for line in lines if line["messages"][-1].get("tool_calls"))
    last = called["messages"][-1]
    assert last["content"] is None and last["tool_calls"][0]["type"] == "function"
    assert isinstance(last["tool_calls"][0]["function"]["arguments"], str)  # JSON text, as the API wants
    json.loads(last["tool_calls"][0]["function"]["arguments"])
    worded = next(line for line in lines if isinstance(line["messages"][-1].get("content"), str)
                  and line["messages"][-1]["role"] == "assistant")
    assert "tool_calls" not in worded["messages"][-1]
    history = next(line for line in lines if any(m["role"] == "tool" for m in line["messages"]))
    tool_turn = next(m for m in history["messages"] if m["role"] == "tool")
    assert tool_turn["tool_call_id"].startswith("call_")


def test_a_tiny_model_trains_on_tool_calls(tiny_dir, tmp_path) -> None:
    """The trainer end to end on a tool task (a small one: the tiny model's context is 1,024 tokens)."""
    import yaml

    from finetune.config import FinetuneConfig
    from finetune.trainer import train

    folder = tmp_path / "tools"
    folder.mkdir()
    tools = [{"type": "function", "function": {"name": "refund", "description": "Refund.", "parameters": {
        "type": "object", "properties": {"o": {"type": "string"}}, "required": ["o"]}}}]
    spec = {"name": "tools", "dataset": {"golden": "golden.jsonl", "train": "train.jsonl"},
            "prompt": {"system": "Help."}, "tools": tools, "models": ["fake:x"], "metrics": ["tool_calls_f1"]}
    (folder / "task.yaml").write_text(yaml.safe_dump(spec))

    def rows(prefix: str, numbers: range) -> str:
        return "".join(json.dumps({"id": f"{prefix}{i}", "messages": [{"role": "user", "content": f"refund {i}"}],
                                   "reference": {"name": "refund", "arguments": {"o": str(i)}}}) + "\n"
                       for i in numbers)

    (folder / "golden.jsonl").write_text(rows("g", range(6)))
    (folder / "train.jsonl").write_text(rows("t", range(100, 124)))
    config = FinetuneConfig(base=f"local:{tiny_dir}", rank=4, alpha=8, dropout=0.0, learning_rate=3e-2, epochs=1,
                            batch_size=4, grad_accum=1, val_fraction=0.25, evals_per_epoch=1, patience=3,
                            dtype="float32", target_modules=["q_proj", "v_proj"])
    train(load_task(str(folder)), config, tmp_path / "adapter", console=None)
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
