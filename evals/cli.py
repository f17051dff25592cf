"""The `evals` command line: each command parses, calls the package, prints."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from evals.errors import EvalsError

if TYPE_CHECKING:
    from evals.progress import RunProgress
    from evals.store import Store

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="Eval-first quality benchmarking.")
# Off a terminal (CI logs, pipes) tables get room instead of being squeezed to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

StoreOpt = Annotated[Path | None, typer.Option("--store", help="Run store (SQLite). Default: reports/evals.db")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
ConcurrencyOpt = Annotated[int | None, typer.Option(help="Requests in flight per model.", min=1)]
TimeoutOpt = Annotated[float, typer.Option(help="Seconds per request.", min=0.1)]
RetriesOpt = Annotated[int, typer.Option(help="Retries on 429/5xx/timeouts/connection errors.", min=0)]
BudgetOpt = Annotated[float | None, typer.Option(help="Stop before spending more than this (USD).")]
CacheOpt = Annotated[bool, typer.Option("--cache/--no-cache", help="Reuse identical earlier responses.")]
CachePathOpt = Annotated[Path | None, typer.Option("--cache-path", help="Response cache file.")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress")]
MarkdownOpt = Annotated[Path | None, typer.Option("--markdown", help="Also write the report as Markdown to FILE.",
                                                  metavar="FILE")]
HtmlOpt = Annotated[Path | None, typer.Option("--html", metavar="FILE",
                                              help="Also write the report as one self-contained HTML file to FILE.")]
ExamplesOpt = Annotated[int, typer.Option(help="Improved/regressed examples to show, each.", min=0)]
JudgeOpt = Annotated[str | None, typer.Option(
    "--judge", envvar="EVALS_JUDGE", metavar="SPEC",
    help="Model spec for every judge metric of the task (default: each metric's `judge`).")]


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


def _warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)


def _print_classifications(summaries: Any) -> None:
    """Accuracy, macro-F1 and the confusion matrix of every label metric of these runs."""
    from evals.report.terminal import classification_table

    for s in summaries:
        for metric_id, c in s.classification.items():
            console.print(classification_table(metric_id, c, s.model if len(summaries) > 1 else ""))


@contextlib.contextmanager
def _running(db: Store, *, enabled: bool) -> Iterator[RunProgress]:
    """Progress bars for model runs; on Ctrl-C, say how to resume and exit 130."""
    from evals.progress import RunProgress

    try:
        with RunProgress(err_console, enabled=enabled) as bars:
            yield bars
    except KeyboardInterrupt:
        interrupted = [r.id for r in db.list_runs(limit=5) if r.status in ("interrupted", "running")]
        err_console.print("[yellow]interrupted.[/] Finished examples are stored; resume with "
                          + ", ".join(f"`evals run --resume {i}`" for i in interrupted))
        raise typer.Exit(130) from None


@app.command()
@user_errors
def run(
    task: Annotated[str | None, typer.Argument(help="Task name (golden_sets/<name>) or path.")] = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Model spec; repeat for several.")] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="Finish an interrupted run.")] = None,
    concurrency: ConcurrencyOpt = None,
    timeout: TimeoutOpt = 300.0,
    retries: RetriesOpt = 6,
    budget: BudgetOpt = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N examples.", min=1)] = None,
    cache: CacheOpt = True,
    cache_path: CachePathOpt = None,
    progress: ProgressOpt = True,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    judge: JudgeOpt = None,
) -> None:
    """Run a task's golden set against its models (or --model), score and store every answer."""
    from evals.cache import ResponseCache
    from evals.golden import load_samples
    from evals.runner import DEFAULT_MODEL, RunOptions, open_providers, require_providers, resume_run, run_task
    from evals.store import Store, load_run
    from evals.summary import summarize
    from evals.tasks import load_task

    if (task is None) == (resume is None):
        raise EvalsError("give a task, or --resume RUN_ID (not both)")
    options = RunOptions(concurrency=concurrency, timeout_s=timeout, max_retries=retries, budget_usd=budget)
    db = Store(store)
    response_cache = ResponseCache(cache_path) if cache else None
    with _running(db, enabled=progress and not as_json) as bars:
        if resume is not None:
            db.resolve(resume)
            # a resumed run keeps the judge it started with (recorded in its manifest)
            outcomes = [asyncio.run(resume_run(resume, db, options, cache=response_cache, progress=bars,
                                               warn=_warn))]
        else:
            loaded = load_task(task)
            if judge:
                from evals.metrics import with_judge

                loaded = with_judge(loaded, judge)
            samples = load_samples(loaded)[:limit]  # bad data fails here, before any model loads
            configs = [loaded.model_config(m) for m in model] if model else list(loaded.models)
            ready, skipped = open_providers(configs or [loaded.model_config(DEFAULT_MODEL)])
            for s in skipped:
                err_console.print(f"[yellow]skipped[/] {s.spec}: {s.reason}", highlight=False)
            if not ready and not model:
                err_console.print(f"no model of the task can run here; running the embedded default {DEFAULT_MODEL}")
                ready = require_providers([loaded.model_config(DEFAULT_MODEL)])
            if not ready:
                raise EvalsError("none of the requested models can run here")
            outcomes = asyncio.run(run_task(loaded, samples, ready, db, options, cache=response_cache,
                                            progress=bars, warn=_warn))
    summaries = [summarize(load_run(o.run_id, db)) for o in outcomes]
    if as_json:
        _print_json([s.as_dict() for s in summaries])
    else:
        from evals.report.terminal import summary_table

        console.print(summary_table(summaries))
        _print_classifications(summaries)
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
    if summary.calls_per_hour:
        console.print(f"throughput {summary.calls_per_hour:,.0f} calls/hour ({summary.busy_s:,.1f} s busy) at "
                      f"concurrency {summary.concurrency} on {summary.hardware}", markup=False, highlight=False)
    _print_classifications([summary])
    console.print(examples_table(df, examples))


@app.command("metrics")
@user_errors
def metrics_cmd(as_json: JsonOpt = False) -> None:
    """List every metric (built-in and plugins): what it measures and its arguments with defaults."""
    from evals.metrics import describe_metrics
    from evals.registry import plugin_errors

    described = describe_metrics()
    for entry_point, why in plugin_errors.items():
        _warn(f"plugin {entry_point} failed to load: {why}")
    if as_json:
        _print_json(described)
        return
    from evals.report.terminal import metrics_list_table

    console.print(metrics_list_table(described))
    console.print("Use in task.yaml: metrics: [{name: NAME, id: OPTIONAL_ID, ARGUMENT: VALUE, ...}], or name a "
                  "function in a file beside task.yaml: {name: my_metrics.py:my_metric}", markup=False,
                  highlight=False)


def _report_comparison(cmp: Any, verdict: Any, *, as_json: bool, markdown: Path | None, examples: int,
                       note: str = "", html: Path | None = None) -> None:
    """Print a comparison (tables or JSON) and optionally write it as Markdown and/or HTML."""
    if markdown is not None:
        from evals.report.markdown import write_markdown

        write_markdown(markdown, cmp, verdict, examples)
    if html is not None:
        from evals.report.html import write_html

        write_html(html, cmp, verdict, examples)
    if as_json:
        _print_json({**cmp.as_dict(), "verdict": verdict.as_dict()})
    else:
        from evals.report.sections import comparison_sections
        from evals.report.terminal import sections_renderable

        console.print(sections_renderable(comparison_sections(cmp, verdict, examples)))
    if note:
        err_console.print(note, markup=False, highlight=False)
    for written in (markdown, html):
        if written is not None:
            err_console.print(f"wrote {written}", markup=False, highlight=False)


@app.command()
@user_errors
def compare(
    run_a: Annotated[str, typer.Argument(help="Baseline run id (e.g. the prompted API model).")],
    run_b: Annotated[str, typer.Argument(help="Candidate run id (e.g. the fine-tune).")],
    force: Annotated[bool, typer.Option("--force", help="Compare runs of different golden sets on their shared ids.")] = False,
    examples: ExamplesOpt = 10,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    markdown: MarkdownOpt = None,
    html: HtmlOpt = None,
) -> None:
    """Pair two runs by example: rates with CIs, McNemar, paired CIs, cost, latency, power and a verdict."""
    from evals.decide import compare_stored
    from evals.store import Store

    cmp, verdict, source = compare_stored(run_a, run_b, Store(store), force=force)
    _report_comparison(cmp, verdict, as_json=as_json, markdown=markdown, html=html, examples=examples, note=source)


@app.command()
@user_errors
def power(
    rate: Annotated[float, typer.Option(help="The baseline's match rate, e.g. 0.88.")],
    gap: Annotated[float, typer.Option(help="The gain in match rate to detect, e.g. 0.05.")],
    discordance: Annotated[float | None, typer.Option(
        help="Share of examples where exactly one model matches (from a paired run). "
             "Default: as if the models failed independently (an upper bound on examples needed).")] = None,
    power_: Annotated[float, typer.Option("--power", help="Chance of detecting the gap if it is real.")] = 0.8,
    confidence: Annotated[float, typer.Option(help="1 - two-sided alpha.")] = 0.95,
    as_json: JsonOpt = False,
) -> None:
    """Golden examples needed to detect a gap in match rate between two models (paired, McNemar)."""
    from evals.power import plan_power

    plan = plan_power(rate, gap, discordance, power_, confidence)
    if as_json:
        _print_json(plan.as_dict())
        return
    console.print(f"About {plan.n_pairs:,} paired golden examples detect a {gap * 100:g}-point gap over a "
                  f"{rate:.0%} match rate with {power_:.0%} power at {confidence:.0%} confidence.",
                  markup=False, highlight=False)
    console.print("Assumptions:", markup=False)
    for a in plan.assumptions:
        console.print(f"  - {a}", markup=False, highlight=False)


@app.command("decide")
@user_errors
def decide_cmd(
    task: Annotated[str, typer.Argument(help="Task name (golden_sets/<name>) or path.")],
    baseline: Annotated[str | None, typer.Option(help="Baseline model spec (default: decision.baseline).")] = None,
    candidate: Annotated[str | None, typer.Option(help="Candidate model spec (default: decision.candidate).")] = None,
    concurrency: ConcurrencyOpt = None,
    timeout: TimeoutOpt = 300.0,
    retries: RetriesOpt = 6,
    budget: BudgetOpt = None,
    cache: CacheOpt = True,
    cache_path: CachePathOpt = None,
    progress: ProgressOpt = True,
    examples: ExamplesOpt = 10,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    markdown: MarkdownOpt = None,
    html: HtmlOpt = None,
) -> None:
    """Run the task's baseline and candidate (only what the store lacks), then compare them."""
    from evals.cache import ResponseCache
    from evals.decide import compare_stored, plan_decision, record_decision, run_missing, with_errors
    from evals.runner import RunOptions
    from evals.store import Store

    db = Store(store)
    plan = plan_decision(task, db, baseline, candidate)
    for role, run_id in plan.runs.items():
        err_console.print(f"{role} {plan.configs[role].spec}: reusing stored run {run_id}", markup=False, highlight=False)
    retry = with_errors(plan, db)
    for run_id in retry:
        err_console.print(f"run {run_id} has {db.get_run(run_id).n_errors} provider error(s): retrying those examples "
                          "first", markup=False, highlight=False)
    if plan.missing or retry:
        options = RunOptions(concurrency=concurrency, timeout_s=timeout, max_retries=retries, budget_usd=budget)
        with _running(db, enabled=progress and not as_json) as bars:
            asyncio.run(run_missing(plan, db, options, cache=ResponseCache(cache_path) if cache else None,
                                    progress=bars))
    cmp, verdict, _ = compare_stored(plan.runs["baseline"], plan.runs["candidate"], db, decision=plan.decision)
    record_decision(db, plan.task, plan.runs, verdict)
    _report_comparison(cmp, verdict, as_json=as_json, markdown=markdown, html=html, examples=examples,
                       note=f"decision settings: {plan.task.path}")


@app.command("latency")
@user_errors
def latency_cmd(
    task: Annotated[str, typer.Argument(help="Task name (golden_sets/<name>) or path: its prompts are sent.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model spec to measure (its task.yaml settings apply).")],
    concurrency: Annotated[str, typer.Option(help="Comma-separated requests in flight (local: batch sizes).")] = "1,8,32",
    n: Annotated[int, typer.Option("-n", help="Requests per level (at least the level's concurrency).", min=1)] = 16,
    base_url: Annotated[str | None, typer.Option(help="Server to measure, e.g. a vLLM server's http://host:8000/v1.")] = None,
    hardware: Annotated[str | None, typer.Option(help="What the server runs on (e.g. '1x L4'), recorded with the profile.")] = None,
    timeout: TimeoutOpt = 300.0,
    retries: RetriesOpt = 6,
    progress: ProgressOpt = True,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure a model's time to first token, latency and calls/hour at several concurrencies; `decide` uses it."""
    import dataclasses

    from evals.golden import load_samples
    from evals.latency import measure_latency
    from evals.runner import RunOptions
    from evals.store import Store
    from evals.tasks import load_task

    try:
        levels = sorted({int(c) for c in concurrency.split(",") if c.strip()})
    except ValueError:
        raise EvalsError(f"--concurrency takes numbers separated by commas, e.g. 1,8,32; got '{concurrency}'") from None
    if not levels or levels[0] < 1:
        raise EvalsError(f"--concurrency levels must be 1 or more, got '{concurrency}'")
    loaded = load_task(task)
    try:
        config = loaded.model_config(model)
    except ValueError as e:
        raise EvalsError(str(e)) from None
    if base_url:
        config = dataclasses.replace(config, base_url=base_url)
    samples = load_samples(loaded)
    db = Store(store)
    options = RunOptions(timeout_s=timeout, max_retries=retries)
    with _running(db, enabled=progress and not as_json) as bars:
        profile = asyncio.run(measure_latency(loaded, config, samples, db, levels, n, options, bars, hardware))
    if as_json:
        _print_json(dataclasses.asdict(profile))
        return
    from evals.report.terminal import latency_table

    console.print(latency_table(profile))
    err_console.print(f"stored as latency profile {profile.id}; `evals decide {loaded.name}` uses it for {config.spec}",
                      markup=False, highlight=False)


@app.command("import")
@user_errors
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
) -> None:
    """Convert an OpenAI Evals JSONL or a promptfoo tests CSV/YAML into a task folder."""
    from evals.importers import import_file, write_task_folder
    from evals.tasks import tasks_root

    fmt, source = (format_or_file, file) if file is not None else (None, Path(format_or_file))
    task = import_file(source, fmt, name=name, eval_class=eval_class, prompt=prompt)
    folder = write_task_folder(task, out or tasks_root() / task.name, force=force)
    console.print(f"wrote {folder}: {len(task.rows)} examples from {task.source_format}; metrics "
                  + ", ".join(f"{m['id'] if 'id' in m else m['name']} ({m['name']})" for m in task.metrics)
                  + f"; pass {task.pass_rule}", markup=False, highlight=False)
    for note in task.notes:
        err_console.print(f"note: {note}", markup=False, highlight=False)
    for item in task.unsupported:
        err_console.print(f"[yellow]not carried over:[/] {item}", highlight=False)
    err_console.print(f"run it with: evals run {folder}", markup=False, highlight=False)


# Commands that live in their own modules join this app.
from evals import cli_check  # noqa: E402,F401  (registers `baseline`, `check` and `history`)
from finetune.cli import finetune_cmd  # noqa: E402

app.command("finetune")(user_errors(finetune_cmd))
