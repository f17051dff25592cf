"""MkDocs hook: the reference pages' tables are generated at build time from the code, so they cannot drift from
it. A page asks for one with a line `<!-- generated: NAME -->`; NAME is a key of GENERATED. tests/test_docs.py
builds the site with `mkdocs build --strict` and checks every command, setting and metric is in it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)


def prose(text: Any) -> str:
    """Help text as Markdown: `<` and `>` outside code spans escaped (`golden_sets/<name>` is not a tag), a
    literal ``` kept as code."""
    parts = re.split(r"(```|`[^`]*`)", str(text))
    return "".join("```` ``` ````" if p == "```" else p if p.startswith("`")
                   else p.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for p in parts)


def cell(text: Any) -> str:
    """Text made safe for one Markdown table cell."""
    return prose(" ".join(str(text).split())).replace("|", "\\|")


def table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _commands(group: Any, ctx: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command.hidden:
            continue
        if hasattr(command, "list_commands"):  # a group (typer's own click, not the click package)
            yield from _commands(command, ctx, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}", command


def _option_row(param: Any) -> tuple[str, str, str]:
    if param.param_type_name == "argument":
        return f"`{param.name.upper()}`", "required" if param.required else "optional", \
            getattr(param, "help", None) or ""
    names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
    if param.is_flag and param.secondary_opts:
        default = f"`{param.opts[0] if param.default else param.secondary_opts[0]}`"
    elif param.required:
        default = "required"
    elif param.default in (None, (), [], False) or callable(param.default):
        default = "-"
    else:
        default = f"`{param.default}`"
    return names, default, param.help or ""


def commands() -> str:
    """Every command of the `evals` app (plugins' included), from the same objects `--help` prints."""
    import typer

    from evals.cli import app

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="evals")
    parts = []
    for path, command in _commands(root, ctx, "evals"):
        arguments = [p.name.upper() if p.required else f"[{p.name.upper()}]"
                     for p in command.params if p.param_type_name == "argument"]
        usage = " ".join([path, "[OPTIONS]", *arguments])
        parts.append(f"### `{path.removeprefix('evals ')}`\n\n```\n{usage}\n```\n\n"
                     f"{prose(command.help or '')}\n\n"
                     + table(("argument or option", "default", "what it does"),
                             [_option_row(p) for p in command.params if not getattr(p, "hidden", False)
                              and p.name != "help"]))
    return "\n\n".join(parts)


def task_keys() -> str:
    from evals.data.tasks import DATASET_KEYS, MODEL_KEYS, PROMPT_KEYS, TOP_KEYS

    rows = [(f"`{k}`", v) for k, v in TOP_KEYS.items()]
    for prefix, keys in (("dataset", DATASET_KEYS), ("prompt", PROMPT_KEYS), ("models[]", MODEL_KEYS)):
        rows += [(f"`{prefix}.{k}`", v) for k, v in keys.items()]
    return table(("key", "what it sets"), rows)


def _settings(model_name: str, prefix: str) -> Callable[[], str]:
    def render() -> str:
        import evals.types
        from evals.settings import settings_table

        rows = [(f"`{name}`", default, description)
                for name, default, description in settings_table(getattr(evals.types, model_name), prefix)]
        return table(("setting", "default", "what it sets"), rows)

    return render


def metrics() -> str:
    from evals.metrics import describe_metrics

    rows = []
    for m in describe_metrics():
        args = ", ".join(f"`{a['name']}`" + ("" if a["required"] else f" = `{a['default']!r}`") for a in m["args"])
        rows.append((f"`{m['name']}`", m["description"], args or "-"))
    return table(("metric", "what it measures", "arguments"), rows)


GENERATED: dict[str, Callable[[], str]] = {
    "commands": commands,
    "task-keys": task_keys,
    "decision-settings": _settings("Decision", "decision"),
    "check-settings": _settings("CheckSettings", "check"),
    "metrics": metrics,
}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    def replace(found: re.Match[str]) -> str:
        name = found.group(1)
        if name not in GENERATED:
            raise ValueError(f"{page.file.src_path}: no generated table '{name}' (known: {', '.join(GENERATED)})")
        return GENERATED[name]()

    return MARKER.sub(replace, markdown)
