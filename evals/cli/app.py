"""What every command module shares: the typer app (whose group turns a user mistake into one line and
exit 2, for built-in and plugin commands alike), the consoles, the common options and small printers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from evals.errors import EvalsError

if TYPE_CHECKING:
    from evals.report.html import Figure
    from evals.report.sections import Section
    from evals.run.cache import ResponseCache
    from evals.run.calls import RunOptions
    from evals.run.progress import RunProgress
    from evals.run.store import Store

# Off a terminal (CI logs, pipes) tables get room instead of being squeezed to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, soft_wrap=True)


class UserErrors(TyperGroup):
    """Every command (sub-groups and plugins' included): a user mistake is printed as one line, exit 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except EvalsError as e:
            err_console.print(f"[red]error:[/] {e}", markup=True, highlight=False)
            raise typer.Exit(2) from None


def command_group(**kwargs: Any) -> typer.Typer:
    return typer.Typer(cls=UserErrors, no_args_is_help=True, **kwargs)


app = command_group(add_completion=False, pretty_exceptions_enable=False, help="Eval-first quality benchmarking.")

StoreOpt = Annotated[str | None, typer.Option(
    "--store", metavar="PATH|URL",
    help="Run store: a SQLite file, or postgresql://USER@HOST:PORT/DB. Default: $EVALS_STORE, else reports/evals.db")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
ConcurrencyOpt = Annotated[int | None, typer.Option(help="Requests in flight per model.", min=1)]
TimeoutOpt = Annotated[float, typer.Option(help="Seconds per request.", min=0.1)]
RetriesOpt = Annotated[int, typer.Option(help="Retries of a call on 429/5xx/timeouts/connection errors.", min=0)]
RetryForOpt = Annotated[float, typer.Option("--retry-for", metavar="SECONDS", min=0,
                                            help="Stop retrying a call after this long, whatever the count.")]
BudgetOpt = Annotated[float | None, typer.Option(help="Stop before spending more than this (USD).")]
CacheOpt = Annotated[bool, typer.Option("--cache/--no-cache", help="Reuse identical earlier responses.")]
CachePathOpt = Annotated[Path | None, typer.Option("--cache-path", help="Response cache file.")]
ProgressOpt = Annotated[str | None, typer.Option(
    "--progress", envvar="EVALS_PROGRESS", metavar="bar|plain|none",
    help="bar: live bars (default on a terminal); plain: a timestamped line about every 10% or 30 s "
         "(default elsewhere: CI logs, pipes); none: only the result.")]
NoProgressOpt = Annotated[bool, typer.Option("--no-progress", help="The same as --progress none.")]
MarkdownOpt = Annotated[Path | None, typer.Option("--markdown", help="Also write the report as Markdown to FILE.",
                                                  metavar="FILE")]
HtmlOpt = Annotated[Path | None, typer.Option("--html", metavar="FILE",
                                              help="Also write the report as one self-contained HTML file to FILE.")]
ExamplesOpt = Annotated[int, typer.Option(help="Improved/regressed examples to show, each.", min=0)]
BatchOpt = Annotated[bool, typer.Option(
    "--batch", help="Send the API models' calls through their Batch API: half the price, answers within 24 h "
                    "(openai, anthropic; the same as batch: true in task.yaml).")]
WorkersOpt = Annotated[int, typer.Option(
    metavar="N", help="Spread API models' calls over N processes, each with 1/N of the concurrency and budget: for runs "
         "past a few hundred calls a second, which one process cannot drive.", min=1)]
JudgeOpt = Annotated[str | None, typer.Option(
    "--judge", envvar="EVALS_JUDGE", metavar="SPEC",
    help="Model spec for every judge metric of the task (default: each metric's `judge`).")]


def batched(configs: Any) -> list[Any]:
    """These models with batch on where their provider has a Batch API (see evals.run.api.with_batch)."""
    from evals.run.api import with_batch

    return with_batch(configs, warn)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_report(sections: Sequence[Section], title: str, payload: Callable[[], Any], *, as_json: bool,
                 markdown: Path | None, html: Path | None, figures: Callable[[], Sequence[Figure]] = list,
                 note: str = "") -> None:
    """A report: its sections on the terminal (or `payload()` as JSON, built only then), and as Markdown and/or
    one self-contained HTML file (its `figures` drawn only then), each written whole or not at all; then `note`
    and the files written, on stderr."""
    from evals._util import write_atomic

    if markdown is not None:
        from evals.report.markdown import render_markdown

        write_atomic(markdown, render_markdown(sections, title))
    if html is not None:
        from evals.report.html import render_html

        write_atomic(html, render_html(sections, title, figures()))
    if as_json:
        print_json(payload())
    else:
        from evals.report.terminal import sections_renderable

        console.print(sections_renderable(sections))
    if note:
        err_console.print(note, markup=False, highlight=False)
    for written in (markdown, html):
        if written is not None:
            err_console.print(f"wrote {written}", markup=False, highlight=False)


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)


def print_classifications(summaries: Any) -> None:
    """Accuracy, macro-F1 and the confusion matrix of every label metric of these runs."""
    from evals.report.terminal import classification_table

    for s in summaries:
        for metric_id, c in s.classification.items():
            console.print(classification_table(metric_id, c, s.model if len(summaries) > 1 else ""))


def same_command(command: str, fallback: str) -> str:
    """The command line this process was started with, to repeat after a stop (every flag kept), when it is
    `evals COMMAND ...`; else `fallback` (tests, the Python API)."""
    import shlex

    return "evals " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == [command] else fallback


def progress_mode(progress: str | None, no_progress: bool, *, quiet: bool = False) -> str:
    """bar, plain or none, from the flags (`quiet`: JSON output, where progress is off unless asked for)."""
    from evals.run.progress import progress_mode as mode

    return "none" if no_progress else mode(progress, err_console, quiet=quiet)


@contextlib.contextmanager
def running(db: Store, *, mode: str, resume: str = "evals run --resume {run_id}") -> Iterator[RunProgress]:
    """Progress for model runs (bar, plain or none). On SIGINT or SIGTERM (see evals.run.stop): say what
    is stored and how to resume (`resume`: the command that does, for each run when it names `{run_id}`, else
    once for all of them), and exit 130 or 143."""
    import signal

    from evals.run.progress import RunProgress
    from evals.run.stop import STOP

    try:
        with RunProgress(err_console, mode=mode) as bars:
            yield bars
    except (KeyboardInterrupt, asyncio.CancelledError):
        STOP.received = STOP.received or STOP.signal or signal.SIGINT
    except EvalsError:
        if STOP.received is None:
            raise  # a real mistake; otherwise only the consequence of stopping (a run stopped early)
    if STOP.received is None:
        return
    runs = [db.get_run(run_id) for run_id in dict.fromkeys(STOP.runs)]  # this command's runs, no one else's
    for r in runs:
        if r.status == "running":  # cancelled before it could say so itself
            db.set_status(r.id, "interrupted")
    received, STOP.received = STOP.received, None  # handled
    per_run = "{run_id}" in resume
    stored = "; ".join(f"run {r.id}: {r.n_done}/{r.n_attempts} results stored" + (
        f", resume with `{resume.replace('{run_id}', r.id)}`" if per_run else "") for r in runs)
    err_console.print(f"[yellow]interrupted by {signal.Signals(received).name}.[/] " + escape(stored) + (
        "" if per_run else f"; resume with `{escape(resume)}`"), highlight=False)
    raise typer.Exit(128 + received)


def run_async(work: Any) -> Any:
    """Run the model calls of a command, stopping cleanly on SIGINT or SIGTERM (evals.run.api.run_sync)."""
    from evals.run.api import run_sync

    return run_sync(work)


@dataclass(frozen=True)
class CallFlags:
    """The flags every command that calls models shares (see `calls_models`): how calls are made, the response
    cache and progress."""

    concurrency: int | None = None
    timeout: float = 300.0
    retries: int = 16
    retry_for: float = 600.0
    budget: float | None = None
    cache: bool = True
    cache_path: Path | None = None
    progress: str | None = None
    no_progress: bool = False

    def setup(self) -> tuple[RunOptions, ResponseCache | None]:
        """The runner's options and the response cache (None with --no-cache)."""
        from evals.run.cache import ResponseCache
        from evals.run.calls import RunOptions

        options = RunOptions(concurrency=self.concurrency, timeout_s=self.timeout, max_retries=self.retries,
                             budget_usd=self.budget, retry_for_s=self.retry_for)
        return options, ResponseCache(self.cache_path) if self.cache else None

    def mode(self, *, quiet: bool = False) -> str:
        """bar, plain or none (`quiet`: JSON output)."""
        return progress_mode(self.progress, self.no_progress, quiet=quiet)


CALL_FLAGS = {"concurrency": ConcurrencyOpt, "timeout": TimeoutOpt, "retries": RetriesOpt, "retry_for": RetryForOpt,
              "budget": BudgetOpt, "cache": CacheOpt, "cache_path": CachePathOpt, "progress": ProgressOpt,
              "no_progress": NoProgressOpt}
Command = TypeVar("Command", bound=Callable[..., Any])


def calls_models(*, cache: bool = True, budget: bool = True) -> Callable[[Command], Command]:
    """A command that calls models: its `calls: CallFlags` parameter stands, in --help, for the shared flags
    (CALL_FLAGS), and the command is given them as one CallFlags. `cache`: --cache's default; `budget=False` for a
    command with a --budget of its own."""

    def wrap(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)  # typer reads the annotations as objects
        params = list(signature.parameters.values())
        at = [p.name for p in params].index("calls")
        defaults = CallFlags(cache=cache)
        flags = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation,
                                   default=getattr(defaults, name))
                 for name, annotation in CALL_FLAGS.items() if budget or name != "budget"]

        @functools.wraps(command)
        def with_flags(**given: Any) -> Any:
            calls = CallFlags(**{p.name: given.pop(p.name) for p in flags})
            return command(calls=calls, **given)

        with_flags.__signature__ = signature.replace(parameters=[*params[:at], *flags, *params[at + 1:]])
        return with_flags  # type: ignore[return-value]

    return wrap
