"""What the viewer's pages show, shaped from stored data: the prompt an example was sent, output pretty-printed
when it is JSON, two answers' differences (word by word; line by line when long), and the numbers of `evals show`
and `evals compare` (computed by the same code, memoised per run state so a second view is instant)."""

from __future__ import annotations

import difflib
import json
import re
import threading
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
    from evals.data.tools import parse_history
    from evals.run.manifest import config_from_dict
    from evals.types import MAX_PROMPT_CHARS, FewShot, PromptSpec

    p = manifest.get("prompt") or {}
    try:
        spec = PromptSpec(str(p.get("system") or ""), str(p["user"]),
                          tuple(FewShot(dict(s["fields"]), str(s["answer"])) for s in p.get("few_shot") or ()),
                          max_chars=MAX_PROMPT_CHARS)  # a stored run is untrusted: never rebuilt past the default cap
        try:
            config = config_from_dict(manifest["model"])
        except (KeyError, TypeError, ValueError):
            config = None  # the manifest's system prompt is already the model's
        retrieved = (f"the {p['retrieve'].get('k')} training examples retrieved for this example are not shown (the "
                     "manifest keeps the pool's hash, not the pool)") if isinstance(p.get("retrieve"), dict) else ""
        field = str((manifest.get("task") or {}).get("messages_field") or "messages")
        history = ()
        if isinstance(fields, dict) and fields.get(field) is not None:  # the example's own chat history
            history = parse_history(fields[field], None, file="", line=0, field=field, last_answered=False)
        return render_messages(spec, fields or {}, config, history), retrieved
    except (KeyError, TypeError) as e:
        return [], f"the run's manifest holds no complete prompt ({e})"
    except EvalsError as e:
        return [], f"the prompt cannot be rebuilt: {e}"


@dataclass(frozen=True)
class Piece:
    text: str
    changed: bool


# A word diff's time grows with the product of the two sizes (SequenceMatcher): 12 ms for two different
# 1,000-word answers, 0.13 s for 1,000 repeats of one word. Past these, the answers are compared line by line
# (popular lines junked, so the time stays bounded), and past LINE_DIFF_MAX not at all.
WORD_DIFF_MAX = 1_000  # words on each side
LINE_DIFF_MAX = 2_000  # lines on each side
WORDS = re.compile(r"\s*\S+\s*|\s+")  # each word with the space after it (spaces alone would all match each other)
LINES = re.compile(r"[^\n]*\n|[^\n]+")


@dataclass(frozen=True)
class Diff:
    """Two texts cut into pieces, those that differ from the other side marked; `by` says how: "word", "line",
    or "" (too long to compare: shown whole, nothing marked)."""

    a: list[Piece]
    b: list[Piece]
    by: str


def diff_pieces(a: str | None, b: str | None) -> Diff:
    """The differences between two answers: word by word up to WORD_DIFF_MAX words a side, then line by line up
    to LINE_DIFF_MAX lines, then none."""
    a, b = a or "", b or ""
    for by, pattern, most in (("word", WORDS, WORD_DIFF_MAX), ("line", LINES, LINE_DIFF_MAX)):
        ta, tb = pattern.findall(a), pattern.findall(b)
        if len(ta) <= most and len(tb) <= most:
            left: list[Piece] = []
            right: list[Piece] = []
            matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=by == "line")
            for op, i1, i2, j1, j2 in matcher.get_opcodes():
                if i2 > i1:
                    left.append(Piece("".join(ta[i1:i2]), op != "equal"))
                if j2 > j1:
                    right.append(Piece("".join(tb[j1:j2]), op != "equal"))
            return Diff(left, right, by)
    return Diff([Piece(a, False)], [Piece(b, False)], "")


class Memo:
    """The last results of costly computations (summaries, comparisons, diffs), keyed by what they depend on;
    safe to share between the threads that build pages (two asking at once may both compute)."""

    def __init__(self, size: int = 64):
        self.size = size
        self._items: dict[Hashable, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                value = self._items[key] = self._items.pop(key)  # now the most recent
                return value
        value = compute()
        with self._lock:
            self._items.pop(key, None)
            while len(self._items) >= self.size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = value
        return value
