"""A candidate prompt scored on a part of the train split: one stored run per (candidate, part), made and resumed
through the runner, so every call has the cache, the concurrency, the budget, retries and progress of
`evals run`, and an example already stored is never asked again. The search's calls are capped (--max-calls)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evals.data.golden import samples_hash
from evals.data.prompts import prompt_hash, render_user
from evals.data.retrieval import warm
from evals.providers import Provider
from evals.run.manifest import build_manifest
from evals.run.optimize.ledger import Ledger
from evals.run.optimize.split import Split
from evals.run.progress import RunProgress
from evals.run.runner import ModelCalls, execute_run
from evals.run.store import Store
from evals.types import ModelConfig, PromptSpec, Sample, Task

SEARCH, DEV = "search", "dev"


@dataclass(frozen=True)
class Candidate:
    """A prompt the task can run: `family` is seed, bootstrap, random, retrieve or rewrite."""

    name: str
    family: str
    prompt: PromptSpec
    note: str = ""

    @property
    def key(self) -> str:
        return prompt_hash(self.prompt)


@dataclass
class Scored:
    """A candidate's results on one part: per example whether it matched, and what its calls used."""

    candidate: Candidate
    part: str
    run_id: str
    passed: dict[str, bool]
    rows: dict[str, dict[str, Any]] = field(repr=False)  # example id -> stored result (no texts)
    complete: bool = True  # every example asked of it has a result

    def tokens_per_call(self) -> tuple[float, float]:
        answered = [r for r in self.rows.values() if not r["error"]]
        if not answered:
            return 0.0, 0.0
        return (sum(r["input_tokens"] or 0 for r in answered) / len(answered),
                sum(r["output_tokens"] or 0 for r in answered) / len(answered))

    @property
    def rate(self) -> float:
        return sum(self.passed.values()) / len(self.passed) if self.passed else 0.0


class Labelled:
    """The runner's progress calls for one evaluation, its bar named after the candidate and part."""

    def __init__(self, bars: RunProgress, label: str):
        self.bars, self.label = bars, label

    def add(self, label: str, total: int, completed: int = 0) -> Any:
        return self.bars.add(self.label, total=total, completed=completed)

    def advance(self, bar: Any, **kwargs: Any) -> None:
        self.bars.advance(bar, **kwargs)

    def note(self, text: str) -> None:
        self.bars.note(text)


class Search:
    """Scores candidates for one optimisation: `task` and `config` as the search runs them (the model's own
    system-prompt override folded into the seed prompt), the split, the ledger and the shared calls."""

    def __init__(self, task: Task, config: ModelConfig, provider: Provider, store: Store, ledger: Ledger,
                 models: ModelCalls, split: Split, *, max_calls: int | None = None,
                 progress: RunProgress | None = None):
        self.task, self.config, self.provider, self.store, self.ledger = task, config, provider, store, ledger
        self.models, self.split, self.max_calls, self.progress = models, split, max_calls, progress

    def calls_left(self) -> int | None:
        """Calls the search may still make (None: no cap); those stored in earlier sessions count."""
        return None if self.max_calls is None else max(0, self.max_calls - self.ledger.calls_made())

    def part(self, name: str) -> list[Sample]:
        return self.split.dev if name == DEV else self.split.search

    def stored(self, candidate: Candidate, part: str) -> Scored | None:
        """What is stored of this candidate on this part, calling nothing."""
        run_id = self.ledger.run_for(candidate.key, part)
        return self._read(candidate, part, run_id, self.part(part)) if run_id else None

    async def score(self, candidate: Candidate, part: str, samples: Sequence[Sample] | None = None) -> Scored | None:
        """The candidate on `samples` (default: the whole part), asking only the examples not stored yet. None
        when the calls still needed do not fit in --max-calls (a part half-scored selects nothing): the candidate
        is then not scored at all."""
        samples = list({s.id: s for s in (samples if samples is not None else self.part(part))}.values())  # once each
        run_id = self.ledger.run_for(candidate.key, part) or self._create(candidate, part)
        done = {e for e, _ in self.store.done(run_id)}
        todo = [s for s in samples if s.id not in done]
        left = self.calls_left()
        if todo and left is not None and len(todo) > left:
            return None
        if todo:
            warm(candidate.prompt, [render_user(candidate.prompt, s.fields) for s in todo], render_user)
            bars = Labelled(self.progress, f"{candidate.name} on {part}") if self.progress is not None else None
            await execute_run(task=self._task(candidate), samples=todo, config=self.config, provider=self.provider,
                              store=self.store, run_id=run_id, models=self.models, progress=bars)
        return self._read(candidate, part, run_id, samples)

    def _task(self, candidate: Candidate) -> Task:
        return dataclasses.replace(self.task, prompt=candidate.prompt, prompts={})

    def _create(self, candidate: Candidate, part: str) -> str:
        samples = self.part(part)
        manifest = build_manifest(self._task(candidate), self.config, self.provider.id, samples_hash(samples),
                                  len(samples))
        manifest |= {"repeats": 1,
                     "golden": {"source": f"{self.split.source} ({part} part)", "hash": samples_hash(samples),
                                "n": len(samples)},
                     "optimization": {"id": self.ledger.id, "candidate": candidate.name,
                                      "family": candidate.family, "part": part, "split": self.split.describe()}}
        run_id = self.store.create_run(f"{self.task.name}@optimize", str(self.config.spec), len(samples), manifest)
        self.ledger.add_run(candidate.key, part, run_id)
        return run_id

    def _read(self, candidate: Candidate, part: str, run_id: str, samples: Sequence[Sample]) -> Scored:
        wanted = {s.id for s in samples}
        rows = {r["example_id"]: r for r in self.store.result_rows(run_id) if r["example_id"] in wanted}
        passed = {e: bool(r["passed"]) and not r["error"] for e, r in rows.items()}
        return Scored(candidate, part, run_id, passed, rows, complete=len(rows) == len(wanted))

    def outputs(self, scored: Scored) -> dict[str, dict[str, Any]]:
        """Each example's answer, error and scores (with explanations), for a proposer's feedback or demos."""
        texts = self.store.outputs(scored.run_id, [(e, 1) for e in scored.rows])
        return {e: {**texts.get((e, 1), {}), "explained": row["scores"]} for e, row in scored.rows.items()}
