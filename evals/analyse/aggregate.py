"""Run-level aggregates of each metric, computed once here rather than by every metric: the mean (a rate
with a Wilson interval for 0/1 metrics), the metric's own errors, and, for metrics whose Score details carry
`predicted` and `true` labels, accuracy, macro-F1 and a confusion matrix, from counts in plain Python
(scikit-learn is the tests' oracle, not imported here: a run's summary starts without it).

Only examples the model answered count (a failed call has no scores); the match rate lives in summary.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from evals.analyse.rates import mean, wilson_interval

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
    per_class = precision_recall_f1(y_true, y_pred, present)
    columns = classes + ([OTHER] if OTHER in y_pred else [])
    counts = Counter(zip(y_true, y_pred))
    return Classification(
        n=len(pairs),
        accuracy=sum(t == p for t, p in zip(y_true, y_pred, strict=True)) / len(pairs),
        macro_f1=precision_recall_f1(y_true, y_pred, present, average="macro")[2] if present else 0.0,
        labels=classes,
        columns=columns,
        confusion=[[counts[t, p] for p in columns] for t in classes],
        per_label={c: {"precision": p, "recall": r, "f1": f, "support": s}
                   for c, (p, r, f, s) in zip(present, per_class, strict=True)},
    )


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0  # zero_division=0, as scikit-learn's option of that name


def precision_recall_f1(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str],
                        average: str | None = None) -> Any:
    """Precision, recall, F1 and support from counts, as scikit-learn's precision_recall_fscore_support with
    `labels` and zero_division=0. average=None: a (p, r, f1, support) tuple per label; "macro" (unweighted
    mean over labels), "weighted" (by support) or "micro" (global counts): one (p, r, f1, support) tuple,
    support being the total of the labels'."""
    tp, n_pred, n_true = Counter(), Counter(y_pred), Counter(y_true)
    for t, p in zip(y_true, y_pred, strict=True):
        tp[t] += t == p
    rows = []
    for c in labels:
        precision, recall = _ratio(tp[c], n_pred[c]), _ratio(tp[c], n_true[c])
        rows.append((precision, recall, _ratio(2 * tp[c], n_pred[c] + n_true[c]), n_true[c]))
    if average is None:
        return rows
    support = sum(row[3] for row in rows)
    if average == "micro":
        hits, predicted = sum(tp[c] for c in labels), sum(n_pred[c] for c in labels)
        return _ratio(hits, predicted), _ratio(hits, support), _ratio(2 * hits, predicted + support), support
    if average == "macro":
        weights = [1.0] * len(rows)
    elif average == "weighted":
        weights = [float(row[3]) for row in rows]
    else:
        raise ValueError(f"average must be None, 'macro', 'micro' or 'weighted', not {average!r}")
    total = sum(weights)
    return (*(_ratio(sum(w * row[i] for w, row in zip(weights, rows)), total) for i in range(3)), support)


@dataclass
class MetricTally:
    """One metric's stored scores (dicts of value, error, details) over the answered examples, folded in one
    at a time: the values, the metric's own errors, and the (true, predicted) pairs of label metrics."""

    values: list[float] = field(default_factory=list)
    errors: int = 0
    declared: dict[str, None] = field(default_factory=dict)  # the labels the metric declared, in order
    pairs: list[tuple[str, str]] = field(default_factory=list)

    def add(self, score: Mapping[str, Any]) -> None:
        self.errors += bool(score.get("error"))
        if score.get("value") is None:
            return
        self.values.append(score["value"])
        details = score.get("details") or {}
        if "predicted" in details and "true" in details:
            self.declared.update(dict.fromkeys(details.get("labels") or []))
            self.pairs.append((str(details["true"]),
                               str(details["predicted"]) if details.get("valid", True) else OTHER))

    def aggregate(self) -> MetricAggregate:
        binary = bool(self.values) and all(v in (0, 1) for v in self.values)
        return MetricAggregate(
            n=len(self.values),
            errors=self.errors,
            mean=mean(self.values),
            rate_ci=wilson_interval(int(sum(self.values)), len(self.values)) if binary else None,
            classification=classification(self.pairs, self.declared) if self.pairs else None,
        )


def aggregate_scores(scores: Iterable[Mapping[str, Any]]) -> MetricAggregate:
    """Aggregate one metric's stored scores over the answered examples."""
    tally = MetricTally()
    for score in scores:
        tally.add(score)
    return tally.aggregate()
