"""`evals baseline`, `evals check` and `evals history`: nightly regression checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from evals.cli.app import (
    BatchOpt,
    CallFlags,
    ExamplesOpt,
    JsonOpt,
    StoreOpt,
    WorkersOpt,
    app,
    batched,
    calls_models,
    command_group,
    console,
    err_console,
    print_json,
    running,
)

TaskArg = Annotated[str, typer.Argument(help="Task name (golden_sets/<name>) or path.")]
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Model spec (default: check.model in task.yaml, "
                                                                    "else the model of the task's baseline).")]
baseline_app = command_group(help="The runs a team accepted, which `evals check` compares with.")
app.add_typer(baseline_app, name="baseline")


def _baseline_rows(records: list) -> list[dict]:
    return [{"task": b.task, "model": b.model, "run_id": b.run_id, "set_at": b.set_at, "note": b.note}
            for b in records]


def _print_baselines(records: list, title: str) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title)
    for header in ("task", "model", "run", "set at", "note"):
        table.add_column(header)
    for b in records:
        table.add_row(Text(b.task), Text(b.model), b.run_id, b.set_at, Text(b.note or ""))
    console.print(table)


@baseline_app.command("set")
def baseline_set(
    task: TaskArg,
    run_id: Annotated[str, typer.Argument(help="A completed run of the task (a unique id prefix), or `latest`.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="With `latest`: whose newest run.")] = None,
    note: Annotated[str | None, typer.Option(help="Why this run was accepted.")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Accept a completed run as the baseline of its task and model (replacing the previous one)."""
    from evals.gate.baseline import set_baseline
    from evals.run.store import Store

    record = set_baseline(Store(store), task, run_id, model=model, note=note)
    if as_json:
        print_json(_baseline_rows([record])[0])
    else:
        console.print(f"baseline of {record.task} on {record.model}: run {record.run_id}", markup=False,
                      highlight=False)


@baseline_app.command("show")
def baseline_show(
    task: TaskArg,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model's baseline.")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The task's current baselines with their runs' summaries, and the earlier ones."""
    from evals.analyse.summary import summarize_stored
    from evals.errors import EvalsError
    from evals.gate.baseline import normalize_spec, task_name
    from evals.run.store import Store

    db, name = Store(store), task_name(task)
    spec = normalize_spec(model) if model else None
    current = db.baselines(name, spec)
    if not current:
        raise EvalsError(f"no baseline for task '{name}'" + (f" and model {spec}" if spec else "")
                         + f" in {db.path}; set one with `evals baseline set {name} RUN_ID`")
    summaries = [summarize_stored(b.run_id, db) for b in current]
    every = db.baselines(name, spec, current_only=False)
    if as_json:
        print_json({"current": [{**row, "summary": s.as_dict()} for row, s in
                                 zip(_baseline_rows(current), summaries, strict=True)],
                     "history": _baseline_rows(every)})
        return
    from evals.report.terminal import summary_table

    _print_baselines(current, f"current baselines of {name}")
    console.print(summary_table(summaries, title="baseline runs"))
    if len(every) > len(current):
        _print_baselines(every, "every baseline set, newest first")


@baseline_app.command("list")
def baseline_list(
    task: Annotated[str | None, typer.Option(help="Only this task's baselines.")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The current baseline of every task and model."""
    from evals.gate.baseline import task_name
    from evals.run.store import Store

    records = Store(store).baselines(task_name(task) if task else None)
    if as_json:
        print_json(_baseline_rows(records))
    else:
        _print_baselines(records, "current baselines")


@app.command()
@calls_models(cache=False)
def check(
    task: TaskArg,
    model: ModelOpt = None,
    baseline: Annotated[str | None, typer.Option(
        help="Compare with this run, or `latest` (the newest completed run of the model on this golden set). "
             "Default: the baseline set with `evals baseline set`.")] = None,
    calls: CallFlags = CallFlags(),
    examples: ExamplesOpt = 10,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    junit: Annotated[Path | None, typer.Option(metavar="FILE", help="Also write JUnit XML to FILE.")] = None,
    html: Annotated[Path | None, typer.Option(metavar="FILE", help="Also write an HTML report with the trend.")] = None,
    batch: BatchOpt = False,
    workers: WorkersOpt = 1,
) -> None:
    """Run the task's model again (no cache) and gate it against its baseline: exit 0 pass/warn, 1 regression, 2 error.

    Fails when the match rate dropped past check.margin and the drop is significant (McNemar exact), or a
    check.floors value is broken; warns on a drop past the margin that is not significant, with the examples
    that would settle it; names the regressed examples and any change of the provider's model version.
    """
    from evals.gate.check import plan_check, run_check
    from evals.run.store import Store

    db = Store(store)
    plan = plan_check(task, db, model=model, baseline=baseline)
    if batch:
        plan = dataclasses.replace(plan, config=batched([plan.config])[0])
    err_console.print(f"checking {plan.config.spec} on {len(plan.samples)} examples of {plan.task.name} against "
                      f"{plan.baseline.source}" + ("" if calls.cache else "; response cache off"), markup=False,
                      highlight=False)
    options, response_cache = calls.setup()
    mode = calls.mode(quiet=as_json)
    outcome = run_check(plan, db, options, cache=response_cache, progress=lambda: running(db, mode=mode),
                        workers=workers)
    if junit is not None:
        from evals.report.junit import write_junit

        write_junit(junit, outcome)
    if html is not None:
        from evals.report.check import write_check_html

        write_check_html(html, outcome, db.checks(outcome.task, outcome.model), examples)
    from evals.analyse.decide import revisit_note

    revisit = revisit_note(db, plan.task.name)
    if as_json:
        print_json({**outcome.as_dict(), "decision_revisit": revisit})
    else:
        from evals.report.check import check_sections
        from evals.report.terminal import sections_renderable

        console.print(sections_renderable(check_sections(outcome, examples)))
    for written in (junit, html):
        if written is not None:
            err_console.print(f"wrote {written}", markup=False, highlight=False)
    color = {"pass": "green", "warn": "yellow", "fail": "red", "error": "red"}[outcome.status]
    err_console.print(f"[{color}]check {outcome.status.upper()}[/] (exit {outcome.exit_code}): ", end="")
    err_console.print(outcome.headline, markup=False, highlight=False)
    if revisit:
        err_console.print(revisit[0].upper() + revisit[1:] + ".", markup=False, highlight=False)
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


@app.command()
def history(
    task: TaskArg,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model's checks.")] = None,
    limit: Annotated[int, typer.Option(help="Most recent N checks.", min=1)] = 30,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    html: Annotated[Path | None, typer.Option(metavar="FILE", help="Also write the trend as HTML to FILE.")] = None,
) -> None:
    """Every check of a task over time: match rate and key metrics with CIs, status, model version."""
    from evals.gate.baseline import normalize_spec, task_name
    from evals.report.check import history_section, history_title, write_history_html
    from evals.report.terminal import sections_renderable
    from evals.run.store import Store

    name, spec = task_name(task), normalize_spec(model) if model else None
    records = Store(store).checks(name, spec, limit)
    if html is not None:
        write_history_html(html, name, spec, records)
    if as_json:
        print_json([{"id": r.id, "task": r.task, "model": r.model, "run_id": r.run_id,
                      "baseline_run_id": r.baseline_run_id, "created_at": r.created_at, "status": r.status,
                      **(r.outcome.get("point") or {})} for r in records])
    else:
        console.print(history_title(name, spec), markup=False, highlight=False)
        console.print(sections_renderable([history_section(records)]))
    if html is not None:
        err_console.print(f"wrote {html}", markup=False, highlight=False)
