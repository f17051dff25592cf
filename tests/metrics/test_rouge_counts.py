"""ROUGE-N and ROUGE-L from counts, with our tokens and Porter stemmer, equal rouge-score's RougeScorer (the oracle)
on random texts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.stem.porter import PorterStemmer
from rouge_score import rouge_scorer, tokenize

from evals.metrics.overlap import rouge_scores, rouge_tokens

ROOT = Path(__file__).resolve().parents[2]
WORDS = ["the", "cat", "sat", "on", "mat", "running", "runs", "a", "Cat,", "dog!", "", "é"]
# English words that stemming conflates or keeps apart: every word of one shipped golden set, and their inflections
GOLDEN = sorted(set(re.findall(r"[A-Za-z0-9]+", (ROOT / "golden_sets/release-notes/golden.jsonl").read_text())))
texts = st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join)
english = st.lists(st.tuples(st.sampled_from(GOLDEN), st.sampled_from(["", "s", "ed", "ing", "ly", ",", "."])),
                   max_size=25).map(lambda ws: " ".join(w + end for w, end in ws))


def _same(target: str, prediction: str, n: int | None, stem: bool) -> None:
    kind = "rougeL" if n is None else f"rouge{n}"
    expected = rouge_scorer.RougeScorer([kind], use_stemmer=stem).score(target, prediction)[kind]
    ours = rouge_scores(target, prediction, n, use_stemmer=stem)
    assert (ours.precision, ours.recall, ours.fmeasure) == pytest.approx(
        (expected.precision, expected.recall, expected.fmeasure))


@settings(max_examples=200, deadline=None)
@given(target=texts, prediction=texts, n=st.sampled_from([1, 2, 3, None]), stem=st.booleans())
def test_equals_rouge_score(target, prediction, n, stem):
    _same(target, prediction, n, stem)


@settings(max_examples=300, deadline=None)
@given(target=english, prediction=english, n=st.sampled_from([1, 2, None]))
def test_stemmed_rouge_on_english_texts_equals_rouge_score(target, prediction, n):
    _same(target, prediction, n, True)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=60) | english, stem=st.booleans())
def test_tokens_equal_rouge_scores_tokenizer(text, stem):
    assert rouge_tokens(text, stem) == tokenize.tokenize(text, PorterStemmer() if stem else None)


def test_words_of_three_letters_or_fewer_are_not_stemmed():  # Porter alone makes "was" "wa"
    text = "It was his bus; its axes dies"
    assert rouge_tokens(text, True) == tokenize.tokenize(text, PorterStemmer()) == [
        "it", "was", "his", "bus", "its", "axe", "die"]


def test_a_known_pair():
    ours = rouge_scores("the cat sat on the mat", "the cat on a mat", None)
    assert (ours.precision, ours.recall) == pytest.approx((4 / 5, 4 / 6))


def test_stemming_conflates_inflections():
    assert rouge_scores("the releases fixed crashes", "release fixes crash", None, use_stemmer=True).recall == 0.75
    assert rouge_scores("the releases fixed crashes", "release fixes crash", None).recall == 0.0
