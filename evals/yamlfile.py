"""YAML loading that remembers where each key sits, so errors can name the file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from evals.errors import EvalsError


class YamlDoc:
    """A parsed YAML file plus a way to find the line of any key path inside it."""

    def __init__(self, path: Path):
        self.path = path
        text = path.read_text(encoding="utf-8")
        try:
            self._node = yaml.compose(text, Loader=yaml.SafeLoader)
            self.data: Any = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            problem = getattr(e, "problem", None) or str(e)
            raise EvalsError(f"invalid YAML: {problem}", file=path, line=mark.line + 1 if mark else None)

    def line(self, *keys: str | int) -> int | None:
        """1-based line of the key path (e.g. "models", 2, "spec"); the deepest found part if not all exist."""
        node = self._node
        if node is None:
            return None
        line = node.start_mark.line + 1
        for key in keys:
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if k.value == key:
                        line, node = k.start_mark.line + 1, v
                        break
                else:
                    return line
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
                line = node.start_mark.line + 1
            else:
                return line
        return line

    def error(self, message: str, *keys: str | int) -> EvalsError:
        field = ".".join(str(k) for k in keys) if keys else None
        return EvalsError(message, file=self.path, line=self.line(*keys), field=field)


def validated(model: Any, raw: Any, *where: str | int, doc: YamlDoc | None = None) -> Any:
    """`raw` validated by a pydantic model; the first problem raises EvalsError naming the field path under
    `where` (and, given the YamlDoc, its file and line). Unknown keys get a "did you mean"."""
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
    from evals._util import suggest

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
