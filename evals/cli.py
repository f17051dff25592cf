"""The `evals` command line: each command parses, calls the package, prints."""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from evals.errors import EvalsError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="Eval-first quality benchmarking.")
# Off a terminal (CI logs, pipes) tables get room instead of being squeezed to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

StoreOpt = Annotated[Path | None, typer.Option("--store", help="Run store (SQLite). Default: reports/evals.db")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def user_errors(fn: F) -> F:
    """Print a user mistake as one line and exit 2; no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EvalsError as e:
            err_console.print(f"[red]error:[/] {e}", markup=True, highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@app.command()
@user_errors
def run(
    task: Annotated[str | None, typer.Argument(help="Task name (golden_sets/<name>) or path.")] = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Model spec; repeat for several.")] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="Finish an interrupted run.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Requests in flight per model.", min=1)] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per request.", min=0.1)] = 300.0,
    retries: Annotated[int, typer.Option(help="Retries on 429/5xx/timeouts/connection errors.", min=0)] = 6,
    budget: Annotated[float | None, typer.Option(help="Stop before spending more than this (USD).")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N examples.", min=1)] = None,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Reuse identical earlier responses.")] = True,
    cache_path: Annotated[Path | None, typer.Option("--cache-path", help="Response cache file.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a task's golden set against its models (or --model), score and store every answer."""
    from evals.cache import ResponseCache
    from evals.golden import load_samples
    from evals.progress import RunProgress
    from evals.runner import DEFAULT_MODEL, RunOptions, open_providers, resume_run, run_task
    from evals.store import Store, load_run
    from evals.summary import summarize
    from evals.tasks import load_task

    if (task is None) == (resume is None):
        raise EvalsError("give a task, or --resume RUN_ID (not both)")
    options = RunOptions(concurrency=concurrency, timeout_s=timeout, max_retries=retries, budget_usd=budget)
    db = Store(store)
    response_cache = ResponseCache(cache_path) if cache else None
    show_progress = progress and not as_json
    run_ids: list[str] = []
    try:
        with RunProgress(err_console, enabled=show_progress) as bars:
            if resume is not None:
                run_ids.append(db.resolve(resume))
                outcomes = [asyncio.run(resume_run(resume, db, options, cache=response_cache, progress=bars))]
            else:
                loaded = load_task(task)
                samples = load_samples(loaded)[:limit]  # bad data fails here, before any model loads
                configs = [loaded.model_config(m) for m in model] if model else list(loaded.models)
                ready, skipped = open_providers(configs or [loaded.model_config(DEFAULT_MODEL)])
                for s in skipped:
                    err_console.print(f"[yellow]skipped[/] {s.spec}: {s.reason}", highlight=False)
                if not ready and not model:
                    err_console.print(f"no model of the task can run here; running the embedded default {DEFAULT_MODEL}")
                    ready, skipped = open_providers([loaded.model_config(DEFAULT_MODEL)])
                    for s in skipped:
                        raise EvalsError(f"{s.spec}: {s.reason}")
                if not ready:
                    raise EvalsError("none of the requested models can run here")
                outcomes = asyncio.run(run_task(loaded, samples, ready, db, options, cache=response_cache, progress=bars))
    except KeyboardInterrupt:
        runs = db.list_runs(limit=len(run_ids) or 5)
        interrupted = [r.id for r in runs if r.status in ("interrupted", "running")]
        err_console.print("[yellow]interrupted.[/] Finished examples are stored; resume with "
                          + ", ".join(f"`evals run --resume {i}`" for i in interrupted))
        raise typer.Exit(130) from None
    summaries = [summarize(load_run(o.run_id, db)) for o in outcomes]
    if as_json:
        _print_json([s.as_dict() for s in summaries])
    else:
        from evals.report.terminal import summary_table

        console.print(summary_table(summaries))
    for o in outcomes:
        if o.status == "budget-stopped":
            err_console.print(f"[yellow]budget reached[/]: run {o.run_id} stopped early; "
                              f"continue with `evals run --resume {o.run_id} --budget <more>`")


@app.command()
@user_errors
def runs(
    task: Annotated[str | None, typer.Option(help="Only runs of this task.")] = None,
    limit: Annotated[int, typer.Option(help="Most recent N runs.")] = 20,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List stored runs, newest first."""
    from dataclasses import asdict

    from evals.report.terminal import runs_table
    from evals.store import Store

    records = Store(store).list_runs(task, limit)
    if as_json:
        _print_json([{k: v for k, v in asdict(r).items() if k != "manifest"} for r in records])
    else:
        console.print(runs_table(records))


@app.command()
@user_errors
def show(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    examples: Annotated[int, typer.Option(help="Examples to list, failures first.")] = 10,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one run: summary, manifest and examples."""
    from evals.report.terminal import examples_table, summary_table
    from evals.store import load_run
    from evals.summary import summarize

    df = load_run(run_id, store)
    summary = summarize(df)
    if as_json:
        _print_json({"summary": summary.as_dict(), "manifest": df.attrs["manifest"],
                     "examples": df.drop(columns=["scores"]).to_dict(orient="records")})
        return
    m = df.attrs["manifest"]
    console.print(summary_table([summary], title=f"run {summary.run_id} - task {m['task']['name']}"))
    console.print(f"golden {m['golden']['hash'][:12]} ({m['golden']['n']} examples), task {m['task']['hash'][:12]}, "
                  f"params {m['params']}, git {(m['git'].get('commit') or '-')[:10]}", highlight=False)
    console.print(examples_table(df, examples))
