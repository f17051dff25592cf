"""Structure metrics: is the answer valid JSON, does it follow a schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from evals.metrics import Metric, register_metric
from evals.types import Score, ScoreContext

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n(.*?)\n?```$", re.DOTALL)


class NotJSON(ValueError):
    pass


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


@register_metric("json_valid")
def json_valid(schema: str | dict | None = None) -> Metric:
    """1 if the answer is JSON (optionally a ``` fence around it) and conforms to `schema` (a JSON Schema
    file or mapping), else 0 with the reason."""
    validator = None
    if schema is not None:
        import jsonschema

        loaded = json.loads(Path(schema).read_text()) if isinstance(schema, str) else schema
        cls = jsonschema.validators.validator_for(loaded)
        cls.check_schema(loaded)
        validator = cls(loaded)

    async def score(ctx: ScoreContext) -> Score:
        try:
            answer = parse_json_answer(ctx.completion.text)
        except NotJSON as e:
            return Score(0.0, explanation=str(e))
        if validator is not None:
            problem = next(iter(sorted(validator.iter_errors(answer), key=lambda e: list(e.path))), None)
            if problem is not None:
                where = "/".join(str(p) for p in problem.absolute_path) or "(root)"
                return Score(0.0, explanation=f"schema: {where}: {problem.message}")
        return Score(1.0)

    return score
