"""Tool calls and conversations as data: task.yaml's `tools:` and `tool_choice:`, a golden line's `messages`
(its chat history), and references that are calls, each checked against the declared functions at load.

A reference is text (the model should answer in words), one call `{"name": ..., "arguments": {...}}`, or a
list of calls. With `tools:` declared, a mapping or a list reference is read as calls: a call naming an
undeclared function, or whose arguments break that function's JSON schema, is refused with its file, line
and field. Calls are also accepted in OpenAI's wire form (`{"type": "function", "function": {"name": ...,
"arguments": "JSON text"}}`), in references and in a history's assistant turns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from evals.chat import argument_errors, expected_calls, is_call  # noqa: F401 (data's callers import them here)
from evals.errors import EvalsError
from evals.types import TOOL_CHOICES, Message, Tool, ToolCall

if TYPE_CHECKING:
    from evals.data.yamlfile import YamlDoc
    from evals.types import Task

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what both APIs accept as a function's name
ROLES = ("system", "user", "assistant", "tool")


def parse_tools(doc: YamlDoc, raw: Any) -> tuple[Tool, ...]:
    """`tools:` as a list of OpenAI function definitions (`{type: function, function: {name, description,
    parameters}}`, or the inner mapping alone), or the name of a JSON file beside task.yaml holding that list;
    each name unique and each `parameters` a valid JSON schema."""
    if raw is None:
        return ()
    if isinstance(raw, str):  # a JSON file beside task.yaml holding the list (as an OpenAI request's `tools`)
        raw = _tools_file(doc, raw)
    if not isinstance(raw, list) or not raw:
        raise doc.error("expected a list of function definitions (OpenAI's format: type: function, function: "
                        "{name, description, parameters})", "tools")
    tools: list[Tool] = []
    for i, item in enumerate(raw):
        where: tuple[str | int, ...] = ("tools", i)
        if isinstance(item, dict) and item.get("type", "function") != "function":
            raise doc.error(f"only function tools are supported, got type {item.get('type')!r}", *where, "type")
        if isinstance(item, dict) and "function" in item:
            unknown = set(item) - {"type", "function"}
            if unknown:
                raise doc.error(f"unknown key '{sorted(unknown)[0]}' beside 'function'", *where)
            item, where = item["function"], (*where, "function")
        if not isinstance(item, dict):
            raise doc.error("expected a mapping with name, description and parameters", *where)
        unknown = set(item) - {"name", "description", "parameters", "strict", "type"}
        if unknown:
            raise doc.error(f"unknown key '{sorted(unknown)[0]}' (a function has name, description, parameters, "
                            "strict)", *where, sorted(unknown)[0])
        name = item.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise doc.error(f"a function's name is 1-64 letters, digits, '_' or '-'; got {name!r}", *where, "name")
        if name in TOOL_CHOICES:
            raise doc.error(f"'{name}' is a tool_choice keyword; name the function otherwise", *where, "name")
        if any(t.name == name for t in tools):
            raise doc.error(f"function '{name}' is declared twice", *where, "name")
        description = item.get("description", "")
        if not isinstance(description, str):
            raise doc.error("expected text", *where, "description")
        parameters = item.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
            raise doc.error("expected a JSON schema of type object (the call's arguments)", *where, "parameters")
        if problem := schema_problem(parameters):
            raise doc.error(f"not a valid JSON schema: {problem}", *where, "parameters")
        strict = item.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise doc.error("expected true or false", *where, "strict")
        tools.append(Tool(name, description, parameters, strict))
    return tuple(tools)


def _tools_file(doc: YamlDoc, name: str) -> Any:
    import json

    from evals.metrics import file_arg

    path = file_arg(doc.path.parent, name)
    if path is None:
        raise doc.error(f"no file '{name}' beside task.yaml (tools: a list of functions, or a JSON file of one)",
                        "tools")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise doc.error(f"{name} is not JSON: {e}", "tools") from None


def parse_tool_choice(doc: YamlDoc, raw: Any, tools: Sequence[Tool]) -> str | None:
    """`tool_choice:` auto, none, required, a declared function's name (or OpenAI's `{type: function, function:
    {name}}`); None when not set."""
    if raw is None:
        return None
    if not tools:
        raise doc.error("tool_choice needs tools: declare the functions under `tools:`", "tool_choice")
    if isinstance(raw, dict):
        raw = (raw.get("function") or {}).get("name") if isinstance(raw.get("function"), dict) else raw.get("name")
    if not isinstance(raw, str) or (raw not in TOOL_CHOICES and not any(t.name == raw for t in tools)):
        names = ", ".join(t.name for t in tools)
        raise doc.error(f"expected auto, none, required or a declared function ({names}); got {raw!r}", "tool_choice")
    return raw


def schema_problem(schema: Mapping[str, Any]) -> str | None:
    """Why a schema is not a valid JSON schema (for its own draft), or None."""
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as e:
        return e.message[:300]
    return None


def call_problems(call: ToolCall, tools: Sequence[Tool]) -> list[str]:
    """Why a call is not a valid call of these functions: an unknown name, arguments breaking its schema."""
    tool = next((t for t in tools if t.name == call.name), None)
    if tool is None:
        return [f"calls '{call.name}', which is not a declared function ({', '.join(t.name for t in tools)})"]
    return [f"{call.name}: {where + ': ' if where else ''}{what}"
            for where, what in argument_errors(tool, call.arguments)]


def check_reference(reference: Any, task: Task, *, file: str, line: int, field: str) -> None:
    """Refuse a reference that names an undeclared function or whose arguments break its schema."""
    if isinstance(reference, str):
        return
    if isinstance(reference, Mapping):
        items, names = [reference], [field]
    elif isinstance(reference, list):
        items, names = reference, [f"{field}[{i}]" for i in range(len(reference))]
    else:
        raise EvalsError(f"expected text, a call {{name, arguments}} or a list of calls; got {reference!r}"[:200],
                         file=file, line=line, field=field)
    for item, where in zip(items, names):
        if not is_call(item):
            raise EvalsError("expected a call: {\"name\": ..., \"arguments\": {...}}", file=file, line=line,
                             field=where)
        inner = item["function"] if isinstance(item.get("function"), Mapping) else item
        call = ToolCall.of(item)
        tool = task.tool(call.name)
        if tool is None:
            declared = ", ".join(t.name for t in task.tools)
            raise EvalsError(f"'{call.name}' is not a declared function (tools: {declared})", file=file, line=line,
                             field=f"{where}.name")
        if "arguments" not in inner:
            raise EvalsError(f"a call of '{call.name}' needs its arguments (an object; {{}} for none)", file=file,
                             line=line, field=f"{where}.arguments")
        for path, what in argument_errors(tool, call.arguments)[:1]:
            raise EvalsError(f"breaks the schema of '{call.name}': {what}", file=file, line=line,
                             field=f"{where}.arguments" + (f".{path}" if path else ""))


def parse_history(value: Any, task: Task | None, *, file: str, line: int, field: str,
                  last_answered: bool = True) -> tuple[Message, ...]:
    """A golden line's `messages` as chat turns: roles system, user, assistant (with optional tool_calls) and tool
    (answering a call: tool_call_id, else the oldest call not yet answered); it ends on a user or tool turn, which
    the model answers (unless `last_answered` is False: the prompt's user template adds the last turn). Calls
    without an id get one (call_<turn>_<k>), so that both APIs can pair them."""
    if not isinstance(value, list) or not value:
        raise EvalsError("expected a non-empty list of chat turns ({role, content})", file=file, line=line,
                         field=field)
    turns: list[Message] = []
    unanswered: list[str] = []
    for i, raw in enumerate(value):
        where = f"{field}[{i}]"

        def refuse(message: str, sub: str = "") -> EvalsError:
            return EvalsError(message, file=file, line=line, field=where + (f".{sub}" if sub else ""))

        if not isinstance(raw, dict):
            raise refuse("expected a mapping with role and content")
        role = raw.get("role")
        if role not in ROLES:
            raise refuse(f"expected one of {', '.join(ROLES)}, got {role!r}", "role")
        content = raw.get("content")
        if content is None and role == "assistant" and raw.get("tool_calls"):
            content = ""
        if not isinstance(content, str):
            raise refuse("expected text", "content")
        calls: list[ToolCall] = []
        if raw.get("tool_calls") is not None:
            if role != "assistant" or not isinstance(raw["tool_calls"], list):
                raise refuse("only an assistant turn carries tool_calls, as a list of calls", "tool_calls")
            for k, c in enumerate(raw["tool_calls"]):
                if not is_call(c):
                    raise refuse("expected a call: {\"name\": ..., \"arguments\": {...}}", f"tool_calls[{k}]")
                call = ToolCall.of(c)
                if task is not None and task.tools and (problems := call_problems(call, task.tools)):
                    raise refuse(problems[0], f"tool_calls[{k}]")
                call = call if call.id else ToolCall(call.name, call.arguments, f"call_{i}_{k}")
                calls.append(call)
            unanswered = [c.id for c in calls if c.id]
        call_id = raw.get("tool_call_id")
        if role == "tool":
            if call_id is None:
                if not unanswered:
                    raise refuse("a tool turn answers a call of the assistant turn before it (none is left "
                                 "unanswered); give its tool_call_id", "tool_call_id")
                call_id = unanswered[0]
            if not isinstance(call_id, str):
                raise refuse("expected the id of the call it answers", "tool_call_id")
            if call_id in unanswered:
                unanswered.remove(call_id)
        elif call_id is not None:
            raise refuse("only a tool turn has a tool_call_id", "tool_call_id")
        turns.append(Message(role, content, tuple(calls), call_id if role == "tool" else None))
    if last_answered and turns[-1].role not in ("user", "tool"):
        raise EvalsError(f"the last turn is the model's to answer: a user or tool turn, not {turns[-1].role}",
                         file=file, line=line, field=f"{field}[{len(turns) - 1}].role")
    return tuple(turns)


def line_history(row: Mapping[str, Any], task: Task, *, file: str, line: int) -> tuple[Message, ...]:
    """A golden (or inputs) line's chat history, where it has one; a line without one needs the prompt's user
    template."""
    if row.get(task.messages_field) is not None:
        return parse_history(row[task.messages_field], task, file=file, line=line, field=task.messages_field,
                             last_answered=not task.prompt.user.strip())
    if not task.prompt.user.strip():
        raise EvalsError("the task's prompt has no user template, so each line needs its chat history",
                         file=file, line=line, field=task.messages_field)
    return ()
