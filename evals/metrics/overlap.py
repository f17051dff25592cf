"""Overlap metrics against the reference text: ROUGE-L (rouge-score), BLEU and chrF (sacrebleu), in [0, 1].

A reference that is a list of strings counts as several acceptable references (BLEU and chrF use them
all, ROUGE-L takes the best). The libraries are imported when a metric is built.
"""

from __future__ import annotations

from typing import Any

from evals.metrics import Metric, register_metric
from evals.metrics.structure import NoAnswer, answer_value, as_text, reference_value
from evals.types import Score, ScoreContext


def _references(value: Any) -> list[str]:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return [as_text(value)]


def _texts(ctx: ScoreContext, field: str | None) -> tuple[str, list[str]]:
    """(answer, references); raises NoAnswer."""
    references = _references(reference_value(ctx, field))
    return as_text(answer_value(ctx, field)), references


@register_metric("rouge_l")
def rouge_l(field: str | None = None, use_stemmer: bool = True) -> Metric:
    """ROUGE-L F-measure (longest common subsequence of words) of the answer against the reference.
    rouge-score's English tokenizer (lowercased, alphanumeric words), Porter stemming unless use_stemmer=false."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)

    async def score(ctx: ScoreContext) -> Score:
        try:
            answer, references = _texts(ctx, field)
        except NoAnswer as e:
            return Score(0.0, explanation=str(e))
        result = scorer.score_multi(references, answer)["rougeL"]
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
