"""Writing a named prompt into task.yaml (`prompts: {NAME: ...}`, as `evals optimize` does) without touching the
rest of the file: every other line, comment and key stays byte for byte as the user wrote it.

The entry is spliced in as text: when `prompts:` exists, the lines of its NAME entry are replaced (or the entry
added after the others); otherwise a `prompts:` block is appended at the end. The result is parsed before it is
written, and written only if it reads as the old file plus that one entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from evals._util import write_atomic
from evals.errors import EvalsError
from evals.types import PromptSpec


class _Literal(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so a prompt reads in task.yaml as it reads to the model."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value and all(line == line.rstrip() for line in value.splitlines()):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Literal.add_representer(str, _text)


def prompt_mapping(prompt: PromptSpec) -> dict[str, Any]:
    """The prompt as task.yaml writes one: system, user, and few_shot (worked examples, or {retrieve: k})."""
    out: dict[str, Any] = {"system": prompt.system, "user": prompt.user}
    if prompt.retrieve:
        out["few_shot"] = {"retrieve": prompt.retrieve}
    elif prompt.few_shot:
        out["few_shot"] = [{"fields": dict(s.fields), "answer": s.answer} for s in prompt.few_shot]
    return out


def _entry(name: str, prompt: PromptSpec, comment: str, indent: int) -> list[str]:
    body = yaml.dump(prompt_mapping(prompt), Dumper=_Literal, sort_keys=False, allow_unicode=True, width=10_000)
    pad = " " * (indent + 2)
    lines = [f"{' ' * indent}{name}:"] + [f"{pad}# {c}" for c in comment.splitlines()]
    return lines + [pad + line if line else line for line in body.splitlines()]


def _span(node: yaml.Node, lines: list[str]) -> int:
    """The line after the last one `node` occupies (its end mark, less the blank and comment lines before it)."""
    end = node.end_mark.line + (1 if node.end_mark.column else 0)
    while end > node.start_mark.line + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1
    return end


def write_prompt(path: Path, name: str, prompt: PromptSpec, comment: str) -> None:
    """Set `prompts.NAME` in the task file at `path` to `prompt`, `comment` above its keys; nothing else changes."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    before = yaml.safe_load(text) or {}
    found = next(((k, v) for k, v in root.value if k.value == "prompts"), None) if root is not None else None
    if found is None:
        new = [*lines, *([""] if lines and lines[-1].strip() else []),
               "# Named prompts: a model runs one with `prompt: NAME` (or `evals run --prompt NAME`).", "prompts:",
               *_entry(name, prompt, comment, 2)]
    else:
        key, value = found
        if not isinstance(value, yaml.MappingNode) or value.flow_style or not value.value:
            raise EvalsError(f"cannot add prompts.{name}: write `prompts:` as a block mapping (one name per line) "
                             "and run again", file=path, line=key.start_mark.line + 1, field="prompts")
        indent = value.value[0][0].start_mark.column
        entries = value.value
        mine = next((i for i, (k, _) in enumerate(entries) if k.value == name), None)
        if mine is None:
            start = end = _span(value, lines)
        else:
            start = entries[mine][0].start_mark.line
            end = entries[mine + 1][0].start_mark.line if mine + 1 < len(entries) else _span(value, lines)
            while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")) \
                    and mine + 1 < len(entries):
                end -= 1  # the next entry's own comments stay with it
        new = [*lines[:start], *_entry(name, prompt, comment, indent), *lines[end:]]
    result = "\n".join(new) + "\n"
    after = yaml.safe_load(result) or {}
    expected = {**before, "prompts": {**(before.get("prompts") or {}), name: prompt_mapping(prompt)}}
    if after != expected:
        raise EvalsError(f"could not add prompts.{name} without changing the rest of the file; add it by hand",
                         file=path, field="prompts")
    write_atomic(path, result)
