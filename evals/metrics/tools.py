"""Tool-call metrics: did the model call the right functions, with the right arguments, in the right order, or
rightly answer in words. They read the completion's `tool_calls` and the reference (text: no call expected; a
call `{name, arguments}`; or a list of calls: see evals.data.tools).

Arguments are compared after JSON normalisation: key order does not matter, 1 equals 1.0 (but not true), and
an argument given as null counts as left out. Every metric scores an example that expects text too: right when
the model made no call (so each can stand in a pass rule), except `no_tool`, which scores only those examples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from evals.chat import argument_errors, expected_calls
from evals.metrics import Metric, register_metric
from evals.types import Score, ScoreContext, Tool, ToolCall

MATCHES = ("exact", "name")


def normalised(value: Any) -> Any:
    """A JSON value in a form where equal meaning compares equal: numbers as floats (booleans kept apart),
    objects as sorted items without null members, lists as tuples."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return ("bool", value) if isinstance(value, bool) else value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), normalised(v)) for k, v in value.items() if v is not None))
    if isinstance(value, (list, tuple)):
        return tuple(normalised(v) for v in value)
    return repr(value)


def _arguments(call: ToolCall) -> dict[str, Any] | None:
    """A call's arguments without null members; None when they are not a JSON object."""
    args = call.arguments
    return {k: v for k, v in args.items() if v is not None} if isinstance(args, dict) else None


def _key(call: ToolCall, match: str) -> Any:
    return call.name if match == "name" else (call.name, normalised(call.arguments))


def _expected(ctx: ScoreContext) -> tuple[ToolCall, ...] | None:
    """The reference's calls; None when it expects text. A list of names (promptfoo's tool-call-f1 value, or
    "a, b") expects those functions, with any arguments."""
    reference = ctx.sample.reference
    calls = expected_calls(reference)
    if calls is not None:
        return calls
    if isinstance(reference, list) and all(isinstance(n, str) for n in reference):
        return tuple(ToolCall(n, None) for n in reference)
    return None


def _check_match(match: str) -> None:
    if match not in MATCHES:
        raise ValueError(f"match must be one of {', '.join(MATCHES)}, not {match!r}")


def _names(calls: Sequence[ToolCall]) -> list[str]:
    return [c.name for c in calls]


def _text_expected(made: Sequence[ToolCall]) -> Score:
    """An example whose reference is text: right when no call was made."""
    if made:
        return Score(0.0, explanation=f"expected an answer in words, called {', '.join(_names(made))}",
                     details={"expected": [], "called": _names(made)})
    return Score(1.0, explanation="answered in words, as expected", details={"expected": [], "called": []})


@register_metric("tool_name")
def tool_name() -> Metric:
    """1 when the model called exactly the expected functions (by name, as many times each, in any order), else 0."""

    async def score(ctx: ScoreContext) -> Score:
        made, expected = ctx.completion.tool_calls, _expected(ctx)
        if expected is None:
            return _text_expected(made)
        right = Counter(_names(made)) == Counter(_names(expected))
        details = {"expected": _names(expected), "called": _names(made)}
        if right:
            return Score(1.0, details=details)
        said = ", ".join(_names(made)) or "nothing (answered in words)"
        return Score(0.0, explanation=f"expected {', '.join(_names(expected)) or 'no call'}, called {said}",
                     details=details)

    return score


def argument_credit(expected: ToolCall, made: ToolCall) -> tuple[float, dict[str, bool]]:
    """The share of arguments right, over every argument either call gives (1 when neither gives any), and which
    ones were right; arguments that are not a JSON object get none."""
    want, got = _arguments(expected), _arguments(made)
    if want is None or got is None:
        return 0.0, {}
    keys = sorted(set(want) | set(got))
    right = {k: k in want and k in got and normalised(want[k]) == normalised(got[k]) for k in keys}
    return (sum(right.values()) / len(keys) if keys else 1.0), right


def _tool(ctx: ScoreContext, name: str) -> Tool | None:
    return ctx.task.tool(name) if ctx.task is not None else None


@register_metric("tool_args")
def tool_args(partial: bool = True, schema: bool = True) -> Metric:
    """How right the call's arguments are, with per-argument credit.

    Each expected call is paired with the model's next call of the same function; a pair scores the share of its arguments equal after JSON normalisation (`partial: false`: 1 only when all
    are), 0 when the model's arguments break the function's schema (`schema: false`: not checked). The value
    is the pairs' total over the larger of the two call counts, so a missing or an extra call costs its share."""

    async def score(ctx: ScoreContext) -> Score:
        made, expected = ctx.completion.tool_calls, _expected(ctx)
        if expected is None:
            return _text_expected(made)
        if not expected and not made:
            return Score(1.0, explanation="no call expected, none made")
        unused = list(made)
        total, per_call, problems = 0.0, [], []
        for want in expected:
            got = next((c for c in unused if c.name == want.name), None)
            if got is None:
                per_call.append({"name": want.name, "credit": 0.0, "missing": True})
                continue
            unused.remove(got)
            credit, right = argument_credit(want, got)
            tool = _tool(ctx, got.name)
            stripped = _arguments(got)  # a null argument is left out, for the schema too
            broken = argument_errors(tool, got.arguments if stripped is None else stripped) \
                if schema and tool is not None else []
            if broken:
                credit = 0.0
                problems.append(f"{got.name}: {broken[0][0] + ': ' if broken[0][0] else ''}{broken[0][1]}")
            elif not partial:
                credit = float(credit == 1.0)
            total += credit
            per_call.append({"name": want.name, "credit": credit, "arguments": right, "valid": not broken})
        value = total / max(len(expected), len(made))
        wrong = [f"{c['name']}.{k}" for c in per_call for k, ok in (c.get("arguments") or {}).items() if not ok]
        missing = [c["name"] for c in per_call if c.get("missing")]
        said = "; ".join(filter(None, [
            f"wrong or missing arguments: {', '.join(wrong)}" if wrong else "",
            f"not called: {', '.join(missing)}" if missing else "",
            f"extra calls: {', '.join(c.name for c in unused)}" if unused else "",
            f"schema broken: {'; '.join(problems)}" if problems else ""]))
        return Score(value, explanation=said, details={"calls": per_call, "extra": _names(unused)})

    return score


def _f1(expected: Sequence[Any], made: Sequence[Any]) -> tuple[float, float, float]:
    """(precision, recall, F1) of two multisets; both empty is a perfect score."""
    if not expected and not made:
        return 1.0, 1.0, 1.0
    hits = sum((Counter(expected) & Counter(made)).values())
    precision = hits / len(made) if made else 0.0
    recall = hits / len(expected) if expected else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return precision, recall, f1


@register_metric("tool_calls_f1")
def tool_calls_f1(match: str = "exact") -> Metric:
    """F1 of the model's calls against the expected ones, in any order.

    A call counts when it has an expected call's name and (`match: exact`) its arguments after JSON normalisation; `match: name` compares names only
    (promptfoo's tool-call-f1). Each call counts once, so a repeated call must be expected twice."""
    _check_match(match)

    async def score(ctx: ScoreContext) -> Score:
        made, expected = ctx.completion.tool_calls, _expected(ctx)
        if expected is None:
            return _text_expected(made)
        by = "name" if match == "name" or any(c.arguments is None for c in expected) else "exact"
        precision, recall, f1 = _f1([_key(c, by) for c in expected], [_key(c, by) for c in made])
        return Score(f1, explanation=f"precision {precision:.2f}, recall {recall:.2f}",
                     details={"precision": precision, "recall": recall, "expected": _names(expected),
                              "called": _names(made)})

    return score


@register_metric("tool_sequence")
def tool_sequence(match: str = "exact") -> Metric:
    """1 when the model made the expected calls in the expected order and no other, else 0.

    `match: name`: the same functions in order, whatever their arguments; details say where the sequences first
    part."""
    _check_match(match)

    async def score(ctx: ScoreContext) -> Score:
        made, expected = ctx.completion.tool_calls, _expected(ctx)
        if expected is None:
            return _text_expected(made)
        want, got = [_key(c, match) for c in expected], [_key(c, match) for c in made]
        if want == got:
            return Score(1.0, details={"expected": _names(expected), "called": _names(made)})
        at = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
        what = (f"call {at + 1} is {made[at].name}" + ("" if match == "name" or made[at].name != expected[at].name
                                                       else " with other arguments")
                if at < len(made) and at < len(expected) else
                f"call {at + 1} ({expected[at].name}) is missing" if at < len(expected) else
                f"call {at + 1} ({made[at].name}) was not expected")
        return Score(0.0, explanation=f"expected {' -> '.join(_names(expected))}; {what}",
                     details={"expected": _names(expected), "called": _names(made), "first_difference": at})

    return score


@register_metric("no_tool")
def no_tool() -> Metric:
    """1 when the model answered in words without calling a function, where no call is expected, else 0.

    Examples that expect a call are not scored (value None), so its mean is the rate over those that expect
    text; put it in a pass rule only for tasks where every example expects text."""

    async def score(ctx: ScoreContext) -> Score:
        made, expected = ctx.completion.tool_calls, _expected(ctx)
        if expected is not None:
            return Score(None, explanation="a call is expected: not scored")
        if made:
            return _text_expected(made)
        if not ctx.completion.text.strip():
            return Score(0.0, explanation="no call, but no answer either")
        return Score(1.0, explanation="answered in words, as expected")

    return score
