"""What a metric's ScoreContext carries from the run stage, so that metrics import neither the data stage nor
the store: the task's prompt rendered for an example (a judge shows it as the input, or asks another model
it), and stored runs' answers (pairwise_judge's `against: run:RUN_ID`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from evals.data.prompts import sample_messages
from evals.run.store import Store
from evals.types import Completion, Message, ModelCaller, Sample, ScoreContext, Task


class StoredAnswers:
    """Stored runs' answers by example id (None where the call failed), each run read once."""

    def __init__(self) -> None:
        self._read: dict[tuple[str, str | None], dict[str, str | None]] = {}

    def __call__(self, run_id: str, store: str | Path | None = None) -> Mapping[str, str | None]:
        key = (run_id, None if store is None else str(store))
        if key not in self._read:
            import pandas as pd  # here, not at the top: a run starts without it

            df = Store(store).results_frame(run_id, texts=("output",))
            self._read[key] = {str(r.example_id): None if pd.notna(r.error) or pd.isna(r.output) else str(r.output)
                               for r in df.itertuples()}
        return self._read[key]


def renderer(task: Task, sample: Sample) -> Callable[[str | None], list[Message]]:
    """ScoreContext.render for one example: the messages the model a spec names is sent (no spec: the task's)."""

    def render(spec: str | None = None) -> list[Message]:
        config = task.model_config(spec) if spec else None
        return sample_messages(task.prompt_for(config), sample, config)

    return render


def score_context(sample: Sample, completion: Completion, task: Task | None, models: ModelCaller | None,
                  answers: StoredAnswers) -> ScoreContext:
    """The context every metric of a run scores with."""
    return ScoreContext(sample=sample, completion=completion, task=task, models=models,
                        render=renderer(task, sample) if task is not None else None, stored_answers=answers)
