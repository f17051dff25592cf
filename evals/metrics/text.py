"""Text metrics over the answer (or one of its JSON fields): exact match, includes, regex, numeric tolerance."""

from __future__ import annotations

import math
import re
import unicodedata

from evals.metrics import Metric, register_metric
from evals.metrics.structure import NoAnswer, answer_value, as_text, reference_value
from evals.types import Score, ScoreContext

REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "a": re.ASCII}


def normalize(text: str, *, ignore_case: bool = True, ignore_punctuation: bool = False,
              normalize_whitespace: bool = True) -> str:
    """Unicode NFC; then optionally case-folded, punctuation removed, whitespace collapsed and stripped."""
    text = unicodedata.normalize("NFC", text)
    if ignore_case:
        text = text.casefold()
    if ignore_punctuation:
        text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))
    if normalize_whitespace:
        text = " ".join(text.split())
    return text


def acceptable(ctx: ScoreContext, field: str | None) -> list[str]:
    """The reference as text; a list of strings as the whole reference means "any of these"."""
    gold = reference_value(ctx, field)
    if field is None and isinstance(gold, list) and gold and all(isinstance(g, str) for g in gold):
        return list(gold)
    return [as_text(gold)]


@register_metric("exact_match")
def exact_match(field: str | None = None, ignore_case: bool = True, ignore_punctuation: bool = False,
                normalize_whitespace: bool = True) -> Metric:
    """1 if the answer (or its JSON `field`) equals the reference after normalisation, else 0.
    A reference that is a list of strings (without `field`) lists acceptable answers: any one counts."""
    options = {"ignore_case": ignore_case, "ignore_punctuation": ignore_punctuation,
               "normalize_whitespace": normalize_whitespace}

    async def score(ctx: ScoreContext) -> Score:
        golds = [normalize(g, **options) for g in acceptable(ctx, field)]
        try:
            pred = normalize(as_text(answer_value(ctx, field)), **options)
        except NoAnswer as e:
            return Score(0.0, explanation=str(e))
        if pred in golds:
            return Score(1.0)
        return Score(0.0, explanation=f"expected {' or '.join(repr(g[:80]) for g in golds)}, got {pred[:80]!r}")

    return score


@register_metric("includes")
def includes(text: str | list[str] | None = None, field: str | None = None, ignore_case: bool = True) -> Metric:
    """1 if the answer (or its JSON `field`) contains `text` (every one, if a list), else 0.
    Without `text` the reference must be included (any one of a list reference). Whitespace runs count
    as one space."""
    needles = [text] if isinstance(text, str) else text
    if needles is not None and (not needles or not all(isinstance(t, str) and t for t in needles)):
        raise ValueError("text must be a non-empty string or a list of them")

    def norm(s: str) -> str:
        return normalize(s, ignore_case=ignore_case)

    async def score(ctx: ScoreContext) -> Score:
        try:
            haystack = norm(as_text(answer_value(ctx, field)))
        except NoAnswer as e:
            return Score(0.0, explanation=str(e))
        if needles is None:
            golds = acceptable(ctx, field)
            if any(norm(g) in haystack for g in golds):
                return Score(1.0)
            return Score(0.0, explanation="missing: " + " or ".join(repr(g[:60]) for g in golds),
                         details={"missing": golds})
        missing = [w for w in needles if norm(w) not in haystack]
        if missing:
            return Score(0.0, explanation="missing: " + ", ".join(repr(m[:60]) for m in missing),
                         details={"missing": missing})
        return Score(1.0)

    return score


@register_metric("regex")
def regex(pattern: str, field: str | None = None, flags: str = "") -> Metric:
    """1 if the regular expression `pattern` matches somewhere in the answer (or its JSON `field`), else 0.
    `flags`: letters of i (ignore case), m (multiline), s (dot matches newline), x (verbose), a (ASCII)."""
    unknown = set(flags) - set(REGEX_FLAGS)
    if unknown:
        raise ValueError(f"unknown regex flag(s) {''.join(sorted(unknown))!r}; use {''.join(REGEX_FLAGS)}")
    compiled = re.compile(pattern, sum((REGEX_FLAGS[f] for f in set(flags)), re.NOFLAG))

    async def score(ctx: ScoreContext) -> Score:
        try:
            haystack = as_text(answer_value(ctx, field))
        except NoAnswer as e:
            return Score(0.0, explanation=str(e))
        found = compiled.search(haystack)
        if found is None:
            return Score(0.0, explanation=f"no match for /{pattern}/")
        return Score(1.0, details={"match": found.group(0)[:200]})

    return score


@register_metric("numeric_within")
def numeric_within(field: str | None = None, tolerance: float = 0.0) -> Metric:
    """1 if the number (at JSON `field`, or the whole answer) is within `tolerance` of the reference's."""
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0")

    async def score(ctx: ScoreContext) -> Score:
        gold = float(reference_value(ctx, field))
        try:
            pred = float(answer_value(ctx, field))
        except (NoAnswer, TypeError, ValueError) as e:
            return Score(0.0, explanation=f"no number at '{field}': {e}")
        if math.isnan(pred):
            return Score(0.0, explanation="answer is NaN")
        return Score(float(abs(pred - gold) <= tolerance), details={"answer": pred, "reference": gold})

    return score
