"""Decontamination: which training (or to-be-labelled) inputs also appear in the golden set, exactly or after
normalising whitespace and case. `evals finetune` refuses to train on them; `evals distill` drops them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from evals.data.prompts import sample_messages
from evals.chat import conversation_text
from evals.types import Sample, Task


@dataclass(frozen=True)
class Overlap:
    golden_id: str
    train_id: str
    exact: bool

    @property
    def how(self) -> str:
        return "exact" if self.exact else "same after normalising whitespace and case"


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def input_text(task: Task, sample: Sample) -> str:
    """What the model is asked about this example: its rendered user turn; for an example with a chat history,
    the whole conversation after the shared system prompt and worked examples (every turn, its role, and the
    calls it made), so two chats that share a last turn ("thanks!") are not taken for the same."""
    messages = sample_messages(task.prompt, sample)
    if not sample.messages:
        return messages[-1].content
    added = 0 if messages[-1] is sample.messages[-1] else 1  # the user template's turn after the history
    own = messages[len(messages) - len(sample.messages) - added:]
    return conversation_text(own)


def find_overlap(task: Task, train: Sequence[Sample], golden: Sequence[Sample]) -> list[Overlap]:
    """Every (golden, train) pair whose inputs (the rendered user turns) are the same, exactly or after
    normalising whitespace and case; in golden order, then training order."""
    order = {g.id: i for i, g in enumerate(golden)}
    exact = {input_text(task, g): g.id for g in golden}
    near = {normalise(text): gid for text, gid in exact.items()}
    found = []
    for s in train:
        text = input_text(task, s)
        if (gid := exact.get(text)) is not None:
            found.append(Overlap(gid, s.id, exact=True))
        elif (gid := near.get(normalise(text))) is not None:
            found.append(Overlap(gid, s.id, exact=False))
    return sorted(found, key=lambda o: order[o.golden_id])
