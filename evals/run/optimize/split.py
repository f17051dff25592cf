"""The data an optimisation may see: the task's train.jsonl, split (seeded) into a search part, where demos
come from and rewrites are tried, and a dev part, where candidates are selected. The golden set is not read."""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

from evals.data.golden import load_samples, samples_hash
from evals.errors import EvalsError
from evals.types import PromptSpec, Sample, Task

DEV_SHARE = 0.2
MIN_DEV = 20
MIN_SEARCH = 10


@dataclass(frozen=True)
class Split:
    search: list[Sample]
    dev: list[Sample]
    seed: int
    train_hash: str  # the whole train set's content hash
    source: str  # the train file

    @property
    def hash(self) -> str:
        """Which examples went where: the train set's hash, the seed and the dev ids."""
        ids = ",".join(sorted(s.id for s in self.dev))
        return hashlib.sha256(f"{self.train_hash}|{self.seed}|{ids}".encode()).hexdigest()[:16]

    def describe(self) -> str:
        return f"{self.source}: {len(self.search)} search / {len(self.dev)} dev examples (seed {self.seed})"


def needs() -> str:
    return (f"evals optimize searches on the task's training set, never its golden set: it needs dataset.train "
            f"(train.jsonl) with at least {MIN_DEV + MIN_SEARCH} examples ({MIN_DEV} or more for the dev part "
            f"that selects, {MIN_SEARCH} or more to draw demos from)")


def split_train(task: Task, seed: int = 0, dev: int | None = None, seed_prompt: PromptSpec | None = None) -> Split:
    """Shuffle the train set by `seed` (in id order first, so the file's order does not matter) and take `dev`
    examples (default 20%, at least 20) for the dev part. An example the seed prompt shows as a worked example
    never goes to dev (it would be scored with its own answer in the prompt)."""
    if not task.train:
        raise EvalsError(f"task '{task.name}' has no training set. {needs()}", file=task.path, field="dataset.train")
    train = sorted(load_samples(task, "train"), key=lambda s: s.id)
    n_dev = dev if dev is not None else max(MIN_DEV, math.ceil(DEV_SHARE * len(train)))
    if n_dev < MIN_DEV:
        raise EvalsError(f"--dev {dev} is too small to select on: at least {MIN_DEV}", field="--dev")
    if len(train) < n_dev + MIN_SEARCH:
        raise EvalsError(f"{task.train} has {len(train)} examples, too few for a {n_dev}-example dev part and a "
                         f"search part. {needs()}", file=task.dir / task.train)
    order = list(train)
    random.Random(seed).shuffle(order)
    def inputs(fields: dict) -> str:
        return repr([fields.get(f) for f in task.input_fields])

    shown = {inputs(s.fields) for s in (seed_prompt.few_shot if seed_prompt else ())}
    eligible = [s for s in order if inputs(s.fields) not in shown]
    dev_part = eligible[:n_dev]
    taken = {s.id for s in dev_part}
    return Split(search=[s for s in order if s.id not in taken], dev=dev_part, seed=seed,
                 train_hash=samples_hash(train), source=str(task.train))
