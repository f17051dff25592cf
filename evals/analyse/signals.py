"""Routing signals: a number per example computed from the cheap model's answer alone, as production would
have it, never from the reference.

    logprob           the answer's mean token log-probability (local models record it; openai with
                      `options: {logprobs: true}`, which `evals route` sets when it runs the model)
    METRIC            a metric of the task scored on the answer (json_valid, json_schema, regex, a
                      metric file, an answer_judge); higher keeps more calls on the cheap model
    fallback:METRIC   keep the cheap answer only when it passes that check (its pass-rule threshold, else 1)

A metric signal is scored again on the stored answer, with the example's reference withheld: the metric
gets the example's id and input fields only, and reading anything else (the reference, or any other
golden-line data) raises `NeedsReference`, which refuses the signal. A metric that calls a model (a judge)
is checked the same way up to its first model call, and its stored score is used (no call is made again).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from evals._util import suggest
from evals.errors import EvalsError
from evals.metrics import as_score, build_metric, models_called
from evals.run.scoring import StoredAnswers, score_context
from evals.types import Completion, GenerateParams, Message, MetricSpec, Sample, Task

LOGPROB = "logprob"
FALLBACK = "fallback:"


class NeedsReference(BaseException):
    """A routing signal tried to read what production does not have: the reference, or other golden data.
    A BaseException, so that a metric's own `except Exception` cannot hide it."""


SEEN = ("id", "fields", "line", "messages")  # what production has of an example: id, input, chat (line: messages)
HIDDEN = frozenset(f.name for f in dataclasses.fields(Sample)) - set(SEEN)  # the reference, checks, people's labels


class WithoutReference(Sample):
    """A golden example as production sees it: its id and input fields. Anything else raises NeedsReference,
    a field with a default (checks, people's labels) included."""

    def __init__(self, sample: Sample):
        for name in SEEN:
            object.__setattr__(self, name, getattr(sample, name))

    def __getattribute__(self, name: str) -> Any:
        if name in HIDDEN:
            raise NeedsReference(f"the signal read the example's '{name}'")
        return super().__getattribute__(name)

    def __getattr__(self, name: str) -> Any:
        raise NeedsReference(f"the signal read the example's '{name}'")


class _FirstModelCall(Exception):
    pass


class _Probe:
    """The model caller a judge signal is checked with: its first call ends the check (nothing is sent)."""

    async def generate(self, spec: str, messages: list[Message], params: GenerateParams | None = None) -> Completion:
        raise _FirstModelCall


@dataclass(frozen=True)
class Signal:
    name: str  # as given: logprob, json_valid, fallback:json_valid
    metric: MetricSpec | None  # None for logprob
    fallback_at: float | None = None  # fallback: the check's threshold

    @property
    def description(self) -> str:
        if self.metric is None:
            return "the cheap answer's mean token log-probability (its model's confidence)"
        what = f"metric '{self.metric.id}' ({self.metric.name}) scored on the cheap answer alone"
        return f"fallback when {what} is below {self.fallback_at:g}" if self.fallback_at is not None else what


def parse_signal(name: str, task: Task, recorded: Sequence[MetricSpec] = ()) -> Signal:
    """The signal `name` names among the task's metrics (as the cheap run recorded them, if given: see
    evals.run.manifest.recorded_metrics, which refuses recorded code that the task does not name)."""
    if name == LOGPROB:
        return Signal(name, None)
    metric_id = name.removeprefix(FALLBACK)
    specs = list(recorded or task.metrics)
    found = next((m for m in specs if m.id == metric_id), None)
    if found is None:
        known = [LOGPROB, *(m.id for m in specs), *(FALLBACK + m.id for m in specs)]
        hint = suggest(name, known, style=" (did you mean '{}'?)")
        raise EvalsError(f"--signal '{name}' is neither logprob nor a metric of task '{task.name}'{hint}; the "
                         f"signals it has: {', '.join(known)} (a metric that reads the reference is refused)")
    if name.startswith(FALLBACK):
        return Signal(name, found, float(task.pass_rule.get(metric_id, 1.0)))
    return Signal(name, found)


def check_blind(signal: Signal, task: Task, sample: Sample) -> None:
    """Refuse, before any model is called, a metric signal that reads the reference on an empty answer."""
    if signal.metric is not None:
        asyncio.run(_blind_score(signal, task, build_metric(signal.metric, task), sample, Completion(text=""),
                                 StoredAnswers()))


def signal_values(signal: Signal, task: Task, samples: Mapping[str, Sample], cheap: pd.DataFrame,
                  known: Mapping[str, float | None] | None = None) -> dict[str, float | None]:
    """Example id -> the signal on the cheap run's answer (None where there is none: a provider error, a
    metric that could not score). Raises EvalsError when the run lacks the signal or it reads the reference.
    `known`: values already computed on this run (by an earlier call), taken as they are: each answer is
    scored once."""
    run_id = cheap.attrs.get("run", {}).get("id", "?")
    answered = cheap[cheap["error"].isna()]
    known = known or {}
    if signal.metric is None:
        values = {str(r.example_id): _finite(getattr(r, "mean_logprob", None)) for r in answered.itertuples()}
        if not any(v is not None for v in values.values()):
            model = cheap.attrs.get("run", {}).get("model", "?")
            raise EvalsError(f"run {run_id} ({model}) has no token log-probabilities, so --signal logprob cannot "
                             "route it: local models record them, and openai models when `options: {logprobs: "
                             "true}` is set (a new run with `evals route --cheap SPEC` sets it); anthropic "
                             "does not return them. Choose a metric signal, or run the cheap model again")
        return values
    metric = build_metric(signal.metric, task)
    rows = [r for r in answered.itertuples() if str(r.example_id) not in known]
    missing = [str(r.example_id) for r in rows if str(r.example_id) not in samples]
    if missing:
        raise EvalsError(f"{len(missing)} example(s) of run {run_id} (e.g. '{missing[0]}') are not in the golden "
                         f"set of task '{task.name}' as it is now, so their input cannot be shown to the signal")

    answers = StoredAnswers()

    async def score_all() -> list[float | None]:
        return list(await asyncio.gather(*(_blind_score(signal, task, metric, samples[str(r.example_id)], Completion(
            text=str(r.output or ""), output_tokens=int(r.output_tokens or 0),
            mean_logprob=_finite(getattr(r, "mean_logprob", None))), answers) for r in rows)))

    values = asyncio.run(score_all())
    if models_called(metric):  # a judge: blind up to its first call, so the score the run stored is taken
        values = [_finite(((r.scores or {}).get(signal.metric.id) or {}).get("value")) for r in rows]
    scored = {**{str(r.example_id): v for r, v in zip(rows, values, strict=True)}, **known}
    return {str(i): scored[str(i)] for i in answered["example_id"]}


async def _blind_score(signal: Signal, task: Task, metric: Any, sample: Sample, completion: Completion,
                       answers: StoredAnswers) -> float | None:
    ctx = score_context(WithoutReference(sample), completion, task, _Probe(), answers)
    try:
        result = metric(ctx)
        score = as_score(await result if inspect.isawaitable(result) else result)
    except NeedsReference as e:
        raise EvalsError(f"--signal '{signal.name}': metric '{signal.metric.id}' ({signal.metric.name}) reads "
                         f"the reference ({e}), which production does not have, so it cannot route calls. Use a "
                         "metric that looks at the answer alone (json_valid, json_schema, regex, answer_judge, "
                         "a metric file of your own), or logprob") from None
    except _FirstModelCall:
        return None
    except Exception:  # a broken metric on this answer: no signal, so the call goes to the strong model
        return None
    return _finite(score.value) if score.error is None else None


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None

