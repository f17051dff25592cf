"""Text metrics over the answer (or one of its JSON fields)."""

from __future__ import annotations

import math

from evals.metrics import Metric, register_metric
from evals.metrics.structure import NotJSON, as_json, field_value
from evals.types import Score, ScoreContext


@register_metric("numeric_within")
def numeric_within(field: str | None = None, tolerance: float = 0.0) -> Metric:
    """1 if the number (at JSON `field`, or the whole answer) is within `tolerance` of the reference's."""
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0")

    async def score(ctx: ScoreContext) -> Score:
        gold = float(field_value(as_json(ctx.sample.reference), field))
        try:
            raw = field_value(as_json(ctx.completion.text), field) if field else ctx.completion.text
            pred = float(raw)
        except (NotJSON, KeyError, TypeError, ValueError) as e:
            return Score(0.0, explanation=f"no number at '{field}': {e}")
        if math.isnan(pred):
            return Score(0.0, explanation="answer is NaN")
        return Score(float(abs(pred - gold) <= tolerance), details={"answer": pred, "reference": gold})

    return score
