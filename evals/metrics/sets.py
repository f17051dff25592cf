"""Set metrics: precision, recall and F1 of a predicted set of labels against the reference set."""

from __future__ import annotations

from typing import Any

from evals.metrics import Metric, register_metric
from evals.metrics.structure import NotJSON, as_json, field_value
from evals.types import Score, ScoreContext


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
    Two empty sets score 1. An answer that is not JSON or lacks the field scores 0."""
    if measure not in ("f1", "precision", "recall"):
        raise ValueError(f"measure must be f1, precision or recall, not {measure!r}")

    async def score(ctx: ScoreContext) -> Score:
        gold = _as_set(field_value(as_json(ctx.sample.reference), field))
        try:
            pred = _as_set(field_value(as_json(ctx.completion.text), field))
        except (NotJSON, KeyError, TypeError) as e:
            return Score(0.0, explanation=f"no set at '{field}': {e}")
        hits = len(pred & gold)
        precision = hits / len(pred) if pred else float(not gold)
        recall = hits / len(gold) if gold else float(not pred)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        values = {"f1": f1, "precision": precision, "recall": recall}
        details = {**values, "missing": sorted(gold - pred), "extra": sorted(pred - gold)}
        return Score(values[measure], details=details)

    return score
