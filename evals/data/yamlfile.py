"""YAML loading that remembers where each key sits, so errors can name the file and line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from evals.errors import EvalsError, read_utf8


MAX_REPEATS = 100_000  # values that aliases (*name) may add to a file, beyond those it writes out
INT_TAG = "tag:yaml.org,2002:int"


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [c for pair in node.value for c in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _nodes(root: yaml.Node) -> list[yaml.Node]:
    """Every node once, however many aliases name it."""
    seen: dict[int, yaml.Node] = {}
    stack = [root]
    while stack:
        n = stack.pop()
        if id(n) not in seen:
            seen[id(n)] = n
            stack.extend(_children(n))
    return list(seen.values())


def _expanded(node: yaml.Node, within: int) -> int:
    """How many values `node` stands for with every alias written out (each alias repeats its anchor's node
    object); counting stops past `within`, and an anchor that contains itself counts as endless."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        n, done = stack.pop()
        if done:
            open_.discard(id(n))
            sizes[id(n)] = min(within + 1, 1 + sum(sizes[id(c)] for c in _children(n)))
        elif id(n) in open_:
            return within + 1  # a recursive alias
        elif id(n) not in sizes:
            open_.add(id(n))
            stack.append((n, True))
            stack.extend((c, False) for c in _children(n) if id(c) not in sizes)
    return sizes[id(node)]


class YamlDoc:
    """A parsed YAML file plus a way to find the line of any key path inside it. Refused in one line: text that
    is not UTF-8, invalid YAML, nesting too deep to parse, a key written twice in one mapping, an integer of more
    digits than Python reads, and aliases that repeat more than MAX_REPEATS values (the "billion laughs": a few
    lines that stand for gigabytes)."""

    def __init__(self, path: Path):
        self.path = path
        loader = yaml.SafeLoader(read_utf8(path))
        try:
            self._node = loader.get_single_node()
            if self._node is not None:
                self._check(self._node)
            self.data: Any = loader.construct_document(self._node) if self._node is not None else None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            problem = getattr(e, "problem", None) or str(e)
            raise EvalsError(f"invalid YAML: {problem}", file=path, line=mark.line + 1 if mark else None) from None
        except RecursionError:
            raise EvalsError("YAML nested too deeply to read", file=path, line=loader.get_mark().line + 1) from None
        finally:
            loader.dispose()

    def _check(self, root: yaml.Node) -> None:
        nodes = _nodes(root)
        for n in nodes:
            if isinstance(n, yaml.MappingNode):
                first: dict[str, int] = {}
                for key, _ in n.value:
                    if isinstance(key, yaml.ScalarNode) and key.value in first:
                        raise EvalsError(f"key '{key.value}' is written twice in one mapping (first on line "
                                         f"{first[key.value]})"[:300], file=self.path, line=key.start_mark.line + 1)
                    if isinstance(key, yaml.ScalarNode):
                        first[key.value] = key.start_mark.line + 1
            elif n.tag == INT_TAG and len(n.value) > sys.get_int_max_str_digits():
                raise EvalsError(f"a number of {len(n.value):,} digits, more than Python reads "
                                 f"({sys.get_int_max_str_digits():,})", file=self.path, line=n.start_mark.line + 1)
        within = len(nodes) + MAX_REPEATS
        if _expanded(root, within) <= within:
            return
        message = f"YAML aliases (*name) here repeat more than {MAX_REPEATS:,} values; write them out, or fewer"
        for key, value in root.value if isinstance(root, yaml.MappingNode) else []:
            if _expanded(value, len(_nodes(value)) + MAX_REPEATS) > len(_nodes(value)) + MAX_REPEATS:
                raise EvalsError(message, file=self.path, line=key.start_mark.line + 1, field=str(key.value))
        raise EvalsError(message, file=self.path, line=root.start_mark.line + 1)

    def line(self, *keys: str | int) -> int | None:
        """1-based line of the key path (e.g. "models", 2, "spec"); the deepest found part if not all exist."""
        node = self._node
        if node is None:
            return 1  # an empty file
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

