"""Golden sets from other eval tools -> an evals task folder (golden.jsonl, task.yaml, README.md).

Each importer reads its tool's format into an `ImportedTask`; `write_task_folder` writes it. What a
source expresses that evals cannot (an assertion type with no matching metric, per-test differences
that a task-wide metric cannot hold) is never dropped silently: it is listed in `unsupported`, printed
by the CLI and written into the README.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from evals.errors import EvalsError

FORMATS = ("openai-evals", "promptfoo")
DEFAULT_MODELS = [{"spec": "openai:gpt-4o-mini", "max_tokens": 512},
                  {"spec": "anthropic:claude-haiku-4-5", "max_tokens": 512},
                  {"spec": "local:smollm2", "max_tokens": 256}]
_ESCAPED = re.compile(r"\{(?=[{%#\r])|\r")  # a `{` before another tag character or a CR is escaped too
_ESCAPES = {"{": "{{ '{' }}", "\r": "{{ '\\r' }}"}


@dataclass
class ImportedTask:
    """A task read from another tool, ready to be written as a task folder."""

    name: str
    source: Path
    source_format: str  # e.g. "OpenAI Evals JSONL (evals.elsuite.basic.match:Match)"
    rows: list[dict[str, Any]]  # golden.jsonl lines: id, the prompt's fields, reference
    fields: list[str]  # fields every row has, checked by the loader
    user: str  # Jinja template of the last user message
    system: str = ""
    few_shot: list[dict[str, Any]] = field(default_factory=list)  # task.yaml few_shot entries
    metrics: list[dict[str, Any]] = field(default_factory=list)  # task.yaml metric entries
    pass_rule: dict[str, float] = field(default_factory=dict)
    checks_field: str | None = None  # the golden-line field of per-example checks, if any row has some
    notes: list[str] = field(default_factory=list)  # how the source was mapped, approximations
    unsupported: list[str] = field(default_factory=list)  # what could not be carried over, and why
    description: str = ""
    files: dict[str, str] = field(default_factory=dict)  # more files beside task.yaml: name -> text (code: --allow-code)
    tools: list[dict[str, Any]] = field(default_factory=list)  # task.yaml `tools:`: the functions models are offered


def slug(text: str) -> str:
    """A task name from a file name: lowercase words joined by dashes."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "imported"


def literal(text: str) -> str:
    """Text from the source as a Jinja template that renders to exactly that text, whatever it holds: each `{`
    that would open a tag (`{{`, `{%`, `{#`, in any spelling) is written as the expression `{{ '{' }}`, so the
    text never opens a tag of its own, and a carriage return (which Jinja reads as a newline) as `{{ '\\r' }}`."""
    return _ESCAPED.sub(lambda m: _ESCAPES[m.group()], text)


def example_ids(name: str, n: int) -> list[str]:
    width = max(3, len(str(n)))
    return [f"{name}-{i:0{width}d}" for i in range(1, n + 1)]


def detect_format(path: Path) -> str:
    """openai-evals for JSONL whose first record has `input`; promptfoo for CSV and YAML."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".yaml", ".yml"):
        return "promptfoo"
    if suffix in (".jsonl", ".json"):
        with path.open(encoding="utf-8") as f:
            first = next((line for line in f if line.strip()), "")
        try:
            record = json.loads(first)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict) and "input" in record:
            return "openai-evals"
    raise EvalsError(f"cannot tell the format; name it: evals import {{{','.join(FORMATS)}}} {path}", file=path)


def import_file(path: Path, fmt: str | None = None, *, name: str | None = None, eval_class: str = "match",
                prompt: str | None = None, outside_files: bool = False, allow_code: bool = False) -> ImportedTask:
    """Read a golden set in another tool's format. `fmt` None: detect it from the file. `outside_files`: a
    promptfoo config's `file://` references may leave its folder. `allow_code`: the source's code (promptfoo's
    python assertions) is written beside task.yaml, and task.yaml runs it."""
    if not path.is_file():
        raise EvalsError("no such file", file=path)
    fmt = fmt or detect_format(path)
    task_name = slug(name or path.stem)
    if fmt == "openai-evals":
        if prompt is not None:
            raise EvalsError("--prompt is for promptfoo files; OpenAI Evals samples carry their own messages")
        from evals.data.importers.openai_evals import read_openai_evals

        return read_openai_evals(path, task_name, eval_class)
    if fmt == "promptfoo":
        from evals.data.importers.promptfoo import read_promptfoo

        return read_promptfoo(path, task_name, prompt, outside_files=outside_files, allow_code=allow_code)
    raise EvalsError(f"unknown import format '{fmt}'; use one of: {', '.join(FORMATS)}")


# --- Writing ------------------------------------------------------------------------------------------
class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks so prompts stay readable in task.yaml."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value and not any(line != line.rstrip() for line in value.splitlines()):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_BlockDumper.add_representer(str, _str_representer)


def task_yaml(task: ImportedTask) -> str:
    prompt: dict[str, Any] = {}
    if task.system:
        prompt["system"] = task.system
    prompt["user"] = task.user
    if task.few_shot:
        prompt["few_shot"] = task.few_shot
    doc = {
        "name": task.name,
        "description": task.description or f"Imported from {task.source.name} ({task.source_format}).",
        "dataset": {"golden": "golden.jsonl", "id": "id", "reference": "reference", "fields": task.fields,
                    **({"checks": task.checks_field} if task.checks_field else {})},
        "prompt": prompt,
        **({"tools": task.tools} if task.tools else {}),
        "models": DEFAULT_MODELS,
        "metrics": task.metrics,
        "pass": task.pass_rule,
    }
    header = (f"# Imported by `evals import` from {task.source.name} ({task.source_format}).\n"
              "# See README.md for how the source was mapped and what could not be carried over.\n")
    return header + yaml.dump(doc, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100)


def readme(task: ImportedTask) -> str:
    lines = [f"# {task.name}", "",
             f"Imported with `evals import` from `{task.source.name}` ({task.source_format}).",
             f"{len(task.rows)} examples; the prompt, metrics and pass rule are in [task.yaml](task.yaml).", "",
             "## How the source was mapped", ""]
    lines += [f"- {n}" for n in task.notes] or ["- Nothing needed adapting."]
    lines += ["", "## Not carried over", ""]
    lines += [f"- {u}" for u in task.unsupported] or ["- Nothing: every assertion of the source has a metric here."]
    lines += ["", "## Provenance", "",
              "The examples are the source's, unchanged apart from the mapping above. Check the source's "
              "licence before sharing this folder. Ids were assigned in file order.", ""]
    return "\n".join(lines)


def write_task_folder(task: ImportedTask, out: Path, *, force: bool = False) -> Path:
    """Write golden.jsonl, task.yaml, README.md (and the task's `files`) into `out`, all or nothing."""
    if out.exists() and any(out.iterdir()) and not force:
        raise EvalsError(f"{out} already exists and is not empty; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        with (staging / "golden.jsonl").open("w", encoding="utf-8", newline="\n") as f:
            for row in task.rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        (staging / "task.yaml").write_text(task_yaml(task), encoding="utf-8")
        (staging / "README.md").write_text(readme(task), encoding="utf-8")
        for file_name, text in task.files.items():
            (staging / file_name).write_text(text, encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
