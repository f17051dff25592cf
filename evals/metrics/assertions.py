"""promptfoo assertion types that no other metric family covers: edit distance, ROUGE-N, JSON somewhere in the
answer, an OpenAI tools call, and the call's measured cost and latency. Each scores 1 or 0 (its own figure in
details), so a check with the default threshold passes exactly when promptfoo's assertion would.
"""

from __future__ import annotations

import json
from typing import Any

from evals.metrics import Metric, register_metric
from evals.metrics.structure import _schema_errors, _validator, parse_json_answer
from evals.types import Score, ScoreContext


def edit_distance(a: str, b: str, limit: int | None = None) -> int:
    """Levenshtein distance; with `limit`, any distance above it is returned as limit + 1 (and found sooner)."""
    if len(a) < len(b):
        a, b = b, a
    if limit is not None and len(a) - len(b) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if limit is not None and min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


@register_metric("levenshtein")
def levenshtein(max_distance: float = 5) -> Metric:
    """1 if the answer is within `max_distance` character edits (Levenshtein) of the reference, else 0."""
    limit = int(max_distance)

    async def score(ctx: ScoreContext) -> Score:
        distance = edit_distance(ctx.completion.text, str(ctx.sample.reference), limit)
        shown = f"more than {limit}" if distance > limit else str(distance)
        return Score(float(distance <= limit), explanation=f"edit distance {shown}, at most {limit} passes",
                     details={"distance": distance if distance <= limit else None})

    return score


@register_metric("rouge_n")
def rouge_n(n: int = 1) -> Metric:
    """ROUGE-N F-measure (n-gram overlap, rouge-score's tokenizer, no stemming) of the answer against the reference."""
    from evals.metrics.overlap import rouge_scores

    if n not in range(1, 10):
        raise ValueError(f"n must be 1 to 9, not {n!r}")

    async def score(ctx: ScoreContext) -> Score:
        result = rouge_scores(str(ctx.sample.reference), ctx.completion.text, n)
        return Score(result.fmeasure, details={"precision": result.precision, "recall": result.recall})

    return score


def json_values(text: str) -> list[Any]:
    """Every JSON object or array that appears in the text, outermost first, in order."""
    decoder, found, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i] in "{[":
            try:
                value, end = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                i += 1
                continue
            found.append(value)
            i = end
        else:
            i += 1
    return found


@register_metric("contains_json")
def contains_json(schema: str | dict | None = None) -> Metric:
    """1 if some JSON object or array appears in the answer (and one of them follows `schema`, if given), else 0."""
    validator = _validator(schema) if schema is not None else None

    async def score(ctx: ScoreContext) -> Score:
        values = json_values(ctx.completion.text)
        if not values:
            return Score(0.0, explanation="no JSON in the answer")
        if validator is None:
            return Score(1.0)
        errors = [_schema_errors(validator, v) for v in values]
        if any(not e for e in errors):
            return Score(1.0)
        return Score(0.0, explanation=f"no JSON in the answer follows the schema: {errors[0][0]}")

    return score


@register_metric("openai_tools_call")
def openai_tools_call(tools: list[dict] | None = None) -> Metric:
    """1 if the answer is an OpenAI tools call of the offered functions, with arguments to their schema.

    The functions are `tools` (default: the task's `tools:`); the call is the completion's own function calls, else its text as a JSON
    list (or `{"tool_calls": [...]}`) of `{function: {name, arguments}}`."""
    functions = {t["function"]["name"]: t["function"] for t in tools or [] if isinstance(t, dict) and "function" in t}

    async def score(ctx: ScoreContext) -> Score:
        declared = functions if tools is not None else {t.name: t.as_openai()["function"] for t in
                                                        (ctx.task.tools if ctx.task is not None else ())}
        if ctx.completion.tool_calls:
            calls = [{"function": {"name": c.name, "arguments": c.arguments if isinstance(c.arguments, str)
                                   else json.dumps(c.arguments)}} for c in ctx.completion.tool_calls]
        else:
            try:
                calls = parse_json_answer(ctx.completion.text)
            except ValueError as e:
                return Score(0.0, explanation=str(e))
        if isinstance(calls, dict) and "tool_calls" in calls:
            calls = calls["tool_calls"]
        if not isinstance(calls, list) or not calls or not all(
                isinstance(c, dict) and isinstance(c.get("function"), dict)
                and isinstance(c["function"].get("name"), str) and isinstance(c["function"].get("arguments"), str) for c in calls):
            return Score(0.0, explanation="not a list of tool calls with function name and arguments")
        for call in calls:
            name = call["function"]["name"]
            if declared and name not in declared:
                return Score(0.0, explanation=f"calls '{name}', which is not one of the tools: {', '.join(declared)}")
            try:
                arguments = json.loads(call["function"]["arguments"])
            except json.JSONDecodeError as e:
                return Score(0.0, explanation=f"'{name}' arguments are not JSON: {e.msg}")
            schema = declared.get(name, {}).get("parameters")
            if schema and (errors := _schema_errors(_validator(schema), arguments)):
                return Score(0.0, explanation=f"'{name}' arguments: {errors[0]}")
        return Score(1.0)

    return score


@register_metric("max_cost")
def max_cost(usd: float) -> Metric:
    """1 if the model call's measured cost (USD, as priced for the run) is at most `usd`, else 0."""

    async def score(ctx: ScoreContext) -> Score:
        cost = ctx.completion.cost_usd
        return Score(float(cost <= usd), explanation=f"cost ${cost:.6f}, at most ${usd:g} passes",
                     details={"cost_usd": cost})

    return score


@register_metric("max_latency")
def max_latency(ms: float) -> Metric:
    """1 if the model call's measured latency (milliseconds, as the run measured it) is at most `ms`, else 0."""

    async def score(ctx: ScoreContext) -> Score:
        latency = ctx.completion.latency_s * 1000
        return Score(float(latency <= ms), explanation=f"latency {latency:.0f} ms, at most {ms:g} passes",
                     details={"latency_ms": latency})

    return score
