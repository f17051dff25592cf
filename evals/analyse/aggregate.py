"""Run-level aggregates of each metric, computed once here rather than by every metric: the mean (a rate
with a Wilson interval for 0/1 metrics), the metric's own errors, and, for metrics whose Score details carry
`predicted` and `true` labels, accuracy, macro-F1 and a confusion matrix (scikit-learn).

Only examples the model answered count (a failed call has no scores); the match rate lives in summary.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from evals.analyse.stats import mean, wilson_interval

OTHER = "(other)"  # predictions outside the metric's declared labels


@dataclass(frozen=True)
class Classification:
    """Accuracy, macro-F1 and confusion of one label metric over a run. Rows of `confusion` are true
    labels, columns predicted ones, both in the order of `labels` (plus OTHER as a last column if any)."""

    n: int
    accuracy: float
    macro_f1: float
    labels: list[str]
    columns: list[str]
    confusion: list[list[int]]
    per_label: dict[str, dict[str, float]]  # precision, recall, f1, support


@dataclass(frozen=True)
class MetricAggregate:
    n: int  # examples with a value
    errors: int  # examples where the metric itself failed (e.g. a judge call)
    mean: float | None
    rate_ci: tuple[float, float] | None  # Wilson 95% interval when every value is 0 or 1
    classification: Classification | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def classification(pairs: Iterable[tuple[str, str]], declared: Iterable[str] = ()) -> Classification | None:
    """Classification report for (true, predicted) label pairs. Classes are the declared labels and the true
    labels; without declared labels, predicted ones too. macro-F1 averages over classes that occur."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    pairs = list(pairs)
    if not pairs:
        return None
    y_true = [t for t, _ in pairs]
    declared = list(dict.fromkeys(declared))
    classes = declared + sorted({*y_true} - set(declared))
    if not declared:
        classes += sorted({p for _, p in pairs} - set(classes))
    y_pred = [p if p in classes else OTHER for _, p in pairs]
    present = [c for c in classes if c in y_true or c in y_pred]
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=present, average=None, zero_division=0)
    columns = classes + ([OTHER] if OTHER in y_pred else [])
    matrix = confusion_matrix(y_true, y_pred, labels=columns)[: len(classes)]
    return Classification(
        n=len(pairs),
        accuracy=float(accuracy_score(y_true, y_pred)),
        macro_f1=float(f1.mean()) if len(present) else 0.0,
        labels=classes,
        columns=columns,
        confusion=matrix.tolist(),
        per_label={c: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                   for c, p, r, f, s in zip(present, precision, recall, f1, support, strict=True)},
    )


def aggregate_scores(scores: Iterable[Mapping[str, Any]]) -> MetricAggregate:
    """Aggregate one metric's stored scores (dicts of value, error, details) over the answered examples."""
    scores = list(scores)
    values = [s["value"] for s in scores if s.get("value") is not None]
    binary = bool(values) and all(v in (0, 1) for v in values)
    labelled = [s for s in scores if s.get("value") is not None
                and "predicted" in (s.get("details") or {}) and "true" in (s.get("details") or {})]
    declared: list[str] = []
    for s in labelled:
        declared += [x for x in s["details"].get("labels") or [] if x not in declared]
    pairs = [(str(s["details"]["true"]), str(s["details"]["predicted"]) if s["details"].get("valid", True)
              else OTHER) for s in labelled]
    return MetricAggregate(
        n=len(values),
        errors=sum(1 for s in scores if s.get("error")),
        mean=mean(values),
        rate_ci=wilson_interval(int(sum(values)), len(values)) if binary else None,
        classification=classification(pairs, declared) if labelled else None,
    )


def _scores(df: pd.DataFrame) -> pd.Series:
    """Each row's scores as {metric id: score dict}; from the `score.<id>` value columns if that is all there is."""
    if "scores" in df.columns:
        return df["scores"]
    columns = [c for c in df.columns if c.startswith("score.")]
    return df.apply(lambda row: {c.removeprefix("score."): {"value": None if pd.isna(row[c]) else row[c]}
                                 for c in columns}, axis=1)


def aggregate_run(df: pd.DataFrame) -> dict[str, MetricAggregate]:
    """Every metric of a stored run (from `load_run`), by metric id."""
    if not len(df):
        return {}
    answered = _scores(df[df["error"].isna()])
    metric_ids = sorted({k for s in answered for k in s})
    return {m: aggregate_scores(s[m] for s in answered if m in s) for m in metric_ids}


def judge_usage(df: pd.DataFrame) -> dict[str, float]:
    """What the metrics' own model calls (judges) used over a run: calls, tokens, cost, spent (not cached)."""
    total = {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "spent_usd": 0.0}
    for scores in df["scores"] if len(df) and "scores" in df.columns else []:
        for score in scores.values():
            for key, value in (score.get("usage") or {}).items():
                total[key] = total.get(key, 0) + value
    return total
