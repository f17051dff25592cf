"""The resume task's metrics on hand-checked cases, and the pass rule."""

from __future__ import annotations

import json

import pytest

from evals.errors import EvalsError
from evals.metrics import metrics, passes, score_all
from evals.types import Completion, Sample, Score, ScoreContext

REFERENCE = {"score": 3, "issues": ["typos", "weak_verbs"], "feedback": "Fix the typos and use stronger verbs."}
SCHEMA = {
    "type": "object",
    "required": ["score", "issues", "feedback"],
    "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}, "issues": {"type": "array"},
                   "feedback": {"type": "string"}},
    "additionalProperties": False,
}


def ctx(answer: str | dict, reference=REFERENCE) -> ScoreContext:
    text = answer if isinstance(answer, str) else json.dumps(answer)
    return ScoreContext(sample=Sample("x", {}, reference), completion=Completion(text=text))


async def score(name: str, answer, **kwargs) -> Score:
    return await metrics.create(name, **kwargs)(ctx(answer))


async def test_json_valid_accepts_json_and_a_fenced_block() -> None:
    assert (await score("json_valid", REFERENCE)).value == 1.0
    assert (await score("json_valid", "```json\n" + json.dumps(REFERENCE) + "\n```")).value == 1.0
    bad = await score("json_valid", "Sure! {\"score\": 3}")
    assert bad.value == 0.0 and "not JSON" in bad.explanation


async def test_json_valid_checks_the_schema() -> None:
    assert (await score("json_valid", REFERENCE, schema=SCHEMA)).value == 1.0
    wrong = await score("json_valid", {**REFERENCE, "score": 9}, schema=SCHEMA)
    assert wrong.value == 0.0 and "score" in wrong.explanation and "maximum" in wrong.explanation
    extra = await score("json_valid", {**REFERENCE, "mood": "ok"}, schema=SCHEMA)
    assert extra.value == 0.0 and "mood" in extra.explanation


def test_an_invalid_schema_fails_at_build_time() -> None:
    with pytest.raises(EvalsError, match="json_valid"):
        metrics.create("json_valid", schema={"type": "no-such-type"})


@pytest.mark.parametrize(
    ("predicted", "expected"),
    [
        (["typos", "weak_verbs"], 1.0),
        (["weak_verbs", "TYPOS "], 1.0),  # order, case and spaces do not matter
        (["typos"], 2 / 3),  # P=1, R=1/2
        (["typos", "buzzwords", "too_long"], 0.4),  # P=1/3, R=1/2 -> 2*(1/6)/(5/6)
        ([], 0.0),
    ],
)
async def test_set_f1_hand_checked(predicted, expected) -> None:
    result = await score("set_f1", {**REFERENCE, "issues": predicted}, field="issues")
    assert result.value == pytest.approx(expected)


async def test_set_f1_empty_sets_agree_and_reports_missing_and_extra() -> None:
    both_empty = await metrics.create("set_f1", field="issues")(ctx({"issues": []}, {"issues": []}))
    assert both_empty.value == 1.0
    partial = await score("set_f1", {"issues": ["typos", "buzzwords"]}, field="issues")
    assert partial.details["missing"] == ["weak_verbs"] and partial.details["extra"] == ["buzzwords"]
    recall = await score("set_f1", {"issues": ["typos"]}, field="issues", measure="recall")
    assert recall.value == 0.5
    assert (await score("set_f1", "no json here", field="issues")).value == 0.0


@pytest.mark.parametrize(("answer", "expected"), [(3, 1.0), (4, 1.0), (2, 1.0), (5, 0.0), (1, 0.0), ("4", 1.0)])
async def test_numeric_within_tolerance(answer, expected) -> None:
    result = await score("numeric_within", {**REFERENCE, "score": answer}, field="score", tolerance=1)
    assert result.value == expected


async def test_numeric_within_missing_field_scores_zero() -> None:
    result = await score("numeric_within", {"issues": []}, field="score", tolerance=1)
    assert result.value == 0.0 and "no number" in result.explanation


async def test_a_crashing_metric_is_recorded_not_raised() -> None:
    async def broken(ctx):
        raise RuntimeError("boom")

    scores = await score_all({"broken": broken}, ctx(REFERENCE))
    assert scores["broken"].value is None and "boom" in scores["broken"].error


def test_pass_rule_needs_every_threshold() -> None:
    rule = {"a": 1.0, "b": 0.75}
    assert passes({"a": Score(1.0), "b": Score(0.8)}, rule)
    assert not passes({"a": Score(1.0), "b": Score(0.7)}, rule)
    assert not passes({"a": Score(1.0), "b": Score(None, error="x")}, rule)
    assert not passes({"a": Score(1.0)}, rule)
