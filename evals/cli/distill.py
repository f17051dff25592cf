"""`evals distill`: a teacher labels inputs, reference-free filters keep the good answers, and a train file
with its provenance manifest is written."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from evals.cli.app import (
    CallFlags,
    JsonOpt,
    StoreOpt,
    app,
    calls_models,
    console,
    err_console,
    print_json,
    run_async,
    running,
    warn,
)

AGAIN = "the same `evals distill` command (it continues run {run_id})"


@app.command()
@calls_models(cache=True)
def distill(
    task: Annotated[str, typer.Argument(help="Task name (golden_sets/<name>) or path: its prompt asks the teacher.")],
    teacher: Annotated[str, typer.Option(help="Model spec that labels the inputs, e.g. openai:gpt-4o.")],
    inputs: Annotated[Path | None, typer.Option(
        help="JSONL/CSV/Parquet of inputs with the task's fields (an id and a reference optional). "
             "Default: the task's train file, whose references then grade the labels.")] = None,
    n: Annotated[int | None, typer.Option("--n", help="Label only the first N inputs (after decontamination).",
                                          min=1)] = None,
    filters: Annotated[list[str] | None, typer.Option(
        "--filter", metavar="METRIC", help="Keep an answer only if this reference-free metric passes: a task metric "
        "id, or json_valid, json_schema, regex with NAME,key=value,... arguments. Repeat for several.")] = None,
    judge: Annotated[str | None, typer.Option(help="Judge model that scores each answer 1-5 (input and answer only).",
                                              metavar="SPEC")] = None,
    min_score: Annotated[float | None, typer.Option(help="Keep answers the judge scores at least this (1-5; "
                                                         "default 4).")] = None,
    rubric: Annotated[str | None, typer.Option(help="The judge's rubric, text or file. Default: the task's judge "
                                                    "metric's, else a plain one.")] = None,
    prompt_of: Annotated[str | None, typer.Option(
        "--prompt-of", metavar="SPEC", help="Ask the teacher with this task entry's prompt settings (its system "
                                            "prompt, few_shot). Default: the teacher's own entry, else the task's.")] = None,
    out: Annotated[Path | None, typer.Option(help="Train file to write (JSONL); its manifest goes beside it as "
                                                  "FILE.manifest.json. Default: distilled.jsonl in the task folder.")] = None,
    calls: CallFlags = CallFlags(),
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Label inputs with a teacher model; keep the answers that pass every filter; write a train file."""
    from evals.data.tasks import load_task
    from evals.run.distill import label, plan_distill
    from evals.run.distilled import collect, write
    from evals.run.store import Store

    loaded = load_task(task)
    plan = plan_distill(loaded, teacher, inputs=inputs, n=n, filters=filters or (), judge=judge,
                        min_score=min_score, rubric=rubric, prompt_of=prompt_of)
    out = out or loaded.dir / "distilled.jsonl"
    err_console.print(f"distilling {loaded.name} with {plan.teacher.spec}: {len(plan.samples)} input(s) of "
                      f"{plan.inputs}" + (f", {len(plan.overlap)} dropped (they overlap the golden set)"
                                          if plan.overlap else ""), markup=False, highlight=False)
    options, response_cache = calls.setup()
    db = Store(store)

    def started(run_id: str, status: str | None) -> None:
        if status is not None:
            err_console.print(f"continuing run {run_id} ({status}): answered inputs are not asked again",
                              markup=False, highlight=False)

    with running(db, mode=calls.mode(quiet=as_json), resume=AGAIN) as bars:
        outcome = run_async(label(plan, db, options, cache=response_cache, progress=bars, warn=warn, on_start=started))
    done = collect(plan, db, outcome.run_id)
    quality = label_quality(done.matched, plan.reference_rule)
    manifest_file = write(plan, done, out, quality)
    if as_json:
        import json

        print_json(json.loads(manifest_file.read_text()))
    else:
        _print_summary(done, plan, quality)
    err_console.print(f"wrote {out} ({len(done.kept)} example(s)) and {manifest_file}", markup=False, highlight=False)
    if done.pending:
        why = "the budget was reached" if outcome.status == "budget-stopped" else f"the run is {outcome.status}"
        err_console.print(f"[yellow]{done.pending} input(s) not labelled yet[/] ({escape(why)}); run "
                          f"{escape(AGAIN.format(run_id=outcome.run_id))}" + (" with a larger --budget" if outcome.status
                                                                             == "budget-stopped" else ""),
                          highlight=False)


def label_quality(matched: dict[str, list[int]], rule: dict[str, float]) -> dict[str, Any] | None:
    """The teacher's labels against the inputs' references, by the task's pass rule: match rate, Wilson 95% CI."""
    from evals.analyse.rates import format_rate, wilson_interval

    if not matched:
        return None
    out: dict[str, Any] = {"rule": rule, "interval": "Wilson score, 95%"}
    for key, (m, n) in matched.items():
        low, high = wilson_interval(m, n)
        out[key] = {"matches": m, "n": n, "rate": m / n, "ci95": [round(low, 6), round(high, 6)],
                    "text": format_rate(m, n)}
    return out


def _print_summary(done: Any, plan: Any, quality: dict[str, Any] | None) -> None:
    from rich.table import Table

    table = Table(title=f"distilled {plan.task.name} with {plan.teacher.spec} (run {done.run_id})")
    table.add_column("")
    table.add_column("examples", justify="right")
    table.add_row("inputs", f"{len(plan.lines):,}")
    table.add_row("labelled", f"{len(plan.samples) - done.pending:,}")
    table.add_row("kept", f"{len(done.kept):,}")
    for reason, count in done.reasons.items():
        table.add_row(f"rejected: {escape(reason)}", f"{count:,}")
    if done.pending:
        table.add_row("not labelled yet", f"{done.pending:,}")
    console.print(table)
    t, j = done.teacher, done.judge
    console.print(f"teacher: {t.input_tokens:,} input / {t.output_tokens:,} output tokens, ${t.cost_usd:.4f}"
                  + (f"; judge: {j.calls:,} call(s), {j.input_tokens:,} / {j.output_tokens:,} tokens, "
                     f"${j.cost_usd:.4f}" if j.calls else ""), markup=False, highlight=False)
    if quality:
        console.print(f"labels against the inputs' references ({', '.join(f'{k} >= {v:g}' for k, v in quality['rule'].items())}): "
                      f"all labelled {quality['labelled']['text']}" + (
                          f"; kept {quality['kept']['text']}" if "kept" in quality else ""), markup=False,
                      highlight=False)
