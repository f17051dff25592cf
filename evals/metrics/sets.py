"""Sets and labels: precision, recall and F1 of a predicted set; one class label per example.

A metric whose details carry `predicted` and `true` labels gets run-level accuracy, macro-F1 and a
confusion matrix from evals.analyse.aggregate; the metric itself only judges one example.
"""

from __future__ import annotations

import re
from typing import Any

from evals.metrics import Metric, register_metric
from evals.metrics.structure import NoAnswer, answer_value, as_json, as_text, reference_value
from evals.types import Score, ScoreContext

MAX_LABEL_CHARS = 60


def _as_set(value: Any) -> set[str]:
    if value is None:
        return set()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple, set)):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return {str(v).strip().lower() for v in value}


@register_metric("set_f1")
def set_f1(field: str | None = None, measure: str = "f1") -> Metric:
    """F1 (or `measure`: precision, recall) of the answer's set at JSON `field` against the reference's.
    Two empty sets score 1. An answer that is not JSON or lacks the field scores 0. Details hold all three."""
    if measure not in ("f1", "precision", "recall"):
        raise ValueError(f"measure must be f1, precision or recall, not {measure!r}")

    async def score(ctx: ScoreContext) -> Score:
        gold = _as_set(reference_value(ctx, field) if field else as_json(ctx.sample.reference))
        try:
            pred = _as_set(answer_value(ctx, field) if field else as_json(ctx.completion.text))
        except (NoAnswer, ValueError, TypeError) as e:
            return Score(0.0, explanation=f"no set at '{field}': {e}")
        hits = len(pred & gold)
        precision = hits / len(pred) if pred else float(not gold)
        recall = hits / len(gold) if gold else float(not pred)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        values = {"f1": f1, "precision": precision, "recall": recall}
        details = {**values, "missing": sorted(gold - pred), "extra": sorted(pred - gold)}
        return Score(values[measure], details=details)

    return score


def _clean(text: str, ignore_case: bool) -> str:
    text = " ".join(text.split()).strip(" \"'`.!;:")
    return text.casefold() if ignore_case else text


@register_metric("label")
def label(field: str | None = None, labels: list[str] | None = None, ignore_case: bool = True) -> Metric:
    """1 if the predicted class label (the answer, or its JSON `field`) is the reference's, else 0.
    With `labels` (the allowed classes) an answer that names exactly one of them (e.g. "It is positive.")
    counts as that label. Details hold `predicted` and `true`; the run gets accuracy, macro-F1, confusion."""
    if labels is not None and (not labels or not all(isinstance(x, str) and x.strip() for x in labels)):
        raise ValueError("labels must be a non-empty list of strings")
    canonical = {_clean(x, ignore_case): x for x in labels} if labels else {}

    def to_label(value: Any) -> tuple[str, bool]:
        """(label, is one of `labels`)."""
        text = _clean(as_text(value), ignore_case)
        if not canonical:
            return text, True
        if text in canonical:
            return canonical[text], True
        named = [c for key, c in canonical.items() if re.search(rf"(?<!\w){re.escape(key)}(?!\w)", text)]
        return (named[0], True) if len(named) == 1 else (text[:MAX_LABEL_CHARS], False)

    async def score(ctx: ScoreContext) -> Score:
        true, _ = to_label(reference_value(ctx, field))
        try:
            predicted, valid = to_label(answer_value(ctx, field))
        except NoAnswer as e:
            return Score(0.0, explanation=str(e), details={"predicted": "", "true": true, "valid": False})
        details = {"predicted": predicted, "true": true, "valid": valid}
        if labels:
            details["labels"] = list(labels)
        explanation = "" if predicted == true else f"predicted {predicted!r}, true {true!r}"
        if not valid:
            explanation += " (not one of the labels)"
        return Score(float(valid and predicted == true), explanation=explanation, details=details)

    return score
