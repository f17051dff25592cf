"""The declarative config layer's plumbing: a pydantic model's first error as EvalsError with file, line and
field (and a "did you mean" for unknown keys), and settings tables generated from field descriptions (the
docs site's tables of `decision:` and `check:` settings come from here, through docs/hooks.py). The models
themselves are in evals.types."""

from __future__ import annotations

import json
from typing import Any

from evals._util import suggest
from evals.errors import EvalsError
from evals.types import Decision, Managed, SelfHosted


def settings_table(model: Any = Decision, prefix: str = "decision") -> list[tuple[str, str, str]]:
    """(field, default, description) for every setting, nested blocks included: the docs' settings tables' rows."""
    rows = []
    for name, f in model.model_fields.items():
        nested = {"self_hosted": SelfHosted, "managed": Managed}.get(name)
        default = "required" if f.is_required() else json.dumps(f.default) if f.default not in (None, ()) else "-"
        rows.append((f"{prefix}.{name}", "" if nested else default, f.description or ""))
        if nested:
            rows += settings_table(nested, f"{prefix}.{name}")
    return rows


def validated(model: Any, raw: Any, *where: str | int, doc: Any = None) -> Any:
    """`raw` validated by a pydantic model; the first problem raises EvalsError naming the field path under
    `where` (and, given a YamlDoc, its file and line). Unknown keys get a "did you mean"."""
    from pydantic import ValidationError

    try:
        return model.model_validate(dict(raw or {}) if isinstance(raw, dict) or raw is None else raw)
    except ValidationError as e:
        problem = e.errors(include_url=False)[0]
        loc = [*where, *problem["loc"]]
        message = _describe(model, problem)
        if doc is not None:
            raise doc.error(message, *loc) from None
        raise EvalsError(message, field=".".join(str(k) for k in loc)) from None


def _describe(model: Any, problem: dict[str, Any]) -> str:
    kind, value = problem["type"], problem.get("input")
    if kind == "extra_forbidden":
        owner = model
        for key in problem["loc"][:-1]:  # the nested model that refused the key
            annotation = owner.model_fields[key].annotation
            owner = next((a for a in getattr(annotation, "__args__", (annotation,)) if hasattr(a, "model_fields")),
                         owner)
        allowed = sorted(owner.model_fields)
        key = str(problem["loc"][-1])
        return f"unknown key '{key}'{suggest(key, allowed)} Allowed: {', '.join(allowed)}"
    if kind == "model_type":
        return "expected a mapping"
    if kind == "missing":
        return "required"
    message = problem["msg"].removeprefix("Value error, ")
    if kind == "value_error":
        return message
    return f"{message[0].lower()}{message[1:]}, got {value!r}"
