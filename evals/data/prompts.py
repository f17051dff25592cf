"""Jinja2 prompt templates -> chat messages (system, few-shot turns, user)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from evals.errors import EvalsError
from evals.types import Message, ModelConfig, PromptSpec

_env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


@lru_cache(maxsize=64)
def _compile(source: str) -> tuple[jinja2.Template, str | None]:
    """The template, and its text if it reads no field (a fixed system prompt): rendered once, not per example."""
    try:
        template = _env.from_string(source)
        fixed = None if meta.find_undeclared_variables(_env.parse(source)) else template.render().strip()
    except jinja2.TemplateSyntaxError as e:
        raise EvalsError(f"template syntax error on template line {e.lineno}: {e.message}") from None
    return template, fixed


def compile_prompt(prompt: PromptSpec) -> None:
    """Compile every template now; raises EvalsError on a syntax error."""
    _compile(prompt.system)
    _compile(prompt.user)


def _render(source: str, fields: dict[str, Any]) -> str:
    template, fixed = _compile(source)
    if fixed is not None:
        return fixed
    try:
        return template.render(**fields).strip()
    except jinja2.UndefinedError as e:
        raise EvalsError(f"prompt template uses a field the example lacks: {e.message}") from None


def render_messages(prompt: PromptSpec, fields: dict[str, Any], model: ModelConfig | None = None) -> list[Message]:
    """The chat for one example, with the model's per-model settings (system prompt override, few-shot off)."""
    messages = []
    system = model.system if model is not None and model.system is not None else prompt.system
    system_text = _render(system, fields)
    if system_text:
        messages.append(Message("system", system_text))
    for shot in prompt.few_shot if model is None or model.few_shot else ():
        messages.append(Message("user", _render(prompt.user, shot.fields)))
        messages.append(Message("assistant", shot.answer.strip()))
    messages.append(Message("user", _render(prompt.user, fields)))
    return messages
