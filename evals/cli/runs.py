"""`evals run`, `runs`, `show` and `metrics`: run a task's models and look at what the store holds."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer
from rich.markup import escape

from evals.cli.app import (
    BatchOpt,
    CallFlags,
    JsonOpt,
    JudgeOpt,
    StoreOpt,
    WorkersOpt,
    app,
    calls_models,
    console,
    err_console,
    print_classifications,
    print_json,
    run_async,
    running,
    warn,
)
from evals.errors import EvalsError
from evals.types import MAX_REPEATS


@app.command()
@calls_models(cache=True)
def run(
    task: Annotated[str | None, typer.Argument(help="Task name (golden_sets/<name>) or path.")] = None,
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Model spec; repeat for several.")] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="Finish an interrupted run.")] = None,
    calls: CallFlags = CallFlags(),
    limit: Annotated[int | None, typer.Option(help="Only the first N examples.", min=1)] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    judge: JudgeOpt = None,
    repeats: Annotated[int | None, typer.Option(
        help="Ask every example K times (default: the task's `repeats`); statistics then take the example as "
             "the unit.", min=1, max=MAX_REPEATS)] = None,
    batch: BatchOpt = False,
    workers: WorkersOpt = 1,
    prompt: Annotated[str | None, typer.Option(
        "--prompt", metavar="NAME", help="Run with the task's named prompt NAME (`prompts:` in task.yaml; "
                                         "`evals optimize` writes `optimized`).")] = None,
    shard: Annotated[str | None, typer.Option(
        "--shard", metavar="I/N", help="This machine's share of one run split over N machines writing to one store "
                                       "(with --run-group): every N-th example from the I-th.")] = None,
    run_group: Annotated[str | None, typer.Option(
        "--run-group", metavar="NAME", help="The name the N shards of one run share (a CI run's id, say).")] = None,
) -> None:
    """Run a task's golden set against its models (or --model), score and store every answer."""
    from evals.data.tasks import load_task
    from evals.run.store import Store

    if (task is None) == (resume is None):
        raise EvalsError("give a task, or --resume RUN_ID (not both)")
    if resume is not None and repeats is not None:
        raise EvalsError("a resumed run keeps the repeats it started with; leave out --repeats", field="--repeats")
    if batch and resume:
        raise EvalsError("--resume continues a run as it started (batched or not); drop --batch")
    if prompt and resume:
        raise EvalsError("--resume continues a run with the prompt it started with; drop --prompt")
    sharded = check_shard(shard, run_group, resume=resume, workers=workers, batch=batch)
    loaded = load_task(task) if task is not None else None  # a mistake in it is reported before anything loads
    from evals.run.resume import resume_job, resume_run

    options, response_cache = calls.setup()
    options = dataclasses.replace(options, repeats=repeats)
    db = Store(store)
    mode = calls.mode(quiet=as_json)
    if sharded:
        from evals.run.shards import run_shard

        loaded, samples, ready = models_to_run(loaded, model, judge, limit, batch, prompt)
        with running(db, mode=mode) as bars:
            outcomes = run_async(run_shard(loaded, samples, ready, db, options, group=str(run_group), shard=sharded,
                                           cache=response_cache, progress=bars, warn=warn, note=bars.note))
    elif loaded is not None:
        from evals.run.api import execute

        loaded, samples, ready = models_to_run(loaded, model, judge, limit, batch, prompt)
        outcomes = execute(loaded, samples, ready, db, options, cache=response_cache, workers=workers,
                           progress=lambda: running(db, mode=mode), warn=warn)
    elif workers > 1:
        from evals.run.workers import check_workers, start_workers

        # a resumed run keeps the judge it started with (recorded in its manifest)
        loaded, samples, job = resume_job(db.resolve(resume), db)
        check_workers(workers, loaded, samples, [(job.config, job.provider)], options, batch=batch)
        pool = start_workers(loaded, samples, [job], db, options, response_cache, workers)
        with running(db, mode=mode) as bars:
            outcomes = pool.wait(bars, warn)
    else:
        with running(db, mode=mode) as bars:
            outcomes = [run_async(resume_run(db.resolve(resume), db, options, cache=response_cache,
                                             progress=bars, warn=warn))]
    from evals.analyse.summary import summarize_stored

    summaries = [summarize_stored(o.run_id, db) for o in outcomes]
    if as_json:
        print_json([s.as_dict() for s in summaries])
    else:
        from evals.report.terminal import cost_notes, summary_table

        console.print(summary_table(summaries))
        for note in cost_notes(summaries):
            console.print(note, markup=False, highlight=False, soft_wrap=True)
        print_classifications(summaries)
    for o in outcomes:
        if o.status == "budget-stopped":
            err_console.print("[yellow]budget reached[/]: " + escape(o.budget_note()), highlight=False)


def check_shard(shard: str | None, group: str | None, *, resume: str | None, workers: int,
                batch: bool) -> tuple[int, int] | None:
    """--shard I/N with --run-group, as (I, N); None for a run of one machine. Refused: one without the other,
    or with --resume (which finishes the whole run), --workers or --batch."""
    if shard is None and group is None:
        return None
    if shard is None or not group:
        raise EvalsError("--shard I/N and --run-group NAME go together", field="--shard" if shard is None else
                         "--run-group")
    for given, flag in ((resume, "--resume (it finishes every shard's examples)"), (workers > 1, "--workers"),
                        (batch, "--batch")):
        if given:
            raise EvalsError(f"--shard does not go with {flag}", field="--shard")
    from evals.run.shards import parse_shard

    return parse_shard(shard)


def models_to_run(loaded: Any, model: list[str] | None, judge: str | None, limit: int | None,
                  batch: bool, prompt: str | None = None) -> tuple[Any, list[Any], list[Any]]:
    """The task (with --judge), its first `limit` examples, and each model's provider: the task's models or
    --model (each with the named `prompt`), those that cannot run here skipped (said), the embedded default
    when none of the task's can."""
    from evals.run.api import select_models

    chosen = select_models(loaded, model, judge=judge, limit=limit, batch=batch, prompt=prompt, warn=warn)
    for s in chosen.skipped:
        err_console.print(f"[yellow]skipped[/] {s.spec}: {s.reason}", highlight=False)
    if chosen.fell_back:
        err_console.print(f"no model of the task can run here; running the embedded default {chosen.ready[0][0].spec}")
    loaded, samples, ready = chosen.task, chosen.samples, chosen.ready
    return loaded, samples, ready


@app.command()
def runs(
    task: Annotated[str | None, typer.Option(help="Only runs of this task.")] = None,
    limit: Annotated[int, typer.Option(help="Most recent N runs.")] = 20,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List stored runs, newest first."""
    from dataclasses import asdict

    from evals.report.terminal import runs_table
    from evals.run.store import Store

    records = Store(store).list_runs(task, limit)
    if as_json:
        print_json([{k: v for k, v in asdict(r).items() if k != "manifest"} for r in records])
    else:
        console.print(runs_table(records))


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    examples: Annotated[int, typer.Option(help="Examples to list, failures first.")] = 10,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one run: summary, manifest and examples."""
    from evals.analyse.summary import summarize
    from evals.report.terminal import cost_notes, examples_table, examples_to_show, summary_table
    from evals.run.store import Store, load_run

    db = Store(store)
    df = load_run(run_id, db, texts=as_json)  # the terminal shows a few answers: only theirs are read
    summary = summarize(df)
    if as_json:
        print_json({"summary": summary.as_dict(), "manifest": df.attrs["manifest"],
                     "examples": df.drop(columns=["scores"]).to_dict(orient="records")})
        return
    m = df.attrs["manifest"]
    console.print(summary_table([summary], title=f"run {summary.run_id} - task {m['task']['name']}"))
    console.print(f"golden {m['golden']['hash'][:12]} ({m['golden']['n']} examples), task {m['task']['hash'][:12]}, "
                  f"params {m['params']}, git {(m['git'].get('commit') or '-')[:10]}", highlight=False)
    if summary.calls_per_hour:
        console.print(f"throughput {summary.calls_per_hour:,.0f} calls/hour ({summary.busy_s:,.1f} s busy) at "
                      f"concurrency {summary.concurrency} on {summary.hardware}", markup=False, highlight=False)
    if summary.flaky:
        console.print(f"flaky (passed some of their {summary.repeats} attempts, failed others): "
                      + ", ".join(summary.flaky), markup=False, highlight=False)
    for note in cost_notes([summary]):
        console.print(note, markup=False, highlight=False, soft_wrap=True)
    if batches := db.batches_of(summary.run_id):
        console.print("batches: " + ", ".join(f"{b['id']} ({b['provider']}, {b['items']} requests, {b['status']})"
                                              for b in batches), markup=False, highlight=False)
    print_classifications([summary])
    shown = examples_to_show(df, examples)
    answers = db.outputs(summary.run_id, zip(shown["example_id"], shown["attempt"]))
    shown = shown.assign(output=[(answers.get(k) or {}).get("output")
                                 for k in zip(shown["example_id"], shown["attempt"])])
    console.print(examples_table(shown, examples))


@app.command("metrics")
def metrics_cmd(as_json: JsonOpt = False) -> None:
    """List every metric (built-in and plugins): what it measures and its arguments with defaults."""
    from evals.metrics import describe_metrics
    from evals.registry import plugin_errors

    described = describe_metrics()
    for entry_point, why in plugin_errors.items():
        warn(f"plugin {entry_point} failed to load: {why}")
    if as_json:
        print_json(described)
        return
    from evals.report.terminal import metrics_list_table

    console.print(metrics_list_table(described))
    console.print("Use in task.yaml: metrics: [{name: NAME, id: OPTIONAL_ID, ARGUMENT: VALUE, ...}], or name a "
                  "function in a file beside task.yaml: {name: my_metrics.py:my_metric}", markup=False,
                  highlight=False)
