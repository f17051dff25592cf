"""`evals compare`, `decide`, `power` and `latency`: from runs to a verdict, with its cost and latency."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from evals.cli.app import (
    CallFlags,
    ExamplesOpt,
    HtmlOpt,
    JsonOpt,
    MarkdownOpt,
    NoProgressOpt,
    ProgressOpt,
    RetriesOpt,
    RetryForOpt,
    StoreOpt,
    TimeoutOpt,
    WorkersOpt,
    app,
    calls_models,
    console,
    err_console,
    print_json,
    print_report,
    progress_mode,
    run_async,
    running,
)
from evals.errors import EvalsError


def _report_comparison(cmp: Any, verdict: Any, *, as_json: bool, markdown: Path | None, examples: int,
                       note: str = "", html: Path | None = None) -> None:
    """Print a comparison (tables or JSON) and optionally write it as Markdown and/or HTML."""
    from evals.report.curve import stored_curve_figure
    from evals.report.html import comparison_figures
    from evals.report.sections import comparison_sections, comparison_title

    def figures() -> list[Any]:  # with the learning curve the verdict quotes, under the verdict
        curve = [stored_curve_figure(verdict.curve, "Verdict")] if verdict.curve else []
        return [*comparison_figures(cmp, verdict), *curve]

    print_report(comparison_sections(cmp, verdict, examples), comparison_title(cmp),
                 lambda: {**cmp.as_dict(), "verdict": verdict.as_dict()}, as_json=as_json, markdown=markdown, html=html,
                 figures=figures, note=note)


@app.command()
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
    from evals.analyse.decide import compare_stored
    from evals.run.store import Store

    cmp, verdict, source = compare_stored(run_a, run_b, Store(store), force=force)
    _report_comparison(cmp, verdict, as_json=as_json, markdown=markdown, html=html, examples=examples, note=source)


@app.command()
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
    from evals.analyse.power import plan_power

    plan = plan_power(rate, gap, discordance, power_, confidence)
    if as_json:
        print_json(plan.as_dict())
        return
    console.print(f"About {plan.n_pairs:,} paired golden examples detect a {gap * 100:g}-point gap over a "
                  f"{rate:.0%} match rate with {power_:.0%} power at {confidence:.0%} confidence.",
                  markup=False, highlight=False)
    console.print("Assumptions:", markup=False)
    for a in plan.assumptions:
        console.print(f"  - {a}", markup=False, highlight=False)


@app.command("decide")
@calls_models(cache=True)
def decide_cmd(
    task: Annotated[str, typer.Argument(help="Task name (golden_sets/<name>) or path.")],
    baseline: Annotated[str | None, typer.Option(help="Baseline model spec (default: decision.baseline).")] = None,
    candidate: Annotated[list[str] | None, typer.Option(
        help="Candidate model spec; repeat it to weigh several paths in one report (default: decision.candidate).")] = None,
    calls: CallFlags = CallFlags(),
    examples: ExamplesOpt = 10,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    markdown: MarkdownOpt = None,
    html: HtmlOpt = None,
    workers: WorkersOpt = 1,
) -> None:
    """Run the task's baseline and candidate(s) (only what the store lacks), then compare and decide."""
    from evals.analyse.decide import (
        compare_with_baseline,
        plan_decision,
        record_choice,
        record_decision,
        run_missing,
        with_errors,
    )
    from evals.run.store import Store

    db = Store(store)
    plan = plan_decision(task, db, baseline, candidate)
    for what, why in plan.left_out.items():
        err_console.print(f"[yellow]left out[/] {escape(what)}: {escape(why)}", highlight=False)
    for role, run_id in plan.runs.items():
        err_console.print(f"{role} {plan.configs[role].spec}: reusing stored run {run_id}", markup=False, highlight=False)
    retry = with_errors(plan, db)
    for run_id in retry:
        err_console.print(f"run {run_id} has {db.get_run(run_id).n_errors} provider error(s): retrying those examples "
                          "first", markup=False, highlight=False)
    if plan.missing or retry:
        options, response_cache = calls.setup()
        mode = calls.mode(quiet=as_json)
        run_missing(plan, db, options, cache=response_cache, progress=lambda: running(db, mode=mode), workers=workers)
    note = f"decision settings: {plan.task.path}"
    compared = compare_with_baseline(plan.runs["baseline"], [(plan.runs[r], plan.decision_for(r))
                                                             for r in plan.candidates], db)
    pairs = [(role, cmp, verdict) for role, (cmp, verdict, _) in zip(plan.candidates, compared, strict=True)]
    if len(pairs) == 1:
        _, cmp, verdict = pairs[0]
        record_decision(db, plan.task, plan.runs, verdict)
        _report_comparison(cmp, verdict, as_json=as_json, markdown=markdown, html=html, examples=examples, note=note)
        return
    from evals.analyse.paths import choose_path

    choice = choose_path(pairs, plan.decision)
    record_choice(db, plan, choice, pairs)
    _report_paths(choice, pairs, as_json=as_json, markdown=markdown, html=html, examples=examples, note=note)


def _report_paths(choice: Any, pairs: list[Any], *, as_json: bool, markdown: Path | None, html: Path | None,
                  examples: int, note: str) -> None:
    """Several candidates against one baseline: the choice, one cost table, each pair's report."""
    from evals.report.sections import paths_sections

    title = f"{pairs[0][1].a.summary.model} against " + ", ".join(cmp.b.summary.model for _, cmp, _ in pairs)
    print_report(paths_sections(choice, pairs, examples), title, lambda: {
        "choice": choice.as_dict(),
        "comparisons": [{"role": role, **cmp.as_dict(), "verdict": v.as_dict()} for role, cmp, v in pairs],
    }, as_json=as_json, markdown=markdown, html=html, note=note)


@app.command("latency")
def latency_cmd(
    task: Annotated[str, typer.Argument(help="Task name (golden_sets/<name>) or path: its prompts are sent.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model spec to measure (its task.yaml settings apply).")],
    concurrency: Annotated[str, typer.Option(help="Comma-separated requests in flight (local: batch sizes).")] = "1,8,32",
    n: Annotated[int, typer.Option("-n", help="Requests per level (at least the level's concurrency).", min=1)] = 16,
    base_url: Annotated[str | None, typer.Option(help="Server to measure, e.g. a vLLM server's http://host:8000/v1.")] = None,
    hardware: Annotated[str | None, typer.Option(help="What the server runs on (e.g. '1x L4'), recorded with the profile.")] = None,
    timeout: TimeoutOpt = 300.0,
    retries: RetriesOpt = 16,
    retry_for: RetryForOpt = 600.0,
    progress: ProgressOpt = None,
    no_progress: NoProgressOpt = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure a model's time to first token, latency and calls/hour at several concurrencies; `decide` uses it."""
    import dataclasses

    from evals.data.golden import load_samples
    from evals.data.tasks import load_task
    from evals.run.calls import RunOptions
    from evals.run.latency import measure_latency
    from evals.run.store import Store

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
    options = RunOptions(timeout_s=timeout, max_retries=retries, retry_for_s=retry_for)
    with running(db, mode=progress_mode(progress, no_progress, quiet=as_json)) as bars:
        profile = run_async(measure_latency(loaded, config, samples, db, levels, n, options, bars, hardware))
    if as_json:
        print_json(dataclasses.asdict(profile))
        return
    from evals.report.terminal import latency_table

    console.print(latency_table(profile))
    err_console.print(f"stored as latency profile {profile.id}; `evals decide {loaded.name}` uses it for {config.spec}",
                      markup=False, highlight=False)
