"""Metrics, each registered by name. A metric factory's keyword arguments are its configuration;
it returns a callable `(ctx: ScoreContext) -> Score` (async or not). Aggregation lives in evals.analyse.aggregate.

A task names a metric by its registered name, or as `file.py:function` / `module:function` for a
metric written beside task.yaml (see `load_callable`): only task.yaml may name code that way; a golden
line, an imported config or a store is data and names registered metrics only (`names_code`). A plain function whose first parameter is
`ctx` is the metric itself, its keyword arguments after `ctx` its configuration; any other callable
is a factory returning one. Either may return a Score, a float or a bool.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from evals._util import suggest
from evals.errors import EvalsError
from evals.registry import Registry
from evals.types import ModelSpec, Score, ScoreContext, Usage

if TYPE_CHECKING:
    from evals.types import MetricSpec, Task

BUILTIN_MODULES = ("text", "structure", "sets", "overlap", "semantic", "judges", "javascript", "assertions", "tools")


class Metric(Protocol):
    async def __call__(self, ctx: ScoreContext) -> Score: ...


@runtime_checkable
class CallsModels(Protocol):
    """A metric that calls models (a judge) names them, so the runner can open them before the first example."""

    models: tuple[str, ...]


def models_called(metric: Metric) -> tuple[str, ...]:
    return tuple(metric.models) if isinstance(metric, CallsModels) else ()


@runtime_checkable
class ReadsRuns(Protocol):
    """A metric that reads stored runs' answers (through ScoreContext.stored_answers) names them, as
    (run id, store path or None), so the runner can read them before the first example."""

    runs: tuple[tuple[str, str | None], ...]


def runs_read(metric: Metric) -> tuple[tuple[str, str | None], ...]:
    return tuple(metric.runs) if isinstance(metric, ReadsRuns) else ()


def _load_builtins() -> None:
    for name in BUILTIN_MODULES:
        importlib.import_module(f"evals.metrics.{name}")


metrics: Registry[Callable[..., Metric]] = Registry("metric", _load_builtins)
register_metric = metrics.register


# --- metrics named by file or module --------------------------------------------------------


def names_code(name: str) -> bool:
    """Whether a metric name is a code reference (`file.py:function`, `module:function`), not a registered name."""
    return ":" in name



def file_arg(base: Path, value: Any) -> Path | None:
    """The file beside task.yaml that a string argument names, if it names one."""
    if not isinstance(value, str) or not value or "\n" in value or len(value) > 255:
        return None
    try:
        path = base / value
        return path if path.is_file() else None
    except OSError:
        return None


class MissingFile(EvalsError):
    """A metric argument names a file that is not there; build_metric says where it looked and what is close."""

    def __init__(self, name: str, what: str = "file"):
        super().__init__(f"{what} '{name}' not found")
        self.name, self.what = name, what

    def beside(self, base: Path) -> EvalsError:
        target = base / self.name
        files = [p.name for p in target.parent.iterdir() if p.is_file()] if target.parent.is_dir() else []
        close = suggest(target.name, files, style="{}")
        hint = f"; did you mean '{(Path(self.name).parent / close).as_posix()}'?" if close else ""
        return EvalsError(f"{self.what} '{self.name}' not found beside task.yaml ({base}){hint}")


def _import_file(path: Path) -> Any:
    name = f"evals_user_metrics_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise EvalsError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise EvalsError(f"{path.name} failed to import: {type(e).__name__}: {e}") from None
    return module


def load_callable(name: str, base: Path) -> Callable[..., Any]:
    """`file.py:attr` (a file beside task.yaml), or `module:attr` (module.py beside it, else importable)."""
    where, _, attr = name.rpartition(":")
    local = base / (where if where.endswith(".py") else f"{where.replace('.', '/')}.py")
    if local.is_file():
        module = _import_file(local)
    elif where.endswith(".py"):
        raise EvalsError(f"metric '{name}': no file {local}")
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise EvalsError(f"metric '{name}': no {where}.py beside task.yaml and no module '{where}' ({e})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        known = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise EvalsError(f"metric '{name}': {where} has no function '{attr}'. It has: {', '.join(known) or 'none'}")
    return fn


def _is_plain_metric(fn: Callable[..., Any]) -> bool:
    params = list(inspect.signature(fn).parameters)
    return bool(params) and params[0] == "ctx"


def factory_for(spec: MetricSpec, base: Path) -> Callable[..., Any]:
    """The callable whose keyword arguments are this metric's configuration."""
    if not names_code(spec.name):
        return metrics.get(spec.name)
    fn = load_callable(spec.name, base)
    return partial(partial, fn) if _is_plain_metric(fn) else fn


def _config_signature(spec: MetricSpec, base: Path) -> inspect.Signature:
    fn = load_callable(spec.name, base) if names_code(spec.name) else metrics.get(spec.name)
    sig = inspect.signature(fn)
    if names_code(spec.name) and _is_plain_metric(fn):
        sig = sig.replace(parameters=list(sig.parameters.values())[1:])
    return sig


def metric_arguments(spec: MetricSpec, base: Path) -> list[str] | None:
    """The arguments the metric takes (None: any, it takes **kwargs); an unknown metric name raises."""
    params = _config_signature(spec, base).parameters.values()
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind != p.VAR_POSITIONAL]


def _resolve_paths(args: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """String arguments naming a file beside task.yaml become absolute paths."""
    return {k: str(path) if (path := file_arg(base, v)) else v for k, v in args.items()}


def build_metric(spec: MetricSpec, task: Task) -> Metric:
    try:
        return _build(spec, task)
    except MissingFile as e:
        raise e.beside(task.dir) from None


def _build(spec: MetricSpec, task: Task) -> Metric:
    if not names_code(spec.name):
        return metrics.create(spec.name, **_resolve_paths(spec.args, task.dir))
    factory = factory_for(spec, task.dir)
    try:
        _config_signature(spec, task.dir).bind(**spec.args)
    except TypeError as e:
        raise EvalsError(f"bad arguments for metric '{spec.name}': {e}") from None
    try:
        return factory(**_resolve_paths(spec.args, task.dir))
    except EvalsError:
        raise
    except Exception as e:
        raise EvalsError(f"metric '{spec.name}': {type(e).__name__}: {e}") from None


def build_metrics(task: Task) -> dict[str, Metric]:
    return {spec.id: build_metric(spec, task) for spec in task.metrics}


def metric_config(spec: MetricSpec, base: Path) -> dict[str, Any]:
    """The metric's full configuration: its arguments with every default filled in (for the manifest)."""
    bound = _config_signature(spec, base).bind_partial(**spec.args)
    bound.apply_defaults()
    return {k: v for k, v in bound.arguments.items() if k not in ("args", "kwargs")}


def with_judge(task: Task, judge: str) -> Task:
    """The task with every metric that takes a `judge` argument using this judge model instead."""
    try:
        ModelSpec.parse(judge)
    except ValueError as e:
        raise EvalsError(f"--judge: {e}") from None
    specs = tuple(judged_by(m, task.dir, judge) for m in task.metrics)
    return dataclasses.replace(task, metrics=specs, judge=judge)


def judged_by(spec: MetricSpec, base: Path, judge: str | None) -> MetricSpec:
    """The metric with `judge` as its judge model, if it takes one (and a judge is given)."""
    if judge is None or "judge" not in _config_signature(spec, base).parameters:
        return spec
    return dataclasses.replace(spec, args={**spec.args, "judge": judge})


def describe_metrics() -> list[dict[str, Any]]:
    """Every registered metric: name, one-line description, arguments with defaults, defining module."""
    out = []
    for name in metrics.names():
        factory = metrics.get(name)
        doc = inspect.getdoc(factory) or ""
        args = []
        for p in inspect.signature(factory).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            required = p.default is p.empty
            args.append({"name": p.name, "required": required, "default": None if required else p.default})
        out.append({"name": name, "description": doc.split("\n", 1)[0], "args": args,
                    "module": getattr(factory, "__module__", "")})
    return out


# --- scoring ---------------------------------------------------------------------------------


def as_score(result: Any) -> Score:
    """A metric's return value as a Score: a Score, a number, a bool, or None (no verdict)."""
    if isinstance(result, Score):
        return result
    if result is None:
        return Score(None, error="the metric returned no value")
    if isinstance(result, (bool, int, float)):
        return Score(float(result))
    raise TypeError(f"a metric must return a Score, a number or a bool, not {type(result).__name__}")


class _Metered:
    """A metric's view of the model caller that adds up what its calls used."""

    def __init__(self, inner: Any):
        self._inner = inner
        self.usage = Usage()

    async def generate(self, spec, messages, params=None):  # noqa: ANN001, ANN201 - see ModelCaller
        completion = await self._inner.generate(spec, messages, params)
        if completion.error is None or completion.input_tokens or completion.output_tokens:
            self.usage = self.usage.add(completion)  # a call that never reached a model is not counted
        return completion


async def score_one(metric: Metric, ctx: ScoreContext) -> Score:
    """One metric on one example; a metric that raises is recorded as an error, not raised.
    What the metric's model calls used is recorded on its Score."""
    meter = _Metered(ctx.models) if ctx.models is not None else None
    try:
        result = metric(dataclasses.replace(ctx, models=meter) if meter else ctx)
        score = as_score(await result if inspect.isawaitable(result) else result)
    except Exception as e:  # a broken metric must not end the run
        score = Score(value=None, error=f"{type(e).__name__}: {e}")
    if meter is not None and meter.usage.calls:
        score = dataclasses.replace(score, usage=meter.usage)
    return score


async def score_all(metric_map: Mapping[str, Metric], ctx: ScoreContext) -> dict[str, Score]:
    """Every metric on one example, by metric id."""
    return {metric_id: await score_one(metric, ctx) for metric_id, metric in metric_map.items()}


def passes(scores: Mapping[str, Score], rule: Mapping[str, float]) -> bool:
    """An example matches when every metric in the pass rule reaches its threshold."""
    return all(
        (s := scores.get(metric_id)) is not None and s.value is not None and s.value >= threshold
        for metric_id, threshold in rule.items()
    )
