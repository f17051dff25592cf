"""`evals import`: an OpenAI Evals or promptfoo golden set into a task folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evals.cli.app import app, console, err_console


@app.command("import")
def import_cmd(
    format_or_file: Annotated[str, typer.Argument(
        metavar="[FORMAT] FILE", help="openai-evals or promptfoo, then the file; or just the file to detect the format.")],
    file: Annotated[Path | None, typer.Argument(show_default=False, metavar="")] = None,
    name: Annotated[str | None, typer.Option(help="Task name (default: the file name).")] = None,
    out: Annotated[Path | None, typer.Option(help="Task folder to write (default: golden_sets/NAME).")] = None,
    eval_class: Annotated[str, typer.Option(
        help="OpenAI Evals class from the registry YAML: match, includes or fuzzy_match.")] = "match",
    prompt: Annotated[str | None, typer.Option(
        help="promptfoo: the prompt template (text or a file), when the source has none or one evals cannot read.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing task folder.")] = False,
    allow_outside_files: Annotated[bool, typer.Option(
        "--allow-outside-files", help="promptfoo: let the config's file:// references read files outside its folder "
                                      "(refused by default: an imported config is not trusted).")] = False,
    allow_code: Annotated[bool, typer.Option(
        "--allow-code", help="promptfoo: write its python assertions into promptfoo_python.py beside task.yaml, "
        "which then runs them (read it first: it is the config's code).")] = False,
) -> None:
    """Convert an OpenAI Evals JSONL or a promptfoo tests CSV/YAML into a task folder."""
    from evals.data.importers import import_file, write_task_folder
    from evals.data.tasks import tasks_root

    fmt, source = (format_or_file, file) if file is not None else (None, Path(format_or_file))
    task = import_file(source, fmt, name=name, eval_class=eval_class, prompt=prompt,
                       outside_files=allow_outside_files, allow_code=allow_code)
    folder = write_task_folder(task, out or tasks_root() / task.name, force=force)
    metrics = ", ".join(f"{m['id'] if 'id' in m else m['name']} ({m['name']})" for m in task.metrics) or "none"
    checked = [r for r in task.rows if r.get(task.checks_field)] if task.checks_field else []
    checks = (f"; per-example checks on {len(checked)} of them (`{task.checks_field}` in golden.jsonl, "
              f"{sum(len(r[task.checks_field]) for r in checked)} in all)") if checked else ""
    console.print(f"wrote {folder}: {len(task.rows)} examples from {task.source_format}{checks}; task metrics "
                  f"{metrics}; pass {task.pass_rule or ('every check' if checked else {})}", markup=False, highlight=False)
    for note in task.notes:
        err_console.print(f"note: {note}", markup=False, highlight=False)
    for item in task.unsupported:
        err_console.print(f"[yellow]not carried over:[/] {item}", highlight=False)
    err_console.print(f"run it with: evals run {folder}", markup=False, highlight=False)
