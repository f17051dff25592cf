"""Jinja2 prompt templates -> chat messages (system, few-shot turns, user), rendered in a bounded sandbox.

A rendered chat is capped at the prompt's `max_chars` (task.yaml `prompt.max_chars`, default 1,000,000
characters, every message together): rendering stops as soon as it passes the cap, and no value a template
builds may pass it either (see evals.data.sandbox). Any failure of a template (a field the example lacks, an
attribute the sandbox forbids, a division by zero) is an EvalsError naming the template.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SecurityError

from evals.data.sandbox import TooLarge, environment, render
from evals.errors import EvalsError
from evals.types import Message, ModelConfig, PromptSpec, Sample


@lru_cache(maxsize=64)
def _compile(source: str) -> tuple[jinja2.Template, bool]:
    """The template, and whether it reads any field (if not, its text is rendered once, not per example)."""
    try:
        return environment.from_string(source), bool(meta.find_undeclared_variables(environment.parse(source)))
    except jinja2.TemplateSyntaxError as e:
        raise EvalsError(f"template syntax error on template line {e.lineno}: {e.message}") from None


def _failure(e: Exception, limit: int) -> str:
    """What went wrong rendering a template, in one line."""
    if isinstance(e, TooLarge) and e.number:
        return f"the prompt template builds {e}"
    if isinstance(e, TooLarge):
        return (f"the rendered prompt would be over {limit:,} characters, the cap (raise it with prompt.max_chars "
                "in task.yaml)")
    if isinstance(e, jinja2.UndefinedError):
        return f"prompt template uses a field the example lacks: {e.message}"
    if isinstance(e, SecurityError):
        return f"the prompt template does what the sandbox forbids: {e}"
    if isinstance(e, MemoryError):
        return "the prompt template ran out of memory"
    return f"the prompt template failed: {type(e).__name__}: {str(e)[:200]}"


@lru_cache(maxsize=64)
def _fixed(source: str, cap: int) -> str:
    return render(_compile(source)[0], {}, limit=cap, cap=cap)


def render_template(source: str, fields: dict[str, Any], *, limit: int, cap: int | None = None,
                    field: str | None = None) -> str:
    """One template rendered with these fields (as rendered, not stripped), at most `limit` characters, the values
    it builds at most `cap` (default: `limit`); an EvalsError naming `field` if it fails."""
    cap = limit if cap is None else cap
    try:
        template, reads_fields = _compile(source)
        text = render(template, fields, limit=limit, cap=cap) if reads_fields else _fixed(source, cap)
    except EvalsError as e:
        raise EvalsError(e.message, field=field) from None
    except Exception as e:  # a template is code that data flows through: whatever it raises is its failure
        raise EvalsError(_failure(e, cap), field=field) from None
    if len(text) > limit:
        raise EvalsError(_failure(TooLarge(cap), cap), field=field)
    return text


def compile_prompt(prompt: PromptSpec) -> None:
    """Compile every template now, and render those that read no field; raises EvalsError naming the template."""
    for source, field in ((prompt.system, "prompt.system"), (prompt.user, "prompt.user")):
        try:
            _, reads_fields = _compile(source)
        except EvalsError as e:
            raise EvalsError(e.message, field=field) from None
        if not reads_fields:
            render_template(source, {}, limit=prompt.max_chars, field=field)


def render_messages(prompt: PromptSpec, fields: dict[str, Any], model: ModelConfig | None = None,
                    history: Sequence[Message] = ()) -> list[Message]:
    """The chat for one example, with the model's per-model settings (system prompt override, few-shot off),
    all its messages together at most `prompt.max_chars` characters. An example with a chat `history` (its
    golden line's `messages`) has it after the system prompt and worked examples, then the user template's turn
    if the prompt has one; the model answers the last turn."""
    cap = prompt.max_chars
    left = cap

    def part(source: str, values: dict[str, Any], field: str) -> str:
        nonlocal left
        text = render_template(source, values, limit=left, cap=cap, field=field).strip()
        left -= len(text)
        return text

    messages = []
    overridden = model is not None and model.system is not None
    system_text = part(model.system if overridden else prompt.system, fields,  # type: ignore[union-attr]
                         f"models[{model.spec}].system" if overridden else "prompt.system")  # type: ignore[union-attr]
    if system_text:
        messages.append(Message("system", system_text))
    user = part(prompt.user, fields, "prompt.user") if prompt.user.strip() or not history else ""
    if not user and not history:
        raise EvalsError("the prompt has no user template and the example no chat history (`messages`)",
                         field="prompt.user")
    demos = model is None or model.few_shot  # a model entry with few_shot: false is shown none
    shots = prompt.few_shot if demos else ()
    if demos and prompt.retrieve:
        from evals.data.retrieval import nearest

        shots = (*shots, *nearest(prompt, user, render_user))
    for shot in shots:
        messages.append(Message("user", part(prompt.user, shot.fields, "prompt.few_shot")))
        answer = shot.answer.strip()
        left -= len(answer)
        messages.append(Message("assistant", answer))
    for turn in history:
        left -= len(turn.content)
        messages.append(turn)
    if left < 0:
        raise EvalsError(f"the example's chat is over {cap:,} characters, the cap (raise it with prompt.max_chars "
                         "in task.yaml)", field="messages")
    if user:
        messages.append(Message("user", user))
    return messages


def render_user(prompt: PromptSpec, fields: dict[str, Any]) -> str:
    """The user turn of one example: what retrieval embeds to find its nearest training examples."""
    return render_template(prompt.user, fields, limit=prompt.max_chars, field="prompt.user").strip()


def answer_text(reference: Any) -> str:
    """The assistant turn a reference stands for: a string as is, structured data as compact JSON."""
    return reference.strip() if isinstance(reference, str) else json.dumps(reference, ensure_ascii=False)


def prompt_record(prompt: PromptSpec) -> dict[str, Any]:
    """The prompt as manifests and the optimisation ledger keep it: its texts, worked examples and size cap, and
    for retrieved examples k with the pool's size and hash (not the pool itself)."""
    record: dict[str, Any] = {"system": prompt.system, "user": prompt.user,
                              "few_shot": [dataclasses.asdict(s) for s in prompt.few_shot],
                              "max_chars": prompt.max_chars}
    if prompt.retrieve:
        pool = json.dumps([dataclasses.asdict(s) for s in prompt.pool], sort_keys=True, default=str)
        record["retrieve"] = {"k": prompt.retrieve, "pool": len(prompt.pool),
                              "pool_hash": hashlib.sha256(pool.encode()).hexdigest()[:16]}
    return record


def prompt_hash(prompt: PromptSpec | dict[str, Any]) -> str:
    """A short content hash of the prompt as `prompt_record` keeps it (a run's manifest holds that record)."""
    record = prompt if isinstance(prompt, dict) else prompt_record(prompt)
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]


def sample_messages(prompt: PromptSpec, sample: Sample, model: ModelConfig | None = None) -> list[Message]:
    """render_messages for a golden (or train) example; an error names its file and line."""
    try:
        return render_messages(prompt, sample.fields, model, sample.messages)
    except EvalsError as e:
        raise EvalsError(f"{e.message} (example '{sample.id}')", file=sample.file or None, line=sample.line or None,
                         field=e.field) from None


def check_prompts(prompt: PromptSpec, samples: Sequence[Sample], models: Sequence[ModelConfig]) -> None:
    """Render every example's chat for each of these models' system prompts and few-shot settings, so that a
    template that fails on one, or a prompt over the cap, is refused before any run is stored."""
    variants = {(None, True): None, **{(m.system, m.few_shot): m for m in models}}.values()
    for sample in samples:
        for model in variants:
            sample_messages(prompt, sample, model)
