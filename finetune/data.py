"""Training data from a task: the chats the task sends at evaluation time, answered with the references.

Also the decontamination check against the golden set (its rules: evals/data/contamination.py, which
`evals distill` shares), the validation split, length-grouped batches and the export to OpenAI's format.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evals.data.contamination import Overlap, find_overlap
from evals.data.golden import load_samples
from evals.data.prompts import answer_text, sample_messages
from evals.data.tools import expected_calls
from evals.errors import EvalsError
from evals.types import Message, ModelConfig, Sample, Task, Tool, ToolCall


@dataclass(frozen=True)
class Example:
    """One training chat as token ids: the loss is taken on `answer` only."""

    id: str
    prompt: tuple[int, ...]
    answer: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.prompt) + len(self.answer)


def training_chats(task: Task, samples: Sequence[Sample], model: ModelConfig | None = None) -> list[list[Message]]:
    """Each sample as the exact chat the task sends `model` at evaluation time (its per-model system
    prompt and few-shot setting, its chat history), plus the reference as the answer: with `tools:`, a reference
    that is calls is an assistant turn making them."""
    return [[*sample_messages(task.prompt_for(model), s, model), answer_turn(task, s.reference)] for s in samples]


def answer_turn(task: Task, reference: object) -> Message:
    """The assistant turn a reference stands for: its calls (ids call_1, call_2, ...) where it is calls."""
    calls = expected_calls(reference) if task.tools else None
    if calls is None:
        return Message("assistant", answer_text(reference))
    return Message("assistant", "", tuple(ToolCall(c.name, c.arguments, c.id or f"call_{i}")
                                          for i, c in enumerate(calls, start=1)))


def load_train(task: Task) -> list[Sample]:
    if not task.train:
        raise EvalsError("the task has no training data: add `dataset: {train: train.jsonl}` to task.yaml",
                         file=task.path, field="dataset.train")
    return load_samples(task, "train")


def check_overlap(task: Task, train: Sequence[Sample], *, allow: bool) -> list[Overlap]:
    """The overlap with the golden set; raises with the list of pairs unless `allow`."""
    overlap = find_overlap(task, train, load_samples(task))
    if overlap and not allow:
        raise EvalsError(overlap_message(task, overlap))
    return overlap


def overlap_message(task: Task, overlap: Sequence[Overlap], limit: int = 20) -> str:
    lines = [f"{len(overlap)} golden example(s) of '{task.name}' also appear in its training data "
             "(training on them would inflate the golden-set score):"]
    for o in overlap[:limit]:
        lines.append(f"  golden {o.golden_id} = train {o.train_id} ({o.how})")
    if len(overlap) > limit:
        lines.append(f"  ... and {len(overlap) - limit} more")
    lines.append("Remove them from train.jsonl, or pass --allow-overlap to train anyway.")
    return "\n".join(lines)


def split(samples: Sequence[Sample], val_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """(train, validation): a seeded random slice of the training data held out for validation loss."""
    order = list(samples)
    random.Random(seed).shuffle(order)
    n_val = round(len(order) * val_fraction)
    if val_fraction > 0:
        n_val = max(1, n_val)
    if n_val >= len(order):
        raise EvalsError(f"only {len(order)} training example(s): too few to hold out {val_fraction:.0%} "
                         "for validation (lower val_fraction)")
    return order[n_val:], order[:n_val]


def tokenize(tokenizer, chats: Sequence[list[Message]], ids: Sequence[str],
             tools: Sequence[Tool] = ()) -> list[Example]:
    """Prompt ids through the model's chat template (ending where the answer starts, the functions offered as
    at evaluation time) and the answer ids followed by the end-of-turn token, so the model learns to stop; the
    loss is on the answer only. An answer that calls functions is written as the model will be read: by a
    template that takes tools, as it renders the assistant's `tool_calls` (the whole chat's tokens after the
    prompt's); otherwise as the documented JSON call format (evals.providers.tool_prompt)."""
    from evals.providers.local import chat_text, chat_token_ids
    from evals.providers.tool_prompt import calls_text, takes_tools

    eos = tokenizer.eos_token_id
    native = takes_tools(tokenizer)
    examples = []
    for example_id, chat in zip(ids, chats, strict=True):
        prompt = chat_token_ids(tokenizer, chat[:-1], tools)
        last = chat[-1]
        answer = None
        if last.tool_calls and native:
            whole = tokenizer(chat_text(tokenizer, chat, tools, answer_next=False), add_special_tokens=False)
            whole = whole["input_ids"]
            if whole[:len(prompt)] == prompt and len(whole) > len(prompt):
                answer = whole[len(prompt):]
        if answer is None:
            text = calls_text(last.tool_calls) if last.tool_calls else last.content
            answer = tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]
        examples.append(Example(example_id, tuple(prompt), tuple(answer)))
    return examples


def length_grouped_batches(examples: Sequence[Example], batch_size: int, seed: int) -> list[list[int]]:
    """Indices of examples in batches of similar length (little padding), in a seeded random order.

    Shuffles, sorts within windows of 50 batches by length, cuts batches, then shuffles the batches,
    so each epoch sees a different mix while padding stays small.
    """
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: len(examples[i]), reverse=True)
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def openai_jsonl(chats: Sequence[list[Message]], task: Task | None = None) -> str:
    """Chats as OpenAI's fine-tuning JSONL: `{"messages": [...]}` per line, each turn as the API takes it (calls
    with their arguments as JSON text, tool results with their call's id), and with the task's `tools`
    (`{"messages", "tools", "parallel_tool_calls"}`) where it declares functions."""
    from evals.providers.openai import openai_message

    extra: dict[str, object] = {}
    if task is not None and task.tools:
        extra["tools"] = [t.as_openai() for t in task.tools]
        if task.parallel_tool_calls is not None:
            extra["parallel_tool_calls"] = task.parallel_tool_calls
    return "".join(json.dumps({"messages": [openai_message(m) for m in chat], **extra}, ensure_ascii=False) + "\n"
                   for chat in chats)


def export_openai(chats: Sequence[list[Message]], path: Path, task: Task | None = None) -> int:
    """Write chats as OpenAI fine-tuning JSONL (openai_jsonl); returns the count."""
    from evals._util import write_atomic

    write_atomic(path, openai_jsonl(chats, task))
    return len(chats)

