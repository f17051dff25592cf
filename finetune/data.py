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
from evals.errors import EvalsError
from evals.types import Message, ModelConfig, Sample, Task


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
    prompt and few-shot setting), plus the reference as the answer."""
    return [[*sample_messages(task.prompt_for(model), s, model), Message("assistant", answer_text(s.reference))]
            for s in samples]


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


def tokenize(tokenizer, chats: Sequence[list[Message]], ids: Sequence[str]) -> list[Example]:
    """Prompt ids through the model's chat template (ending where the answer starts) and the answer
    ids followed by the end-of-turn token, so the model learns to stop."""
    from evals.providers.local import chat_token_ids

    eos = tokenizer.eos_token_id
    examples = []
    for example_id, chat in zip(ids, chats, strict=True):
        prompt = chat_token_ids(tokenizer, chat[:-1])
        answer = tokenizer(chat[-1].content, add_special_tokens=False)["input_ids"] + [eos]
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


def export_openai(chats: Sequence[list[Message]], path: Path) -> int:
    """Write chats as OpenAI fine-tuning JSONL (`{"messages": [...]}` per line); returns the count."""
    from evals._util import write_atomic

    lines = [json.dumps({"messages": [{"role": m.role, "content": m.content} for m in chat]}, ensure_ascii=False)
             for chat in chats]
    write_atomic(path, "\n".join(lines) + "\n")
    return len(lines)

