"""Tool calls for models without a tools API (`local:`): the chat as the model's template takes it, and the
calls read back out of the answer's text. The local provider and the trainer share it, so a fine-tune learns
exactly the format it is evaluated in.

A chat template that takes `tools` (its source uses the variable, as Qwen2.5's, Hermes' or Llama 3.1's do)
gets them natively: `apply_chat_template(chat, tools=[...])`, with a history's calls as `tool_calls` and its
results as `tool` turns. A template without (SmolLM2's: it renders role and content only) gets the functions
in the system prompt, in this documented format (FORMAT), and answers a call with one JSON object:

    {"tool_calls": [{"name": "refund", "arguments": {"order_id": "A1"}}]}

a history's calls written the same way and its results as user turns `Result of call <id>: <text>`.
Either way the answer's calls are parsed from its text: `<tool_call>{...}</tool_call>` blocks (Hermes, Qwen),
else the whole answer (or one ``` fence) as that JSON object, one call `{name, arguments | parameters}` or a
list of calls. Anything else is a text answer, with no call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from evals.types import Message, Tool, ToolCall

FORMAT = ("You can call these functions; each is given with the JSON schema of its arguments:\n{functions}\n\n"
          "To call functions, answer with only a JSON object, nothing before or after it:\n"
          '{{"tool_calls": [{{"name": "<function name>", "arguments": {{<arguments>}}}}]}}\n'
          "To answer in words instead, write plain text.")
RESULT = "Result of call {id}: {content}"
TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
FENCE = re.compile(r"^```[a-zA-Z]*\s*\n(.*?)\n?```$", re.DOTALL)


def takes_tools(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template renders `tools` itself."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):
        template = " ".join(str(t) for t in template.values())
    return bool(re.search(r"\btools\b", str(template)))


def calls_text(calls: Sequence[ToolCall]) -> str:
    """Calls as the documented JSON answer (FORMAT): what a model without a tools template writes."""
    return json.dumps({"tool_calls": [{"name": c.name, "arguments": c.arguments} for c in calls]},
                      ensure_ascii=False)


def template_chat(messages: Sequence[Message], tools: Sequence[Tool], native: bool) -> list[dict[str, Any]]:
    """The chat as `apply_chat_template` takes it. Without tools: role and content, as before. With them and a
    native template: calls and results in the Hugging Face form; else FORMAT in the system prompt."""
    if not tools and not any(m.tool_calls or m.role == "tool" for m in messages):
        return [{"role": m.role, "content": m.content} for m in messages]
    chat: list[dict[str, Any]] = []
    for m in messages:
        if native and m.tool_calls:
            chat.append({"role": "assistant", "content": m.content, "tool_calls": [
                {"type": "function", "id": c.id, "function": {"name": c.name, "arguments": c.arguments}}
                for c in m.tool_calls]})
        elif native and m.role == "tool":
            chat.append({"role": "tool", "content": m.content, "tool_call_id": m.tool_call_id})
        elif m.tool_calls:
            text = "\n".join(filter(None, [m.content, calls_text(m.tool_calls)]))
            chat.append({"role": "assistant", "content": text})
        elif m.role == "tool":
            chat.append({"role": "user", "content": RESULT.format(id=m.tool_call_id, content=m.content)})
        else:
            chat.append({"role": m.role, "content": m.content})
    if tools and not native:
        listed = "\n".join(json.dumps({"name": t.name, "description": t.description, "parameters": t.parameters},
                                      ensure_ascii=False) for t in tools)
        described = FORMAT.format(functions=listed)
        if chat and chat[0]["role"] == "system":
            chat[0] = {"role": "system", "content": f"{chat[0]['content']}\n\n{described}"}
        else:
            chat.insert(0, {"role": "system", "content": described})
    return _merge_users(chat) if not native else chat


def _merge_users(chat: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive user turns (several results of one turn's calls) as one, for templates that alternate."""
    out: list[dict[str, Any]] = []
    for turn in chat:
        if out and turn["role"] == "user" and out[-1]["role"] == "user":
            out[-1] = {"role": "user", "content": f"{out[-1]['content']}\n{turn['content']}"}
        else:
            out.append(turn)
    return out


def _as_calls(value: Any) -> tuple[ToolCall, ...] | None:
    if isinstance(value, dict) and isinstance(value.get("tool_calls"), list):
        value = value["tool_calls"]
    items = value if isinstance(value, list) else [value]
    calls = []
    for item in items:
        if not isinstance(item, dict):
            return None
        inner = item["function"] if isinstance(item.get("function"), dict) else item
        if not isinstance(inner.get("name"), str):
            return None
        calls.append(ToolCall.of({"name": inner["name"],
                                  "arguments": inner.get("arguments", inner.get("parameters", {}))}))
    return tuple(calls) or None


def parse_calls(text: str) -> tuple[str, tuple[ToolCall, ...]]:
    """(the answer's text without its calls, the calls it makes), as the module docstring says."""
    tagged = TAGGED.findall(text)
    if tagged:
        calls = []
        for block in tagged:
            try:
                found = _as_calls(json.loads(block))
            except ValueError:
                found = (ToolCall("", block),)  # a call whose JSON does not parse: kept, so metrics see it
            calls.extend(found or ())
        return TAGGED.sub("", text).strip(), tuple(calls)
    stripped = text.strip()
    fenced = FENCE.match(stripped)
    body = fenced.group(1).strip() if fenced else stripped
    if not body.startswith(("{", "[")):
        return text, ()
    try:
        found = _as_calls(json.loads(body))
    except ValueError:
        return text, ()
    return ("", found) if found else (text, ())
