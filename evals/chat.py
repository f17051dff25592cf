"""What one model request is made of: chat messages, the functions a model may call and the calls it makes,
and the generation parameters. Part of the kernel (evals.types re-exports every name), so every stage reads
calls the same way."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """One function call a model made, or a reference expects: the function's name, its arguments (the parsed JSON
    object; the raw text where a model's did not parse as JSON) and the API's id for the call (None where none)."""

    name: str
    arguments: Any = field(default_factory=dict)
    id: str | None = None

    @classmethod
    def of(cls, value: Any) -> ToolCall:
        """A call as stored (`{name, arguments, id}`) or in OpenAI's wire form (`{id, type, function: {name,
        arguments: "JSON text"}}`); anything else (a stored run is untrusted) as a call named by its text."""
        if isinstance(value, ToolCall):
            return value
        if not isinstance(value, Mapping):
            return cls(str(value)[:200], {})
        inner = value.get("function") if isinstance(value.get("function"), Mapping) else value
        call_id = value.get("id")
        return cls(str(inner.get("name") or ""), parse_arguments(inner.get("arguments", {})),
                   call_id if isinstance(call_id, str) else None)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments, **({"id": self.id} if self.id else {})}

    def shown(self) -> str:
        """As people read it: `refund({"order_id": "A1"})`."""
        args = self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments, ensure_ascii=False)
        return f"{self.name}({args})"


def answer_shown(text: str | None, calls: Sequence[ToolCall | Mapping[str, Any]] | None) -> str | None:
    """An answer as reports and viewers show it: its text, then a line `-> call(arguments)` per function call."""
    if not calls:
        return text
    lines = [f"-> {ToolCall.of(c).shown()}" for c in calls]
    return "\n".join([text, *lines] if text else lines)


def parse_arguments(value: Any) -> Any:
    """A call's arguments as a JSON value: text is parsed (kept as the text when it is not JSON), `None` is `{}`."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


@dataclass(frozen=True)
class Message:
    """One turn of a chat. An assistant turn may carry the calls it made (its content then often empty); a tool
    turn answers one call, named by `tool_call_id`."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """As a cache key, a store and a training file keep it: role and content, and the tool fields where set."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [c.as_dict() for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out


@dataclass(frozen=True)
class Tool:
    """A function a model may call (task.yaml `tools:`, OpenAI's JSON-schema function format)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None

    def as_openai(self) -> dict[str, Any]:
        function: dict[str, Any] = {"name": self.name, "description": self.description, "parameters": self.parameters}
        if self.strict is not None:
            function["strict"] = self.strict
        return {"type": "function", "function": function}

    def as_anthropic(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "input_schema": self.parameters}


TOOL_CHOICES = ("auto", "none", "required")  # else tool_choice names the one function the model must call


@dataclass(frozen=True)
class GenerateParams:
    temperature: float = 0.0
    max_tokens: int = 512
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    tools: tuple[Tool, ...] = ()  # the functions the model may call (the task's `tools:`)
    tool_choice: str | None = None  # auto, none, required, or the name of the function it must call
    parallel_tool_calls: bool | None = None  # False: at most one call per answer; None: the API's default

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "stop": list(self.stop),
            "seed": self.seed,
        }
        if self.tools:  # only then: a text task's cache keys and manifests stay as they were
            out.update(tools=[t.as_openai() for t in self.tools], tool_choice=self.tool_choice,
                       parallel_tool_calls=self.parallel_tool_calls)
        return out


# ---- reading calls: what a reference expects, whether arguments follow a schema, a chat as text ----------


def is_call(value: Any) -> bool:
    return isinstance(value, Mapping) and ("name" in value or isinstance(value.get("function"), Mapping))


def expected_calls(reference: Any) -> tuple[ToolCall, ...] | None:
    """The calls a reference expects, in order, or None when it is text (an answer in words, no call). An empty
    list expects no call."""
    if isinstance(reference, ToolCall):
        return (reference,)
    if is_call(reference):
        return (ToolCall.of(reference),)
    if isinstance(reference, list) and all(is_call(c) or isinstance(c, ToolCall) for c in reference):
        return tuple(ToolCall.of(c) for c in reference)
    return None


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    import jsonschema

    schema = json.loads(schema_json)
    return jsonschema.validators.validator_for(schema)(schema)


def _schema_key(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True)


def argument_errors(tool: Tool, arguments: Any) -> list[tuple[str, str]]:
    """(where in the arguments, what is wrong) for each way `arguments` break the function's schema; empty when
    they follow it. Arguments that are not a JSON object (a model's malformed text) are one error."""
    if not isinstance(arguments, dict):
        shown = arguments if isinstance(arguments, str) else type(arguments).__name__
        return [("", f"arguments are not a JSON object: {str(shown)[:80]!r}")]
    errors = _validator(_schema_key(tool.parameters)).iter_errors(arguments)
    return [(".".join(str(p) for p in e.absolute_path), e.message[:200])
            for e in sorted(errors, key=lambda e: list(map(str, e.absolute_path)))]


def conversation_text(messages: Sequence[Message]) -> str:
    """A chat as one text, each turn `role: content` with its calls (answer_shown): what decontamination compares
    and a judge is shown as an example's input."""
    return "\n".join(f"{m.role}: {answer_shown(m.content, m.tool_calls)}" for m in messages)
