"""promptfoo's `python` assertions, run as the user's own code: what `evals import promptfoo --allow-code` writes
beside task.yaml (promptfoo_python.py) calls this module; nothing else does.

A golden line or an imported config never names code, so this is no registered metric: task.yaml's `metrics:`
names the generated file's `assertion` (a metric the user created by passing --allow-code, id `python`), and a
golden line reaches one of its assertions only through that id, `{metric: python, index: N}`: the N-th python
assertion of that example, keyed by the example's id. promptfoo's semantics: the code sees `output` (after the
JavaScript transforms, an object once one parsed it) and `context` with `vars`; an inline value is an expression
(one line) or a function body (several), a `file://` one defines `get_assert(output, context)`; it returns a
bool, a number (passing above 0, or from `threshold` up) or {pass, score, reason} (a dict, a JSON string or an
object with those attributes).
"""

from __future__ import annotations

import json
import math
import re
import types
from collections.abc import Callable, Mapping
from typing import Any

from evals.metrics import Metric
from evals.types import Score, ScoreContext

Assertion = tuple[Callable[[Any, dict[str, Any]], Any], float | None]  # (the code, promptfoo's threshold)


def load_source(name: str, source: str) -> types.ModuleType:
    """A copied `file://` assertion file as a module of its own (its globals apart from the others')."""
    module = types.ModuleType(name)
    exec(compile(source, name, "exec"), module.__dict__)  # noqa: S102 - the user's own code (--allow-code)
    return module


def _camel(key: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key.rstrip("_"))


def grade(result: Any, threshold: float | None) -> tuple[bool, float, str]:
    """promptfoo's verdict on what python code returned: (pass, score, reason)."""
    if isinstance(result, str) and result.strip().lower() in ("true", "false"):
        result = result.strip().lower() == "true"
    if isinstance(result, str) and result.lstrip().startswith("{"):
        result = json.loads(result)
    if isinstance(result, bool):
        return result, float(result), "returned True" if result else "returned False"
    if not isinstance(result, Mapping) and hasattr(result, "__dict__") and not isinstance(result, (int, float, str)):
        result = vars(result)  # a GradingResult-like object (pass_, score, reason)
    if isinstance(result, Mapping):
        fields = {_camel(str(k)): v for k, v in result.items()}
        if not isinstance(fields.get("pass"), bool):
            raise ValueError(f"must return a bool, a number or {{pass, score, reason}}; returned {result!r}")
        ok, score = fields["pass"], fields.get("score", float(fields["pass"]))
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise ValueError(f"returned a score that is not a finite number: {score!r}")
        reason = str(fields.get("reason") or ("passed" if ok else "failed"))
        if threshold is not None and score < threshold:
            ok, reason = False, f"score {score:g} is less than threshold {threshold:g}: {reason}"
        return ok, float(score), reason
    try:
        score = float(result)
    except (TypeError, ValueError):
        raise ValueError(f"must return a bool, a number or {{pass, score, reason}}; returned {result!r}") from None
    ok = score > 0 if threshold is None else score >= threshold
    rule = "above 0" if threshold is None else f"at least {threshold:g}"
    return ok, score, f"returned {score:g}" + ("" if ok else f", not {rule}")


def assertions_metric(table: Mapping[tuple[str, int], Assertion]) -> Callable[..., Metric]:
    """The metric factory of a generated file: `index` picks the example's N-th python assertion (None: all of
    the example's, the share that passed); `transform` is the JavaScript its output goes through first."""

    def assertion(index: int | None = None, transform: list[str] | None = None) -> Metric:
        if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
            raise ValueError(f"index must be a whole number, got {index!r}")

        async def score(ctx: ScoreContext) -> Score:
            keys = [(ctx.sample.id, index)] if index is not None else sorted(k for k in table if k[0] == ctx.sample.id)
            if not keys:
                return Score(None, explanation="no python assertion on this example")
            output: Any = ctx.completion.text
            if transform:
                from evals.metrics.javascript import JSError, evaluate

                try:
                    output = (await evaluate(None, output, dict(ctx.sample.fields), transform))["output"]
                except JSError as e:
                    return Score(0.0, explanation=f"transform {e}", details={"error": f"transform {e}"})
            passed, reasons = 0, []
            for key in keys:
                if key not in table:
                    return Score(None, error=f"no python assertion {key[1]} for example {key[0]} in the generated file")
                code, threshold = table[key]
                try:
                    ok, value, reason = grade(code(output, {"vars": dict(ctx.sample.fields), "prompt": None}),
                                              threshold)
                except Exception as e:  # the code failed: the check fails with why, as promptfoo's does
                    ok, value, reason = False, 0.0, f"Python code execution failed: {type(e).__name__}: {e}"
                passed += ok
                reasons.append(reason)
            share = passed / len(keys)
            reason = "; ".join(reasons)
            return Score(share, explanation="" if share == 1 else reason,
                         details={"reason": reason, **({"score": value} if index is not None else {})})

        return score

    return assertion
