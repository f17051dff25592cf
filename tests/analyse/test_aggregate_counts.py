"""The run summary's classification figures, computed from counts, equal scikit-learn's (the oracle)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from evals.analyse.aggregate import OTHER, classification, precision_recall_f1

LABELS = ["a", "b", "c", "d"]
label_pairs = st.lists(st.tuples(st.sampled_from(LABELS), st.sampled_from(LABELS)), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(pairs=label_pairs, subset=st.lists(st.sampled_from(LABELS), min_size=1, unique=True))
def test_every_averaging_mode_equals_sklearn(pairs, subset):
    y_true, y_pred = [t for t, _ in pairs], [p for _, p in pairs]
    # `subset` may name labels that never occur: the zero-division cases
    ours = precision_recall_f1(y_true, y_pred, subset)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=subset, average=None, zero_division=0)
    assert [x for row in ours for x in row[:3]] == pytest.approx([x for row in zip(p, r, f) for x in row])
    assert [row[3] for row in ours] == list(s)
    for average in ("macro", "micro", "weighted"):
        expected = precision_recall_fscore_support(y_true, y_pred, labels=subset, average=average,
                                                   zero_division=0)
        assert precision_recall_f1(y_true, y_pred, subset, average=average)[:3] == pytest.approx(expected[:3])


@settings(max_examples=150, deadline=None)
@given(pairs=st.lists(st.tuples(st.sampled_from(LABELS), st.sampled_from([*LABELS, "zz"])), min_size=1,
                      max_size=40),
       declared=st.lists(st.sampled_from(LABELS), unique=True))
def test_classification_report_equals_sklearn(pairs, declared):
    report = classification(pairs, declared)
    y_true = [t for t, _ in pairs]
    y_pred = [p if p in report.labels else OTHER for _, p in pairs]
    present = [c for c in report.labels if c in y_true or c in y_pred]
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=present, average=None, zero_division=0)
    assert report.accuracy == pytest.approx(accuracy_score(y_true, y_pred))
    assert report.macro_f1 == pytest.approx(float(f.mean()))
    assert report.confusion == confusion_matrix(y_true, y_pred, labels=report.columns)[: len(report.labels)].tolist()
    assert list(report.per_label) == present
    assert [x for v in report.per_label.values() for x in v.values()] == pytest.approx(
        [float(x) for row in zip(p, r, f, s, strict=True) for x in row])


def test_zero_division_gives_zero_not_an_error():
    # "b" is never predicted (precision 0/0) and "c" never occurs (recall 0/0)
    rows = precision_recall_f1(["a", "b"], ["a", "a"], ["a", "b", "c"])
    assert rows == [(0.5, 1.0, pytest.approx(2 / 3), 1), (0.0, 0.0, 0.0, 1), (0.0, 0.0, 0.0, 0)]
    with pytest.raises(ValueError, match="average"):
        precision_recall_f1(["a"], ["a"], ["a"], average="samples")
