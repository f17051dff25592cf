"""Tool-call metrics on hand-computed cases: the right function, its arguments (JSON-normalised, per-argument
credit, schema), several calls in any order (F1) or in order, and answering in words when no call is due."""

from __future__ import annotations

from typing import Any

import pytest

from evals.errors import EvalsError
from evals.metrics import metrics
from evals.types import Completion, Sample, Score, ScoreContext, Task, Tool, ToolCall

REFUND = Tool("refund", "Refund an order.", {"type": "object", "properties": {
    "order_id": {"type": "string"}, "amount": {"type": "number", "minimum": 0}, "reason": {"type": "string"}},
    "required": ["order_id"]})
LOOKUP = Tool("lookup_order", "Find an order.", {"type": "object", "properties": {"order_id": {"type": "string"}},
                                                 "required": ["order_id"]})


class _Tools:
    """What a metric reads of a task: its declared functions."""

    tools = (REFUND, LOOKUP)

    def tool(self, name: str) -> Tool | None:
        return Task.tool(self, name)  # type: ignore[arg-type]


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(name, arguments)


async def score(name: str, made: list[ToolCall], reference: Any, text: str = "", **kwargs: Any) -> Score:
    ctx = ScoreContext(sample=Sample("x", {}, reference), completion=Completion(text=text, tool_calls=tuple(made)),
                       task=_Tools())  # type: ignore[arg-type]
    return await metrics.create(name, **kwargs)(ctx)


def ref(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


async def test_tool_name_wants_exactly_the_expected_functions() -> None:
    assert (await score("tool_name", [call("refund", order_id="A1")], ref("refund", order_id="B9"))).value == 1.0
    wrong = await score("tool_name", [call("lookup_order", order_id="A1")], ref("refund", order_id="A1"))
    assert wrong.value == 0.0 and "expected refund, called lookup_order" in wrong.explanation
    extra = await score("tool_name", [call("lookup_order", order_id="A1"), call("refund", order_id="A1")],
                        ref("refund", order_id="A1"))
    assert extra.value == 0.0
    assert (await score("tool_name", [], ref("refund", order_id="A1"))).value == 0.0
    assert (await score("tool_name", [], "You're welcome")).value == 1.0  # text expected, none made
    assert (await score("tool_name", [call("refund", order_id="A1")], "You're welcome")).value == 0.0


async def test_tool_args_normalises_json_and_gives_per_argument_credit() -> None:
    # key order, 1 == 1.0 and an argument given as null count as the same arguments
    same = await score("tool_args", [call("refund", amount=12, order_id="A1", reason=None)],
                       ref("refund", order_id="A1", amount=12.0))
    assert same.value == 1.0
    # arguments {order_id, amount, reason} between the two: order_id right, amount wrong, reason only expected
    partial = await score("tool_args", [call("refund", order_id="A1", amount=5)],
                          ref("refund", order_id="A1", amount=12, reason="late"))
    assert partial.value == pytest.approx(1 / 3)
    assert partial.details["calls"][0]["arguments"] == {"amount": False, "order_id": True, "reason": False}
    assert "refund.amount" in partial.explanation and "refund.reason" in partial.explanation
    whole = await score("tool_args", [call("refund", order_id="A1", amount=5)],
                        ref("refund", order_id="A1", amount=12, reason="late"), partial=False)
    assert whole.value == 0.0
    # true is not 1
    assert (await score("tool_args", [call("lookup_order", order_id=True)], ref("lookup_order", order_id=1),
                        schema=False)).value == 0.0


async def test_tool_args_scores_zero_for_arguments_breaking_the_schema() -> None:
    broken = await score("tool_args", [call("refund", order_id="A1", amount=-1)], ref("refund", order_id="A1",
                                                                                      amount=-1))
    assert broken.value == 0.0 and "schema broken" in broken.explanation and "minimum" in broken.explanation
    unchecked = await score("tool_args", [call("refund", order_id="A1", amount=-1)],
                            ref("refund", order_id="A1", amount=-1), schema=False)
    assert unchecked.value == 1.0
    text = await score("tool_args", [ToolCall("refund", '{"order_id": "A1"')], ref("refund", order_id="A1"))
    assert text.value == 0.0  # arguments that did not parse as JSON


async def test_tool_args_shares_credit_over_the_larger_call_count() -> None:
    expected = [ref("lookup_order", order_id="A1"), ref("refund", order_id="A1", amount=10)]
    # lookup right (1), refund half right (order_id yes, amount no: 1/2), over 2 calls: 0.75
    made = [call("refund", order_id="A1", amount=3), call("lookup_order", order_id="A1")]
    assert (await score("tool_args", made, expected)).value == pytest.approx(0.75)
    # one right call, one missing: 1 / 2; one right call and an extra one: 1 / 2
    assert (await score("tool_args", made[1:], expected)).value == pytest.approx(0.5)
    extra = await score("tool_args", [call("lookup_order", order_id="A1"), call("refund", order_id="A1")],
                        [ref("lookup_order", order_id="A1")])
    assert extra.value == pytest.approx(0.5) and extra.details["extra"] == ["refund"]


async def test_tool_calls_f1_ignores_order_and_counts_each_call_once() -> None:
    expected = [ref("lookup_order", order_id="A1"), ref("lookup_order", order_id="A2"), ref("refund", order_id="A1")]
    in_any_order = [call("refund", order_id="A1"), call("lookup_order", order_id="A2"),
                    call("lookup_order", order_id="A1")]
    assert (await score("tool_calls_f1", in_any_order, expected)).value == 1.0
    # 2 of 3 made calls right (precision 2/3), 2 of 3 expected made (recall 2/3): F1 2/3
    one_wrong = [call("refund", order_id="A1"), call("lookup_order", order_id="A9"),
                 call("lookup_order", order_id="A1")]
    f1 = await score("tool_calls_f1", one_wrong, expected)
    assert f1.value == pytest.approx(2 / 3) and f1.details["precision"] == pytest.approx(2 / 3)
    # by name only, the wrong order id is a hit
    assert (await score("tool_calls_f1", one_wrong, expected, match="name")).value == 1.0
    # 1 call made, right: precision 1, recall 1/3: F1 = 2 * 1/3 / (4/3) = 0.5
    assert (await score("tool_calls_f1", [call("refund", order_id="A1")], expected)).value == pytest.approx(0.5)
    # a repeated call counts once: precision 1/2, recall 1: F1 2/3
    twice = [call("refund", order_id="A1"), call("refund", order_id="A1")]
    assert (await score("tool_calls_f1", twice, [ref("refund", order_id="A1")])).value == pytest.approx(2 / 3)
    assert (await score("tool_calls_f1", [], [])).value == 1.0
    assert (await score("tool_calls_f1", [], "fine")).value == 1.0


async def test_tool_calls_f1_takes_promptfoo_names() -> None:
    made = [call("lookup_order", order_id="A1"), call("escalate")]
    # expected {lookup_order, refund}: 1 hit, precision 1/2, recall 1/2
    assert (await score("tool_calls_f1", made, ["lookup_order", "refund"])).value == pytest.approx(0.5)


async def test_tool_sequence_wants_the_calls_in_order() -> None:
    expected = [ref("lookup_order", order_id="A1"), ref("refund", order_id="A1")]
    right = [call("lookup_order", order_id="A1"), call("refund", order_id="A1")]
    assert (await score("tool_sequence", right, expected)).value == 1.0
    swapped = await score("tool_sequence", right[::-1], expected)
    assert swapped.value == 0.0 and swapped.details["first_difference"] == 0
    assert "call 1 is refund" in swapped.explanation
    other_args = await score("tool_sequence", [right[0], call("refund", order_id="A2")], expected)
    assert other_args.value == 0.0 and "with other arguments" in other_args.explanation
    assert (await score("tool_sequence", [right[0], call("refund", order_id="A2")], expected,
                        match="name")).value == 1.0
    short = await score("tool_sequence", right[:1], expected)
    assert short.value == 0.0 and "call 2 (refund) is missing" in short.explanation


async def test_no_tool_scores_only_examples_that_expect_words() -> None:
    assert (await score("no_tool", [], "You're welcome", text="Glad to help!")).value == 1.0
    assert (await score("no_tool", [call("escalate")], "You're welcome", text="")).value == 0.0
    assert (await score("no_tool", [], "You're welcome", text="  ")).value == 0.0
    skipped = await score("no_tool", [call("refund", order_id="A1")], ref("refund", order_id="A1"))
    assert skipped.value is None


async def test_is_valid_openai_tools_call_reads_the_completions_calls_against_the_tasks_tools() -> None:
    assert (await score("openai_tools_call", [call("refund", order_id="A1")], "")).value == 1.0
    unknown = await score("openai_tools_call", [call("cancel", order_id="A1")], "")
    assert unknown.value == 0.0 and "not one of the tools" in unknown.explanation
    broken = await score("openai_tools_call", [call("refund", amount=3)], "")
    assert broken.value == 0.0 and "order_id" in broken.explanation
    assert (await score("openai_tools_call", [], "", text="Sure, refunded.")).value == 0.0


def test_match_must_be_known() -> None:
    with pytest.raises(EvalsError, match="match must be one of exact, name"):
        metrics.create("tool_sequence", match="fuzzy")
