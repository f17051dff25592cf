"""What the viewer's pages show, shaped from stored data: the prompt an example was sent, output pretty-printed
when it is JSON, two answers' differences word by word, and the numbers of `evals show` and `evals compare`
(computed by the same code, memoised per run state so a second view is instant)."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from evals.errors import EvalsError
from evals.types import Message

TOKENS = re.compile(r"\s+|[^\s]+")


def pretty(value: Any) -> tuple[str, bool]:
    """A stored output as shown: (text, whether it parsed as JSON and was indented)."""
    if value is None:
        return "", False
    if not isinstance(value, str):
        return json.dumps(value, indent=2, ensure_ascii=False, default=str), True
    try:
        parsed = json.loads(value)
    except ValueError:
        return value, False
    if isinstance(parsed, (dict, list)):
        return json.dumps(parsed, indent=2, ensure_ascii=False), True
    return value, False


def prompt_messages(manifest: dict[str, Any], fields: dict[str, Any]) -> tuple[list[Message], str]:
    """The chat the model was sent for these fields, rebuilt from the run's manifest; or why it cannot be."""
    from evals.data.prompts import render_messages
    from evals.run.manifest import config_from_dict
    from evals.types import MAX_PROMPT_CHARS, FewShot, PromptSpec

    p = manifest.get("prompt") or {}
    try:
        spec = PromptSpec(str(p.get("system") or ""), str(p["user"]),
                          tuple(FewShot(dict(s["fields"]), str(s["answer"])) for s in p.get("few_shot") or ()),
                          MAX_PROMPT_CHARS)  # a stored run is untrusted: never rebuilt past the default cap
        try:
            config = config_from_dict(manifest["model"])
        except (KeyError, TypeError, ValueError):
            config = None  # the manifest's system prompt is already the model's
        return render_messages(spec, fields or {}, config), ""
    except (KeyError, TypeError) as e:
        return [], f"the run's manifest holds no complete prompt ({e})"
    except EvalsError as e:
        return [], f"the prompt cannot be rebuilt: {e}"


@dataclass(frozen=True)
class Piece:
    text: str
    changed: bool


def diff_pieces(a: str | None, b: str | None) -> tuple[list[Piece], list[Piece]]:
    """Both texts cut into pieces, those that differ from the other side marked (word by word)."""
    ta, tb = TOKENS.findall(a or ""), TOKENS.findall(b or "")
    left: list[Piece] = []
    right: list[Piece] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
        if i2 > i1:
            left.append(Piece("".join(ta[i1:i2]), op != "equal"))
        if j2 > j1:
            right.append(Piece("".join(tb[j1:j2]), op != "equal"))
    return left, right


class Memo:
    """The last results of costly computations (summaries, comparisons), keyed by what they depend on."""

    def __init__(self, size: int = 64):
        self.size = size
        self._items: dict[Hashable, Any] = {}

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        if key in self._items:
            value = self._items.pop(key)
        else:
            value = compute()
            if len(self._items) >= self.size:
                self._items.pop(next(iter(self._items)))
        self._items[key] = value
        return value
