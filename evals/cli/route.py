"""`evals route`: should part of the traffic go to the cheap model? Every threshold of a routing signal, with
the blended match rate's paired CI against the strong model, cost and latency; running what the store lacks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evals.cli.app import (
    CallFlags,
    HtmlOpt,
    JsonOpt,
    MarkdownOpt,
    StoreOpt,
    app,
    calls_models,
    err_console,
    print_report,
    running,
)
from evals.errors import EvalsError

ROLE = {"strong": "baseline", "cheap": "candidate"}  # the decision plan's roles


@app.command("route")
@calls_models(cache=True)
def route_cmd(
    task: Annotated[str, typer.Argument(help="Task name (golden_sets/<name>) or path.")],
    cheap: Annotated[str, typer.Option("--cheap", metavar="SPEC|RUN_ID", help="The cheap model (e.g. the fine-tune), "
                                       "or a stored run of it.")],
    strong: Annotated[str, typer.Option("--strong", metavar="SPEC|RUN_ID", help="The strong model (e.g. the frontier "
                                        "API model), or a stored run of it.")],
    signal: Annotated[str, typer.Option("--signal", metavar="NAME", help="logprob (the cheap answer's mean token "
                                        "log-probability), a metric id of the task that needs no reference, or "
                                        "fallback:METRIC (to strong when the cheap answer fails that check).")],
    force: Annotated[bool, typer.Option("--force", help="Route between runs of different golden sets on their "
                                        "shared ids.")] = False,
    calls: CallFlags = CallFlags(),
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    markdown: MarkdownOpt = None,
    html: HtmlOpt = None,
) -> None:
    """Keep calls on the cheap model when a signal from its answer is high enough: quality, cost, latency per threshold."""
    from evals.analyse.decide import newest_matching_run, plan_decision, run_missing, with_errors
    from evals.analyse.route import route_stored
    from evals.analyse.signals import LOGPROB, check_blind, parse_signal, signal_values
    from evals.providers import provider_class
    from evals.run.manifest import recorded_metrics
    from evals.run.store import Store, load_run

    db = Store(store)
    given = {role: db.get_run(arg) for role, arg in (("cheap", cheap), ("strong", strong)) if ":" not in arg}
    specs = {role: given[role].model if role in given else arg for role, arg in (("cheap", cheap), ("strong", strong))}
    if specs["cheap"] == specs["strong"]:
        raise EvalsError(f"--cheap and --strong are the same model ({specs['cheap']}): routing needs two")
    plan = plan_decision(task, db, baseline=specs["strong"], candidate=specs["cheap"])
    config = plan.configs["candidate"]
    if signal == LOGPROB and (asking := provider_class(config.spec.provider).with_logprobs(config)) != config:
        config = asking  # the signal needs them
        plan.configs["candidate"] = config
        plan.runs.pop("candidate", None)
        if found := newest_matching_run(db, plan.task, config, plan.samples, plan.golden_hash):
            plan.runs["candidate"] = found
    for role, record in given.items():
        plan.runs[ROLE[role]] = record.id
    cheap_run = plan.runs.get("candidate")
    recorded = recorded_metrics(db.get_run(cheap_run).manifest, plan.task, cheap_run) if cheap_run else ()
    chosen = parse_signal(signal, plan.task, recorded)
    check_blind(chosen, plan.task, plan.samples[0])  # before any call: one reading the reference on any answer
    known = None  # a stored cheap run is scored now, once: one that lacks the signal is refused before any call
    if cheap_run:
        known = signal_values(chosen, plan.task, {s.id: s for s in plan.samples}, load_run(cheap_run, db))
    for role, plan_role in ROLE.items():
        if plan_role in plan.runs:
            err_console.print(f"{role} {plan.configs[plan_role].spec}: using stored run {plan.runs[plan_role]}",
                              markup=False, highlight=False)
    if plan.missing or with_errors(plan, db):
        options, response_cache = calls.setup()
        mode = calls.mode(quiet=as_json)
        run_missing(plan, db, options, cache=response_cache, progress=lambda: running(db, mode=mode))
    routing = route_stored(plan.task, plan.runs["candidate"], plan.runs["baseline"], db, signal, force=force,
                           known=known)
    db.add_route(plan.task.name, routing.cheap_run, routing.strong_run, routing.signal, routing.as_dict())
    _report(routing, as_json=as_json, markdown=markdown, html=html)


def _report(routing, *, as_json: bool, markdown: Path | None, html: Path | None) -> None:
    from evals.report.routing import frontier_figure, routing_sections, routing_title

    print_report(routing_sections(routing), routing_title(routing), routing.as_dict, as_json=as_json,
                 markdown=markdown, html=html, figures=lambda: [frontier_figure(routing)])
