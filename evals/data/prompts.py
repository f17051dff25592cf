"""Jinja2 prompt templates -> chat messages (system, few-shot turns, user)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
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
    user = _render(prompt.user, fields)
    shots = prompt.few_shot
    if prompt.retrieve:
        from evals.data.retrieval import nearest

        shots = (*shots, *nearest(prompt, user, render_user))
    for shot in shots if model is None or model.few_shot else ():
        messages.append(Message("user", _render(prompt.user, shot.fields)))
        messages.append(Message("assistant", shot.answer.strip()))
    messages.append(Message("user", user))
    return messages


def render_user(prompt: PromptSpec, fields: dict[str, Any]) -> str:
    """The user turn of one example: what retrieval embeds to find its nearest training examples."""
    return _render(prompt.user, fields)


def answer_text(reference: Any) -> str:
    """The assistant turn a reference stands for: a string as is, structured data as compact JSON."""
    return reference.strip() if isinstance(reference, str) else json.dumps(reference, ensure_ascii=False)


def prompt_record(prompt: PromptSpec) -> dict[str, Any]:
    """The prompt as manifests and the optimisation ledger keep it: its texts and worked examples, and for
    retrieved examples k with the pool's size and hash (not the pool itself)."""
    record: dict[str, Any] = {"system": prompt.system, "user": prompt.user,
                              "few_shot": [dataclasses.asdict(s) for s in prompt.few_shot]}
    if prompt.retrieve:
        pool = json.dumps([dataclasses.asdict(s) for s in prompt.pool], sort_keys=True, default=str)
        record["retrieve"] = {"k": prompt.retrieve, "pool": len(prompt.pool),
                              "pool_hash": hashlib.sha256(pool.encode()).hexdigest()[:16]}
    return record


def prompt_hash(prompt: PromptSpec | dict[str, Any]) -> str:
    """A short content hash of the prompt as `prompt_record` keeps it (a run's manifest holds that record)."""
    record = prompt if isinstance(prompt, dict) else prompt_record(prompt)
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]
