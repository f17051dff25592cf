"""Tool calls for local models: the chat through a template that takes `tools` natively, else the documented
JSON call format in the system prompt (SmolLM2's template takes none), and the calls parsed from the answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.providers.tool_prompt import calls_text, parse_calls, takes_tools, template_chat
from evals.types import GenerateParams, Message, ModelConfig, ModelSpec, Tool, ToolCall

REFUND = Tool("refund", "Refund an order.", {"type": "object", "properties": {"order_id": {"type": "string"}}})
HISTORY = [Message("system", "Help."), Message("user", "Refund A1"),
           Message("assistant", "", (ToolCall("refund", {"order_id": "A1"}, "c1"),
                                     ToolCall("refund", {"order_id": "A2"}, "c2"))),
           Message("tool", "done", (), "c1"), Message("tool", "failed", (), "c2")]
NATIVE = ("{% if tools %}<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools>{% endif %}"
          "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
          "{% for c in m.get('tool_calls') or [] %}<tool_call>{{ c['function'] | tojson }}</tool_call>{% endfor %}"
          "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.mark.parametrize(("text", "made", "left"), [
    ('{"tool_calls": [{"name": "refund", "arguments": {"order_id": "A1"}}]}', [("refund", {"order_id": "A1"})], ""),
    ('```json\n{"name": "refund", "parameters": {"order_id": "A1"}}\n```', [("refund", {"order_id": "A1"})], ""),
    ('[{"name": "a", "arguments": {}}, {"name": "b", "arguments": "{\\"x\\": 1}"}]', [("a", {}), ("b", {"x": 1})], ""),
    ('Sure.<tool_call>\n{"name": "refund", "arguments": {"order_id": "A1"}}\n</tool_call>',
     [("refund", {"order_id": "A1"})], "Sure."),
    ("<tool_call>{not json</tool_call>", [("", "{not json")], ""),  # kept, so the metrics score it wrong
    ('{"score": 3}', [], '{"score": 3}'),  # JSON that is not a call is a text answer
    ("I have refunded it.", [], "I have refunded it."),
])
def test_calls_are_parsed_from_the_answer(text: str, made: list, left: str) -> None:
    rest, calls = parse_calls(text)
    assert [(c.name, c.arguments) for c in calls] == made and rest == left


def test_a_template_without_tools_gets_the_documented_format_in_the_system_prompt() -> None:
    chat = template_chat(HISTORY, [REFUND], native=False)
    assert [t["role"] for t in chat] == ["system", "user", "assistant", "user"]
    assert chat[0]["content"].startswith("Help.\n\nYou can call these functions")
    assert json.dumps({"name": "refund", "description": "Refund an order.", "parameters": REFUND.parameters}) \
        in chat[0]["content"]
    assert json.loads(chat[2]["content"]) == {"tool_calls": [{"name": "refund", "arguments": {"order_id": "A1"}},
                                                             {"name": "refund", "arguments": {"order_id": "A2"}}]}
    assert chat[3]["content"] == "Result of call c1: done\nResult of call c2: failed"  # one user turn
    taught = HISTORY[2].tool_calls  # what a fine-tune is taught to write, the parser reads back (ids aside)
    assert parse_calls(calls_text(taught))[1] == tuple(ToolCall(c.name, c.arguments) for c in taught)
    plain = [Message("user", "hi")]
    assert template_chat(plain, (), native=False) == [{"role": "user", "content": "hi"}]


def test_smollm2s_template_takes_no_tools_and_a_tools_template_does() -> None:
    class Tokenizer:
        chat_template = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
                         "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}")  # SmolLM2-135M-Instruct's

    assert not takes_tools(Tokenizer())
    Tokenizer.chat_template = NATIVE
    assert takes_tools(Tokenizer())


torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


def test_a_native_template_renders_the_tools_and_the_historys_calls(tiny_dir: Path) -> None:
    from evals.providers.local import chat_text, load_tokenizer, resolve_source

    tokenizer = load_tokenizer(resolve_source(str(tiny_dir)))
    tokenizer.chat_template = NATIVE
    text = chat_text(tokenizer, HISTORY, [REFUND])
    assert text.startswith('<tools>{"type": "function", "function": {"name": "refund"')
    assert '<tool_call>{"name": "refund", "arguments": {"order_id": "A1"}}</tool_call>' in text
    assert "<|im_start|>tool\ndone<|im_end|>" in text and text.endswith("<|im_start|>assistant\n")


async def test_the_local_provider_offers_the_tools_and_parses_its_answers_calls(tiny_dir: Path) -> None:
    from evals.providers.local import LocalProvider, chat_text

    provider = LocalProvider.from_config(ModelConfig(spec=ModelSpec("local", str(tiny_dir))))
    params = GenerateParams(max_tokens=4, tools=(REFUND,))
    first = await provider.generate(HISTORY[:2], params)  # a random model: text, and no call in it
    assert first.error is None and first.tool_calls == () and first.output_tokens >= 1
    assert "You can call these functions" in chat_text(provider._tokenizer, HISTORY[:2], [REFUND])
    answer = '{"tool_calls": [{"name": "refund", "arguments": {"order_id": "A1"}}]}'
    provider._tokenizer.decode = lambda ids, **kw: answer
    called = await provider.generate(HISTORY[:2], params)
    assert called.text == "" and called.tool_calls == (ToolCall("refund", {"order_id": "A1"}),)
