"""`evals finetune TASK --curve SIZES`: train and score each size (finetune/curve.py), then print the curve and
write its HTML report and figure. Scoring goes through the runner like `evals run` (cache, progress, store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def curve_cmd(loaded: Any, settings: Any, sizes: str, *, name: str | None, force: bool, allow_overlap: bool,
              progress: str | None, store: Path | None, consoles: dict[str, Any], on: str = "local") -> None:
    """`settings`: a FinetuneConfig (local LoRA adapters) or, `on` openai, a HostedConfig (hosted fine-tunes)."""
    from evals._util import dir_hash
    from evals.analyse.decide import newest_matching_run
    from evals.analyse.summary import summarize_stored
    from evals.cli.app import CallFlags, progress_mode, run_async, running, same_command
    from evals.data.golden import load_samples, samples_hash
    from evals.errors import EvalsError
    from evals.providers.local import release_models
    from evals.report.curve import curve_sections, write_report
    from evals.report.terminal import sections_renderable
    from evals.run.runner import require_providers, run_task
    from evals.run.store import Store
    from finetune.curve import HostedSizes, LocalSizes, curve_dir, run_curve
    from finetune.trainer import TrainingInterrupted

    console, err = consoles["out"], consoles["err"]
    name = name or loaded.name
    db = Store(store)
    golden = load_samples(loaded)
    golden_hash = samples_hash(golden)
    mode = progress_mode(progress, False)
    options, cache = CallFlags().setup()
    again = same_command("finetune", f"evals finetune {loaded.name} --curve {sizes}"
                         + ("" if on == "local" else f" --on {on}")
                         + ("" if name == loaded.name else f" --name {name}"))
    sizes_of = (LocalSizes if on == "local" else HostedSizes)(loaded, settings, name, allow_overlap, err, mode)

    def evaluate(model: Any) -> str:
        found = newest_matching_run(db, loaded, model, golden, golden_hash)
        adapter = model.adapter_dir
        if found and adapter and (db.get_run(found).manifest.get("adapter") or {}).get("hash") != dir_hash(adapter):
            found = None  # a run of an earlier adapter trained at the same path (a curve started over)
        if found:
            err.print(f"{model.spec}: reusing stored run {found}", markup=False, highlight=False)
            return found
        providers = require_providers([model])
        try:
            with running(db, mode=mode, resume=again + " (the curve continues where it stopped)") as bars:
                [outcome] = run_async(run_task(loaded, golden, providers, db, options, cache=cache, progress=bars))
        finally:
            del providers
            release_models()  # the next size trains in this process: its memory plan counts what is still held
        if outcome.status != "completed":
            raise EvalsError(f"the golden-set run {outcome.run_id} of {model.spec} stopped early ({outcome.status}); "
                             f"run `{again}` again")
        return outcome.run_id

    baseline = None
    if loaded.decision.baseline:
        config = loaded.model_config(loaded.decision.baseline)
        found = newest_matching_run(db, loaded, config, golden, golden_hash)
        if found:
            baseline = (found, str(config.spec), summarize_stored(found, db).match_rate)

    def said(point: dict) -> None:
        err.print(f"curve {name}: {point['size']} examples -> {point['matches']}/{point['n']} on the golden set "
                  f"(run {point['run_id']})", markup=False, highlight=False)

    try:
        record = run_curve(sizes_of, sizes, evaluate, db, force=force, baseline=baseline, on_point=said)
    except TrainingInterrupted as e:
        err.print(f"[yellow]{e.message.split('. Continue with')[0]}.[/] Continue the curve with `{again}`",
                  highlight=False)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:  # a hosted size: its job keeps running at the provider
        err.print(f"[yellow]interrupted: the size's fine-tuning job keeps running (and is billed as it trains).[/] "
                  f"Continue the curve with `{again}`: it re-attaches to the job", highlight=False)
        raise typer.Exit(130) from None
    folder = curve_dir(name)
    console.print(sections_renderable(curve_sections(record, str(folder / "curve.json"))))
    html, png = write_report(record, folder)
    err.print(f"wrote {folder / 'curve.json'}, {html} and {png}", markup=False, highlight=False)
