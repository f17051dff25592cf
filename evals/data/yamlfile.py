"""YAML loading that remembers where each key sits, so errors can name the file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from evals.errors import EvalsError, read_utf8


MAX_REPEATS = 100_000  # values that aliases (*name) may add to a file, beyond those it writes out


def _expanded(node: yaml.Node, within: int) -> int:
    """How many values `node` stands for with every alias written out (each alias repeats its anchor's node
    object); counting stops past `within`, and an anchor that contains itself counts as endless."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        n, done = stack.pop()
        children = [c for pair in n.value for c in pair] if isinstance(n, yaml.MappingNode) else \
            n.value if isinstance(n, yaml.SequenceNode) else []
        if done:
            open_.discard(id(n))
            sizes[id(n)] = min(within + 1, 1 + sum(sizes[id(c)] for c in children))
        elif id(n) in open_:
            return within + 1  # a recursive alias
        elif id(n) not in sizes:
            open_.add(id(n))
            stack.append((n, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(node)]


def _unique(node: yaml.Node) -> int:
    seen: set[int] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if id(n) not in seen:
            seen.add(id(n))
            stack.extend(c for pair in n.value for c in pair) if isinstance(n, yaml.MappingNode) else \
                stack.extend(n.value) if isinstance(n, yaml.SequenceNode) else None
    return len(seen)


class YamlDoc:
    """A parsed YAML file plus a way to find the line of any key path inside it. Refused in one line: text that
    is not UTF-8, invalid YAML, nesting too deep to parse, and aliases that repeat more than MAX_REPEATS values
    (the "billion laughs": a few lines that stand for gigabytes)."""

    def __init__(self, path: Path):
        self.path = path
        loader = yaml.SafeLoader(read_utf8(path))
        try:
            self._node = loader.get_single_node()
            if self._node is not None:
                self._refuse_repeats(self._node)
            self.data: Any = loader.construct_document(self._node) if self._node is not None else None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            problem = getattr(e, "problem", None) or str(e)
            raise EvalsError(f"invalid YAML: {problem}", file=path, line=mark.line + 1 if mark else None) from None
        except RecursionError:
            raise EvalsError("YAML nested too deeply to read", file=path) from None
        finally:
            loader.dispose()

    def _refuse_repeats(self, root: yaml.Node) -> None:
        within = _unique(root) + MAX_REPEATS
        if _expanded(root, within) <= within:
            return
        parts = root.value if isinstance(root, yaml.MappingNode) else []
        culprit = next(((k, v) for k, v in parts if _expanded(v, _unique(v) + MAX_REPEATS) > _unique(v) + MAX_REPEATS),
                       None)
        message = f"YAML aliases (*name) here repeat more than {MAX_REPEATS:,} values; write them out, or fewer"
        if culprit is None:
            raise EvalsError(message, file=self.path, line=root.start_mark.line + 1)
        raise EvalsError(message, file=self.path, line=culprit[0].start_mark.line + 1, field=str(culprit[0].value))

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

