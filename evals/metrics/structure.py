"""Structure metrics: is the answer JSON, does it follow a schema, which of its fields match the reference.

Also the JSON helpers every metric family uses: a metric's optional `field` argument means "parse the
answer as JSON and compare that field (a dotted path for nesting) with the same field of the reference".
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evals.metrics import Metric, register_metric
from evals.types import Score, ScoreContext

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n(.*?)\n?```$", re.DOTALL)
MAX_SCHEMA_ERRORS = 10


class NotJSON(ValueError):
    pass


class NoAnswer(ValueError):
    """The answer is not JSON, or lacks the field a metric looks at."""


def parse_json_answer(text: str) -> Any:
    """The answer as JSON: the whole text, or the inside of one ``` fence around it. Raises NotJSON."""
    text = text.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise NotJSON(f"not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None


def as_json(value: Any) -> Any:
    """A reference or answer value as a Python object (JSON strings are parsed)."""
    return parse_json_answer(value) if isinstance(value, str) else value


def field_value(obj: Any, path: str | None) -> Any:
    """`obj[a][b]` for path "a.b"; KeyError when missing."""
    for part in path.split(".") if path else []:
        if not isinstance(obj, dict) or part not in obj:
            raise KeyError(part)
        obj = obj[part]
    return obj


def answer_value(ctx: ScoreContext, field: str | None) -> Any:
    """The answer text, or the value at JSON `field` of the answer. Raises NoAnswer."""
    if field is None:
        return ctx.completion.text
    try:
        return field_value(parse_json_answer(ctx.completion.text), field)
    except NotJSON as e:
        raise NoAnswer(str(e)) from None
    except KeyError as e:
        raise NoAnswer(f"the answer has no field '{field}' (missing {e})") from None


def reference_value(ctx: ScoreContext, field: str | None) -> Any:
    """The reference, or the value at JSON `field` of it (a golden-set problem raises, recorded as an error)."""
    reference = ctx.sample.reference
    return reference if field is None else field_value(as_json(reference), field)


def as_text(value: Any) -> str:
    """A value as text: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _validator(schema: str | Mapping[str, Any]) -> Any:
    import jsonschema

    loaded = json.loads(Path(schema).read_text()) if isinstance(schema, str) else dict(schema)
    cls = jsonschema.validators.validator_for(loaded)
    cls.check_schema(loaded)
    return cls(loaded)


def _schema_errors(validator: Any, answer: Any) -> list[str]:
    errors = sorted(validator.iter_errors(answer), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors]


@register_metric("json_valid")
def json_valid(schema: str | dict | None = None) -> Metric:
    """1 if the answer is JSON (a ``` fence around it is fine), and conforms to `schema` if given; else 0.
    `schema` is a JSON Schema file beside task.yaml or a mapping; the first violation is the explanation."""
    validator = _validator(schema) if schema is not None else None

    async def score(ctx: ScoreContext) -> Score:
        try:
            answer = parse_json_answer(ctx.completion.text)
        except NotJSON as e:
            return Score(0.0, explanation=str(e))
        if validator is not None and (errors := _schema_errors(validator, answer)):
            return Score(0.0, explanation=f"schema: {errors[0]}")
        return Score(1.0)

    return score


@register_metric("json_schema")
def json_schema(schema: str | dict) -> Metric:
    """1 if the JSON answer conforms to the JSON Schema `schema` (file or mapping), else 0 listing every violation.
    Violations are in the explanation and in details['errors'] (up to 10)."""
    validator = _validator(schema)

    async def score(ctx: ScoreContext) -> Score:
        try:
            answer = parse_json_answer(ctx.completion.text)
        except NotJSON as e:
            return Score(0.0, explanation=str(e), details={"errors": [str(e)]})
        errors = _schema_errors(validator, answer)
        if not errors:
            return Score(1.0, details={"errors": []})
        shown = errors[:MAX_SCHEMA_ERRORS]
        more = f" (and {len(errors) - len(shown)} more)" if len(errors) > len(shown) else ""
        return Score(0.0, explanation=f"{len(errors)} schema violation(s): " + "; ".join(shown) + more,
                     details={"errors": shown, "n_errors": len(errors)})

    return score


# --- per-field match -------------------------------------------------------------------------


def _leaf_paths(obj: Mapping[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in obj.items():
        path = f"{prefix}{key}"
        paths += _leaf_paths(value, path + ".") if isinstance(value, dict) and value else [path]
    return paths


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().replace(",", ""))
        except ValueError:
            return None
    return None


def values_match(answer: Any, reference: Any, *, tolerance: float = 0.0, ignore_case: bool = True) -> bool:
    """Equal as JSON values: numbers within `tolerance` (numeric strings count as numbers when the reference
    is a number), strings with whitespace collapsed (and case ignored), lists in order, objects key by key."""
    if isinstance(reference, (int, float)) and not isinstance(reference, bool):
        number = _number(answer)
        return number is not None and math.isfinite(number) and abs(number - reference) <= tolerance + 1e-9
    if isinstance(reference, str) and isinstance(answer, str):
        a, r = " ".join(answer.split()), " ".join(reference.split())
        return a.casefold() == r.casefold() if ignore_case else a == r
    if isinstance(reference, list) and isinstance(answer, list):
        return len(answer) == len(reference) and all(
            values_match(a, r, tolerance=tolerance, ignore_case=ignore_case) for a, r in zip(answer, reference))
    if isinstance(reference, dict) and isinstance(answer, dict):
        return answer.keys() == reference.keys() and all(
            values_match(answer[k], reference[k], tolerance=tolerance, ignore_case=ignore_case) for k in reference)
    return answer == reference


def _weights(fields: list[str] | Mapping[str, float] | None) -> dict[str, float] | None:
    if fields is None:
        return None
    if isinstance(fields, Mapping):
        weights = {str(k): float(v) for k, v in fields.items()}
    elif isinstance(fields, (list, tuple)) and all(isinstance(f, str) for f in fields):
        weights = dict.fromkeys(fields, 1.0)
    else:
        raise ValueError("fields must be a list of field names or a mapping of field name to weight")
    if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError("fields needs at least one field and weights >= 0 that add up to more than 0")
    return weights


@register_metric("json_fields")
def json_fields(fields: list[str] | dict[str, float] | None = None, numeric_tolerance: float = 0.0,
                ignore_case: bool = True) -> Metric:
    """Weighted share of fields of the JSON answer that match the JSON reference's.
    `fields`: names (dotted paths for nesting) or {name: weight}; default every leaf field of the reference,
    weight 1. Numbers match within `numeric_tolerance`; a field missing from the answer matches only a null
    reference. Per-field results are in details['fields']."""
    weights = _weights(fields)
    if numeric_tolerance < 0:
        raise ValueError("numeric_tolerance must be >= 0")

    async def score(ctx: ScoreContext) -> Score:
        reference = as_json(ctx.sample.reference)
        if not isinstance(reference, dict):
            raise TypeError("json_fields needs a JSON object as the reference")
        chosen = weights or dict.fromkeys(_leaf_paths(reference), 1.0)
        try:
            answer = parse_json_answer(ctx.completion.text)
        except NotJSON as e:
            return Score(0.0, explanation=str(e), details={"fields": dict.fromkeys(chosen, False)})
        if not isinstance(answer, dict):
            return Score(0.0, explanation=f"the answer is a JSON {type(answer).__name__}, not an object",
                         details={"fields": dict.fromkeys(chosen, False)})
        results, mismatches = {}, {}
        for path in chosen:
            gold = field_value(reference, path)
            try:
                pred = field_value(answer, path)
            except KeyError:
                pred = None
            results[path] = values_match(pred, gold, tolerance=numeric_tolerance, ignore_case=ignore_case)
            if not results[path]:
                mismatches[path] = {"answer": pred, "reference": gold}
        total = sum(chosen.values())
        value = sum(w for path, w in chosen.items() if results[path]) / total
        explanation = "mismatched: " + ", ".join(mismatches) if mismatches else ""
        return Score(value, explanation=explanation, details={"fields": results, "mismatches": mismatches})

    return score
