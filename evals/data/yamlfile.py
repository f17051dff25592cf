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

