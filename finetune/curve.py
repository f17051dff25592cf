"""`evals finetune TASK --curve 50,100,200,all`: would more data close the gap? Trains one adapter per size on
nested subsets of the training data (one seeded order, each size its first N, so a smaller set lies inside every
larger one; the same validation slice for all), scores each on the golden set through the normal run path, and
fits a learning curve (evals/analyse/learning_curve.py) whose extrapolations say how many examples would reach
the baseline.

Everything lands in finetune/curves/NAME/ (git-ignored): an adapter per size (nN/), and curve.json, written after
each size, so a killed curve continues at the size it stopped in (from that size's checkpoint).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evals._util import write_atomic
from evals.analyse.learning_curve import CURVES_ROOT, MIN_SIZES, answer
from evals.analyse.rates import wilson_interval
from evals.data.contamination import Overlap
from evals.data.golden import load_samples, samples_hash
from evals.errors import EvalsError
from evals.run.manifest import plain
from evals.run.store import Store
from evals.types import ModelConfig, ModelSpec, Sample, Task
from finetune.checkpoint import checkpoint_dir
from finetune.config import FinetuneConfig
from finetune.data import check_overlap, load_train, split
from finetune.trainer import MANIFEST_FILE, adapter_dir, train

CURVE_FILE = "curve.json"
DRAWS = 1000

# evaluate(model config) -> the id of its completed run on the golden set (the CLI runs it through the runner)
Evaluate = Callable[[ModelConfig], str]


def curve_dir(name: str) -> Path:
    return CURVES_ROOT / adapter_dir(name).name  # the same plain-name rule as an adapter's


def parse_sizes(text: str, available: int) -> list[int]:
    """'50,100,200,all' -> [50, 100, 200, available]; a size larger than the training data is refused."""
    sizes = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        if part == "all":
            sizes.add(available)
            continue
        if not part.isdigit() or int(part) < 1:
            raise EvalsError(f"--curve takes sizes separated by commas (numbers, or 'all'), e.g. 50,100,200,all; "
                             f"got '{part}'", field="--curve")
        if int(part) > available:
            raise EvalsError(f"--curve size {part} is more than the {available} training examples there are (after "
                             "the validation slice is held out); use 'all' for every one", field="--curve")
        sizes.add(int(part))
    if not sizes:
        raise EvalsError("--curve needs at least one size, e.g. 50,100,200,all", field="--curve")
    return sorted(sizes)


def nested_subsets(samples: Sequence[Sample], config: FinetuneConfig) -> tuple[list[Sample], list[Sample]]:
    """(the training examples in one seeded order, the validation slice): size N trains on the first N."""
    return split(samples, config.val_fraction, config.seed)


def identity(task: Task, config: FinetuneConfig, samples: Sequence[Sample], golden_hash: str,
             entry: ModelConfig) -> dict[str, Any]:
    """What makes two curves the same experiment: a curve resumes only under the same identity."""
    return {"task": task.name, "base": config.base, "config": config.math_dict(), "train_hash": samples_hash(
        list(samples)), "golden_hash": golden_hash, "prompt": {"system": entry.system, "few_shot": entry.few_shot}}


def load_curve(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise EvalsError(f"cannot read the curve: {e}; --force starts it over", file=path) from None
    if not isinstance(record, dict) or not isinstance(record.get("points"), list):
        raise EvalsError("not a learning curve written by evals; --force starts it over", file=path)
    return record


def run_curve(task: Task, config: FinetuneConfig, sizes_text: str, evaluate: Evaluate, store: Store, *, name: str,
              force: bool = False, allow_overlap: bool = False, console=None, progress_mode: str = "bar",
              baseline: tuple[str, str, float] | None = None, on_point: Callable[[dict], None] | None = None
              ) -> dict[str, Any]:
    """Train and score every size not yet in the curve, then fit it; returns the curve (also in curve.json).
    `baseline`: (run id, model, match rate) of the prompted model to reach, for the examples-needed answer."""
    samples = load_train(task)
    overlap: list[Overlap] = check_overlap(task, samples, allow=allow_overlap)
    order, val = nested_subsets(samples, config)
    sizes = parse_sizes(sizes_text, len(order))
    folder = curve_dir(name)
    entry = task.model_config(f"{config.base}+lora:{adapter_dir(name)}")  # the prompt the fine-tune is served with
    golden = load_samples(task)
    wanted = plain(identity(task, config, samples, samples_hash(golden), entry))
    record = load_curve(folder / CURVE_FILE)
    if record is not None and record.get("identity") != wanted:
        if not force:
            raise EvalsError(f"{folder} holds a curve of other settings or data; --force starts it over, --name "
                             "keeps both")
        shutil.rmtree(folder, ignore_errors=True)
        record = None
    record = record or {"identity": wanted, "points": [], "validation_ids": [s.id for s in val],
                        "golden_overlap_allowed": [vars(o) for o in overlap]}
    record["sizes"] = sorted({*sizes, *(p["size"] for p in record["points"])})
    folder.mkdir(parents=True, exist_ok=True)
    done = {p["size"] for p in record["points"]}
    for n in sizes:
        if n in done:
            continue
        out = folder / f"n{n}"
        if not (out / MANIFEST_FILE).is_file():  # trained already when only its scoring was cut short
            if console is not None:
                console.print(f"curve {name}: training on {n} of {len(order)} examples -> {out}", highlight=False)
            train(task, config, out, resume=(checkpoint_dir(out) / "state.pt").is_file(), force=True,
                  allow_overlap=allow_overlap, console=console, progress_mode=progress_mode,
                  subset=(order[:n], val), prompt_model=entry)
        manifest = json.loads((out / MANIFEST_FILE).read_text(encoding="utf-8"))
        model = dataclasses.replace(entry, spec=ModelSpec.parse(f"{config.base}+lora:{out}"))
        run_id = evaluate(model)
        point = score_point(n, out, model, run_id, manifest, golden, task, store)
        record["points"] = sorted([*record["points"], point], key=lambda p: p["size"])
        write_atomic(folder / CURVE_FILE, json.dumps(record, indent=1, sort_keys=True) + "\n")
        if on_point:
            on_point(point)
    record["fit"] = fit_curve(record, golden, baseline, task)
    write_atomic(folder / CURVE_FILE, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return record


def score_point(n: int, out: Path, model: ModelConfig, run_id: str, manifest: dict[str, Any],
                golden: Sequence[Sample], task: Task, store: Store) -> dict[str, Any]:
    """One size: its golden-set run's match rate (Wilson 95% CI), metric means, each example's match, and what
    training took (wall time, tokens, and its cost at decision.self_hosted.gpu_hourly_usd when set)."""
    from evals.analyse.summary import summarize_stored

    summary = summarize_stored(run_id, store)
    passed = {r["example_id"]: bool(r["passed"]) for r in store.result_rows(run_id)}
    hourly = task.decision.self_hosted.gpu_hourly_usd if task.decision.self_hosted else None
    wall = float(manifest["wall_seconds"])
    hardware = manifest.get("hardware") or {}
    low, high = wilson_interval(summary.matches, summary.n)
    return {
        "size": n, "adapter": str(out), "model_spec": str(model.spec), "run_id": run_id,
        "matches": summary.matches, "n": summary.n, "rate": summary.match_rate, "ci95": [low, high],
        "errors": summary.errors, "metrics": summary.metrics,
        "train": {"wall_seconds": wall, "tokens": manifest["tokens"], "steps": manifest["steps"]["done"],
                  "epochs": len(manifest["epochs"]), "device": hardware.get("device"), "cpu": hardware.get("cpu"),
                  "cost_usd": wall / 3600 * hourly if hourly else None,
                  "cost_basis": (f"{wall / 3600:.3f} h of training on {hardware.get('device')} at "
                                 f"decision.self_hosted.gpu_hourly_usd ${hourly:g}" if hourly else
                                 "no decision.self_hosted.gpu_hourly_usd set")},
        "passed": [int(passed.get(s.id, False)) for s in golden],  # golden order; an error or a gap is a miss
    }


def fit_curve(record: dict[str, Any], golden: Sequence[Sample], baseline: tuple[str, str, float] | None,
              task: Task) -> dict[str, Any] | None:
    """The fit and its answers, once the curve has MIN_SIZES sizes; None (said in the report) before."""
    points = record["points"]
    if len(points) < MIN_SIZES:
        return None
    targets: dict[str, float] = {}
    if baseline is not None:
        targets["baseline"] = baseline[2]
        if baseline[2] + task.decision.min_gap <= 1:
            targets["baseline + min_gap"] = baseline[2] + task.decision.min_gap
    got = answer([p["size"] for p in points], [p["passed"] for p in points], targets, draws=DRAWS, seed=0)
    return {**got.as_dict(), "draws": DRAWS, "bootstrap": "golden examples resampled, the same draw at every size",
            "bootstrap_params": [[round(q.a, 6), round(q.b, 6), round(q.c, 6)] for q in got.bootstrap],
            "baseline": None if baseline is None else {"run_id": baseline[0], "model": baseline[1],
                                                       "rate": baseline[2], "min_gap": task.decision.min_gap}}
