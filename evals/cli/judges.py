"""`evals judge-agreement`: a run's judge metrics against people's labels in the golden set, and themselves."""

from __future__ import annotations

from typing import Annotated

import typer

from evals.cli.app import JsonOpt, StoreOpt, app, console, print_json
from evals.errors import EvalsError


@app.command("judge-agreement")
def judge_agreement(
    task: Annotated[str, typer.Argument(help="Task name or path; its task.yaml names the labels: dataset.human.")],
    run: Annotated[str | None, typer.Option(help="The run whose judge scores to check (default: the task's newest "
                                                 "completed run with judge metrics).")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """How well the task's LLM judges agree with people (kappa, confusion, worst disagreements) and with
    themselves across repeats."""
    from evals.analyse.judge_agreement import JUDGE_METRICS, agreement, judge_metrics, judge_scale, labels_for
    from evals.data.golden import load_samples
    from evals.data.tasks import load_task
    from evals.run.store import Store, load_run

    loaded = load_task(task)
    if not loaded.human_field:
        raise EvalsError("the task names no field of people's labels; add `human: FIELD` under `dataset:`",
                         file=loaded.path, field="dataset.human")
    samples = load_samples(loaded)
    db = Store(store)
    if run is None:
        found = [r for r in db.list_runs(loaded.name, limit=None, completed=True) if judge_metrics(r.manifest)]
        if not found:
            raise EvalsError(f"no completed run of task '{loaded.name}' in {db.path} has a judge metric "
                             f"({', '.join(JUDGE_METRICS)}): run the task first, or name one with --run")
        run = found[0].id
    df = load_run(run, db)
    judged = judge_metrics(df.attrs["manifest"])
    if not judged:
        raise EvalsError(f"run {run} has no judge metric ({', '.join(JUDGE_METRICS)})")
    where = str(loaded.dir / loaded.golden)
    results = [agreement(df, labels_for(samples, m, judge_scale(c), where=where, field_name=loaded.human_field), m, c)
               for m, c in judged.items()]
    if as_json:
        print_json({"run_id": df.attrs["run"]["id"], "judges": [r.as_dict() for r in results]})
        return
    from evals.report.terminal import judge_agreement_tables

    console.print(*judge_agreement_tables(df.attrs["run"]["id"], results))
