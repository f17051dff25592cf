"""Metrics, each registered by name. A metric factory's keyword arguments are its configuration;
it returns an async callable `(ctx: ScoreContext) -> Score`. Aggregation lives in evals.stats.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from evals.registry import Registry
from evals.types import Score, ScoreContext

if TYPE_CHECKING:
    from evals.tasks import MetricSpec, Task

BUILTIN_MODULES = ("structure", "sets", "text")


class Metric(Protocol):
    async def __call__(self, ctx: ScoreContext) -> Score: ...


def _load_builtins() -> None:
    for name in BUILTIN_MODULES:
        importlib.import_module(f"evals.metrics.{name}")


metrics: Registry[Callable[..., Metric]] = Registry("metric", _load_builtins)
register_metric = metrics.register


def _resolve_paths(args: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """String arguments naming a file beside task.yaml become absolute paths."""
    return {k: str(base / v) if isinstance(v, str) and (base / v).is_file() else v for k, v in args.items()}


def build_metric(spec: MetricSpec, task: Task) -> Metric:
    return metrics.create(spec.name, **_resolve_paths(spec.args, task.dir))


def build_metrics(task: Task) -> dict[str, Metric]:
    return {spec.id: build_metric(spec, task) for spec in task.metrics}


async def score_all(metric_map: Mapping[str, Metric], ctx: ScoreContext) -> dict[str, Score]:
    """Run every metric on one example; a metric that raises is recorded as an error, not raised."""
    scores: dict[str, Score] = {}
    for metric_id, metric in metric_map.items():
        try:
            scores[metric_id] = await metric(ctx)
        except Exception as e:  # a broken metric must not end the run
            scores[metric_id] = Score(value=None, error=f"{type(e).__name__}: {e}")
    return scores


def passes(scores: Mapping[str, Score], rule: Mapping[str, float]) -> bool:
    """An example matches when every metric in the pass rule reaches its threshold."""
    return all(
        (s := scores.get(metric_id)) is not None and s.value is not None and s.value >= threshold
        for metric_id, threshold in rule.items()
    )

