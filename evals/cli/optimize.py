"""`evals optimize`: the baseline's prompt searched on the task's train split, the winner written to task.yaml."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from rich.markup import escape

from evals.cli.app import (
    BudgetOpt,
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
    same_command,
)
from evals.errors import EvalsError


@app.command()
@calls_models(cache=True, budget=False)
def optimize(
    task: Annotated[str, typer.Argument(help="Task name (golden_sets/<name>) or path.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="The model whose prompt is optimised "
                                                                    "(default: decision.baseline).")] = None,
    budget: BudgetOpt = None,
    max_calls: Annotated[int | None, typer.Option(
        "--max-calls", metavar="N", min=1, help="At most N model calls for the search, every session of it "
        "(a resumed search counts what it stored); the final golden scoring comes on top.")] = None,
    proposer: Annotated[str | None, typer.Option(
        metavar="SPEC", help="Model that rewrites the instructions from the failures (gepa's reflective "
                             "mutation); without it that family is skipped.")] = None,
    dev: Annotated[int | None, typer.Option(
        metavar="N", help="Train examples in the dev part that selects (default 20%, at least 20).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the search/dev split and of the random demos.")] = 0,
    shots: Annotated[str, typer.Option(metavar="K,K", help="Demo counts to try, comma-separated.")] = "2,4,8",
    limit: Annotated[int | None, typer.Option(
        metavar="N", min=1, help="Score seed and winner on the first N golden examples only.")] = None,
    write: Annotated[bool, typer.Option("--write/--no-write", help="Write the winner into task.yaml as "
                                                                   "prompts.optimized.")] = True,
    calls: CallFlags = CallFlags(),
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Search the prompt on train.jsonl (seed, few-shot demos, rewrites), select on its dev part, write the
    winner as prompts.optimized, then score seed and winner once on the golden set, paired."""
    from evals.analyse.optimize import Plan, optimize as run_optimize
    from evals.data.tasks import load_task
    from evals.run.store import Store

    try:
        counts = tuple(sorted({int(k) for k in shots.split(",") if k.strip()}))
    except ValueError:
        raise EvalsError(f"--shots takes numbers separated by commas, e.g. 2,4,8; got '{shots}'") from None
    if not counts or counts[0] < 1:
        raise EvalsError(f"--shots must be 1 or more, got '{shots}'", field="--shots")
    if model is None:
        model = load_task(task).decision.baseline
        if model is None:
            raise EvalsError("which model's prompt? pass -m SPEC (or set decision.baseline in task.yaml)")
    options, response_cache = dataclasses.replace(calls, budget=budget).setup()
    db = Store(store)
    plan = Plan(task, model, max_calls, proposer, dev, seed, counts, limit, write)
    again = same_command("optimize", "the same evals optimize command")
    with running(db, mode=calls.mode(quiet=as_json), resume=again) as bars:
        result = run_async(run_optimize(plan, db, options, cache=response_cache, progress=bars,
                                        say=lambda text: err_console.print(escape(text), highlight=False)))
    if as_json:
        print_json(result)
        return
    from evals.report.optimize import optimization_lines, optimization_table

    console.print(optimization_table(result))
    for line in optimization_lines(result):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


@app.command("optimizations")
def optimizations_cmd(
    task: Annotated[str | None, typer.Option(help="Only optimisations of this task.")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List finished optimisations, newest first: the winner, its dev and golden figures against the seed."""
    from evals.run.optimize.ledger import optimizations
    from evals.run.store import Store

    records = optimizations(Store(store), task)
    if as_json:
        print_json([r.result for r in records])
        return
    from evals.report.optimize import optimizations_table

    console.print(optimizations_table([r.result for r in records if r.result]))
