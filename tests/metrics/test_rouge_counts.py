"""ROUGE-N and ROUGE-L from counts equal rouge-score's RougeScorer (the oracle) on random texts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer

from evals.metrics.overlap import rouge_scores

WORDS = ["the", "cat", "sat", "on", "mat", "running", "runs", "a", "Cat,", "dog!", "", "é"]
texts = st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(target=texts, prediction=texts, n=st.sampled_from([1, 2, 3, None]), stem=st.booleans())
def test_equals_rouge_score(target, prediction, n, stem):
    kind = "rougeL" if n is None else f"rouge{n}"
    expected = rouge_scorer.RougeScorer([kind], use_stemmer=stem).score(target, prediction)[kind]
    ours = rouge_scores(target, prediction, n, use_stemmer=stem)
    assert (ours.precision, ours.recall, ours.fmeasure) == pytest.approx(
        (expected.precision, expected.recall, expected.fmeasure))


def test_a_known_pair():
    ours = rouge_scores("the cat sat on the mat", "the cat on a mat", None)
    assert (ours.precision, ours.recall) == pytest.approx((4 / 5, 4 / 6))
