"""`evals finetune TASK --curve 50,100,200,all`: would more data close the gap? Trains one adapter per size on
nested subsets of the training data (one seeded order, each size its first N, so a smaller set lies inside every
larger one; the same validation slice for all), scores each on the golden set through the normal run path, and
fits a learning curve (evals/analyse/learning_curve.py) whose extrapolations say how many examples would reach
the baseline.

With `--on openai` each size is a hosted fine-tune instead (NAME-nN, trained and billed by the API, its cost per
size recorded). Everything lands in finetune/curves/NAME/ (git-ignored): an adapter per size (nN/; hosted ones in
finetune/hosted/NAME-nN/), and curve.json, written after each size, so a killed curve continues at the size it
stopped in (from that size's checkpoint, or re-attached to its running job).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


def nested_subsets(samples: Sequence[Sample], settings: Any) -> tuple[list[Sample], list[Sample]]:
    """(the training examples in one seeded order, the validation slice): size N trains on the first N."""
    return split(samples, settings.val_fraction, settings.seed)


@dataclass
class Sizes:
    """How a curve's sizes are trained: the task, the fine-tune's settings and name, and how training reports."""

    task: Task
    config: Any  # FinetuneConfig, or HostedConfig: both have the val_fraction and seed of the split
    name: str
    allow_overlap: bool = False
    console: Any = None
    progress_mode: str = "bar"


class LocalSizes(Sizes):
    """Each size a LoRA adapter trained here (finetune/trainer.py) in the curve's folder, nN/."""

    @property
    def base(self) -> str:
        return self.config.base

    def entry(self) -> ModelConfig:
        """The task entry of the fine-tune: the prompt every size trains with and is served with."""
        return self.task.model_config(f"{self.config.base}+lora:{adapter_dir(self.name)}")

    def identity(self) -> dict[str, Any]:
        return self.config.math_dict()

    def train(self, n: int, subset: tuple[list[Sample], list[Sample]], total: int) -> tuple[ModelConfig, dict]:
        out = curve_dir(self.name) / f"n{n}"
        if not (out / MANIFEST_FILE).is_file():  # trained already when only its scoring was cut short
            if self.console is not None:
                self.console.print(f"curve {self.name}: training on {n} of {total} examples -> {out}",
                                   highlight=False)
            train(self.task, self.config, out, resume=(checkpoint_dir(out) / "state.pt").is_file(), force=True,
                  allow_overlap=self.allow_overlap, console=self.console, progress_mode=self.progress_mode,
                  subset=subset, prompt_model=self.entry())
        manifest = json.loads((out / MANIFEST_FILE).read_text(encoding="utf-8"))
        hourly = self.task.decision.self_hosted.gpu_hourly_usd if self.task.decision.self_hosted else None
        wall, hardware = float(manifest["wall_seconds"]), manifest.get("hardware") or {}
        return dataclasses.replace(self.entry(), spec=ModelSpec.parse(f"{self.config.base}+lora:{out}")), {
            "where": str(out), "wall_seconds": wall, "tokens": manifest["tokens"], "steps": manifest["steps"]["done"],
            "epochs": len(manifest["epochs"]), "device": hardware.get("device"), "cpu": hardware.get("cpu"),
            "cost_usd": wall / 3600 * hourly if hourly else None,
            "cost_basis": (f"the training's wall time on {hardware.get('device')} at "
                           f"decision.self_hosted.gpu_hourly_usd ${hourly:g}" if hourly else
                           "no decision.self_hosted.gpu_hourly_usd set")}


class HostedSizes(Sizes):
    """Each size a hosted fine-tune (finetune/hosted.py) named NAME-nN, trained and billed by the provider's API;
    a size whose job is still running is re-attached to, never started twice."""

    @property
    def kind(self) -> Any:
        from finetune.hosted import fine_tune_class

        return fine_tune_class(self.config)  # the vendor, named by the settings' class

    @property
    def base(self) -> str:
        return f"{self.kind.provider}:{self.config.base}"

    def entry(self) -> ModelConfig:
        return self.task.model_config(f"{self.kind.provider}:ft@{self.name}")

    def identity(self) -> dict[str, Any]:
        return {k: v for k, v in self.config.to_dict().items() if k != "poll_s"}

    def train(self, n: int, subset: tuple[list[Sample], list[Sample]], total: int) -> tuple[ModelConfig, dict]:
        from evals.providers.finetuned import read_manifest
        from finetune.hosted import run_hosted

        kind, size = self.kind, f"{self.name}-n{n}"
        spec = f"{kind.provider}:ft@{size}"
        manifest = read_manifest(size)
        if not (manifest or {}).get("fine_tuned_model"):
            if self.console is not None:
                self.console.print(f"curve {self.name}: fine-tuning on {n} of {total} examples -> {spec}",
                                   highlight=False)
            running = ((manifest or {}).get("job") or {}).get("status") in (*kind.active, kind.succeeded)
            manifest = run_hosted(self.task, self.config, size, resume=running, force=True,  # a failed job: anew
                                  allow_overlap=self.allow_overlap, console=self.console,
                                  progress_mode=self.progress_mode, subset=subset, prompt_model=self.entry())
        job, cost = manifest.get("job") or {}, manifest.get("cost") or {}
        wall = (job["finished_at"] - job["created_at"]) if job.get("finished_at") and job.get("created_at") else None
        return dataclasses.replace(self.entry(), spec=ModelSpec.parse(spec)), {
            "where": f"finetune/hosted/{size}", "wall_seconds": wall, "tokens": manifest.get("trained_tokens"),
            "job": job.get("id"), "device": f"{kind.vendor}'s fine-tuning API", "cost_usd": cost.get("training_cost_usd"),
            "cost_basis": cost.get("basis") or "trained tokens x the training price (prices.yaml)"}


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


def run_curve(sizes_of: LocalSizes | HostedSizes, sizes_text: str, evaluate: Evaluate, store: Store, *,
              force: bool = False, baseline: tuple[str, str, float] | None = None,
              on_point: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Train and score every size not yet in the curve, then fit it; returns the curve (also in curve.json).
    `baseline`: (run id, model, match rate) of the prompted model to reach, for the examples-needed answer."""
    task = sizes_of.task
    samples = load_train(task)
    overlap: list[Overlap] = check_overlap(task, samples, allow=sizes_of.allow_overlap)
    order, val = nested_subsets(samples, sizes_of.config)
    sizes = parse_sizes(sizes_text, len(order))
    folder = curve_dir(sizes_of.name)
    entry = sizes_of.entry()
    golden = load_samples(task)
    wanted = plain({"task": task.name, "base": sizes_of.base, "config": sizes_of.identity(),
                    "train_hash": samples_hash(samples), "golden_hash": samples_hash(golden),
                    "prompt": {"system": entry.system, "few_shot": entry.few_shot}})
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
        model, trained = sizes_of.train(n, (order[:n], val), len(order))
        run_id = evaluate(model)
        point = score_point(n, model, run_id, trained, golden, store)
        record["points"] = sorted([*record["points"], point], key=lambda p: p["size"])
        write_atomic(folder / CURVE_FILE, json.dumps(record, indent=1, sort_keys=True) + "\n")
        if on_point:
            on_point(point)
    record["fit"] = fit_curve(record, baseline, task)
    write_atomic(folder / CURVE_FILE, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return record


def score_point(n: int, model: ModelConfig, run_id: str, trained: dict[str, Any], golden: Sequence[Sample],
                store: Store) -> dict[str, Any]:
    """One size: its golden-set run's match rate (Wilson 95% CI), metric means and each example's match, beside
    what its training took (wall time, tokens, cost)."""
    from evals.analyse.summary import summarize_stored

    summary = summarize_stored(run_id, store)
    passed = {r["example_id"]: bool(r["passed"]) for r in store.result_rows(run_id)}
    low, high = wilson_interval(summary.matches, summary.n)
    return {
        "size": n, "model_spec": str(model.spec), "run_id": run_id,
        "matches": summary.matches, "n": summary.n, "rate": summary.match_rate, "ci95": [low, high],
        "errors": summary.errors, "metrics": summary.metrics, "train": trained,
        "passed": [int(passed.get(s.id, False)) for s in golden],  # golden order; an error or a gap is a miss
    }


def fit_curve(record: dict[str, Any], baseline: tuple[str, str, float] | None, task: Task) -> dict[str, Any] | None:
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
