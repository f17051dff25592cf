"""Overlap metrics against the reference text: ROUGE-L (from counts, rouge-score's tokens and Porter stemming, with
no nltk: evals.metrics.porter), BLEU and chrF (sacrebleu), in [0, 1].

A reference that is a list of strings counts as several acceptable references (BLEU and chrF use them
all, ROUGE-L takes the best). The libraries are imported when a metric is built.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from evals.metrics import Metric, porter, register_metric
from evals.metrics.structure import NoAnswer, answer_value, as_text, reference_value
from evals.types import Score, ScoreContext

_WORD = re.compile(r"[a-z0-9]+")


def _references(value: Any) -> list[str]:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return [as_text(value)]


def _texts(ctx: ScoreContext, field: str | None) -> tuple[str, list[str]]:
    """(answer, references); raises NoAnswer."""
    references = _references(reference_value(ctx, field))
    return as_text(answer_value(ctx, field)), references


@dataclass(frozen=True)
class Rouge:
    precision: float
    recall: float
    fmeasure: float


def _rouge(hits: int, predicted: int, target: int) -> Rouge:
    precision, recall = hits / max(predicted, 1), hits / max(target, 1)
    return Rouge(precision, recall, 2 * precision * recall / (precision + recall) if precision + recall else 0.0)


def _lcs_length(a: list[str], b: list[str]) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        previous, row = row, [0]
        for j, y in enumerate(b):
            row.append(previous[j] + 1 if x == y else max(previous[j + 1], row[j]))
    return row[-1]


def rouge_tokens(text: str, stemmed: bool) -> list[str]:
    """rouge-score's English tokens: lowercased runs of a-z and 0-9, words longer than 3 letters Porter-stemmed."""
    words = _WORD.findall(text.lower())
    return [porter.stem(w) if len(w) > 3 else w for w in words] if stemmed else words


def rouge_scores(target: str, prediction: str, n: int | None, use_stemmer: bool = False) -> Rouge:
    """ROUGE-N (n given) or ROUGE-L (n None) of prediction against target, from counts, as rouge-score's
    RougeScorer computes it (rouge-score is the tests' oracle: importing it imports nltk whole, ~1.3 s)."""
    t, p = rouge_tokens(target, use_stemmer), rouge_tokens(prediction, use_stemmer)
    if n is None:
        return _rouge(_lcs_length(t, p), len(p), len(t)) if t and p else Rouge(0.0, 0.0, 0.0)
    grams_t = Counter(tuple(t[i:i + n]) for i in range(len(t) - n + 1))
    grams_p = Counter(tuple(p[i:i + n]) for i in range(len(p) - n + 1))
    hits = sum(min(c, grams_p[g]) for g, c in grams_t.items())
    return _rouge(hits, sum(grams_p.values()), sum(grams_t.values()))


@register_metric("rouge_l")
def rouge_l(field: str | None = None, use_stemmer: bool = True) -> Metric:
    """ROUGE-L F-measure (longest common subsequence of words) of the answer against the reference.
    rouge-score's English tokenizer (lowercased, alphanumeric words), Porter stemming unless use_stemmer=false;
    with several references, the one of highest F-measure."""

    async def score(ctx: ScoreContext) -> Score:
        try:
            answer, references = _texts(ctx, field)
        except NoAnswer as e:
            return Score(0.0, explanation=str(e))
        result = max((rouge_scores(r, answer, None, use_stemmer) for r in references), key=lambda s: s.fmeasure,
                     default=Rouge(0.0, 0.0, 0.0))
        return Score(result.fmeasure, details={"precision": result.precision, "recall": result.recall})

    return score


@register_metric("bleu")
def bleu(field: str | None = None, tokenize: str = "13a", lowercase: bool = False) -> Metric:
    """Sentence BLEU (sacrebleu: exponential smoothing, effective order) of the answer, scaled to [0, 1]."""
    from sacrebleu.metrics import BLEU

    metric = BLEU(tokenize=tokenize, lowercase=lowercase, effective_order=True)

    async def score(ctx: ScoreContext) -> Score:
        try:
            answer, references = _texts(ctx, field)
        except NoAnswer as e:
            return Score(0.0, explanation=str(e))
        result = metric.sentence_score(answer, references)
        return Score(result.score / 100, details={"bp": result.bp, "precisions": list(result.precisions)})

    return score


@register_metric("chrf")
def chrf(field: str | None = None, word_order: int = 0) -> Metric:
    """Sentence chrF (sacrebleu, character n-grams; word_order=2 gives chrF++) of the answer, scaled to [0, 1]."""
    from sacrebleu.metrics import CHRF

    metric = CHRF(word_order=word_order)

    async def score(ctx: ScoreContext) -> Score:
        try:
            answer, references = _texts(ctx, field)
        except NoAnswer as e:
            return Score(0.0, explanation=str(e))
        return Score(metric.sentence_score(answer, references).score / 100)

    return score
