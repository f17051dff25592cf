"""Per-example checks: assertions a golden line makes about its own answer, beside the task's metrics.

A check is written as promptfoo writes an assertion, `{"type": "icontains", "value": "Dónde está"}`
(`not-` in front negates it), or as any registered metric (built-in or an installed plugin) with its
arguments, `{"metric": "json_schema", "schema": {...}}` (`not: true` negates it). A golden line is data:
it never names code (`file.py:function`, `module:function`); only task.yaml's `metrics:` may, and a
metric-form check may name such a metric by its task.yaml id (`{"metric": "python", "index": 0}`). Either may
add `id` (the score goes under `check.<id>`, else `check.<type>`), `threshold` (the value that passes;
default 1, `similar` 0.75) and `weight`; a type check may add `field`, a dotted path into the JSON answer
that it looks at instead of the whole answer. Each check is scored through the metric registry and stored
as its own 0/1 score; `checks` is the weighted share that passed, and the pass rule requires all of them
unless task.yaml's `pass:` gives `checks` a lower threshold.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from evals._util import suggest
from evals.errors import EvalsError
from evals.metrics import Metric, build_metric, judged_by, metric_arguments, names_code, score_one
from evals.metrics.structure import NoAnswer, answer_value, as_text
from evals.types import CHECK_PREFIX, CHECKS, Check, MetricSpec, Sample, Score, ScoreContext, Task

# type: (metric, fixed arguments, where the check's value goes: a metric argument, or None for the reference)
TYPES: dict[str, tuple[str, dict[str, Any], str | None]] = {
    "equals": ("exact_match", {"ignore_case": False}, None),
    "contains": ("includes", {"ignore_case": False}, "text"),
    "icontains": ("includes", {"ignore_case": True}, "text"),
    "contains-all": ("includes", {"ignore_case": False}, "text"),
    "icontains-all": ("includes", {"ignore_case": True}, "text"),
    "contains-any": ("includes", {"ignore_case": False}, None),  # a list as the reference: any one counts
    "icontains-any": ("includes", {"ignore_case": True}, None),
    "starts-with": ("regex", {}, "pattern"),
    "regex": ("regex", {}, "pattern"),
    "is-json": ("json_valid", {}, "schema"),
    "contains-json": ("contains_json", {}, "schema"),
    "similar": ("embedding_similarity", {}, None),
    "llm-rubric": ("rubric_judge", {"scale": "pass_fail"}, "rubric"),
    "javascript": ("javascript", {}, "code"),  # promptfoo JavaScript, run in a sandboxed V8 (metrics/javascript.py)
    "levenshtein": ("levenshtein", {}, None),
    "rouge-n": ("rouge_n", {}, None),
    "bleu": ("bleu", {}, None),
    "is-valid-openai-tools-call": ("openai_tools_call", {}, "tools"),
    "tool-call-f1": ("tool_calls_f1", {"match": "name"}, None),  # value: the expected function names
    "cost": ("max_cost", {}, None),
    "latency": ("max_latency", {}, None),
}
OPTIONAL_VALUE = ("is-json", "contains-json", "is-valid-openai-tools-call", "cost", "latency")
LISTS = ("contains-all", "icontains-all", "contains-any", "icontains-any", "tool-call-f1")
STRINGS = ("contains", "icontains", "starts-with", "regex", "llm-rubric", "javascript", "levenshtein", "rouge-n", "bleu")
DEFAULT_THRESHOLD = {"similar": 0.75, "rouge-n": 0.75, "bleu": 0.5}
# types whose `threshold` is their metric's argument (the metric then scores pass as 1); None: required
THRESHOLD_ARGUMENT = {"javascript": ("threshold", None), "levenshtein": ("max_distance", 5), "cost": ("usd", None),
                      "latency": ("ms", None)}
ASSERT_SET = "assert-set"  # promptfoo's group of assertions, passing when `threshold` of their weight does
UNSUPPORTED = "unsupported"  # an assertion an importer could not carry: it never passes, and says why
COMMON_KEYS = {"id", "threshold", "weight"}
TYPE_KEYS = COMMON_KEYS | {"type", "value", "field", "transform"}
UNSUPPORTED_KEYS = COMMON_KEYS | {"type", "value", "was"}


class _Bad(Exception):
    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.message, self.key = message, key


def parse_checks(raw: Any, task: Task, *, file: str, line: int, built: set[str] | None = None) -> tuple[Check, ...]:
    """The checks of one golden line, each validated (its metric built once per distinct configuration,
    remembered in `built`); a mistake names the file, line and field, e.g. `checks.1.value`."""
    name = task.checks_field or "checks"
    if raw is None or raw == []:
        return ()
    if not isinstance(raw, list):
        raise EvalsError("expected a list of checks", file=file, line=line, field=name)
    checks: list[Check] = []
    seen: dict[str, int] = {}
    built = set() if built is None else built
    for i, item in enumerate(raw):
        try:
            check = _task_metric(_parse_one(item), task)
            _build(check, item, task, built)
        except _Bad as e:
            raise EvalsError(e.message, file=file, line=line,
                             field=f"{name}.{i}" + (f".{e.key}" if e.key else "")) from None
        seen[check.id] = seen.get(check.id, 0) + 1
        if seen[check.id] > 1:
            check = dataclasses.replace(check, id=f"{check.id}#{seen[check.id]}")
        checks.append(check)
    return tuple(checks)


def _task_metric(check: Check, task: Task) -> Check:
    """A check naming the id of a metric of task.yaml's own code (`file.py:function`) runs that metric, with
    task.yaml's arguments plus the check's: the user chose that code; the golden line only points at it."""
    if check.parts:
        return dataclasses.replace(check, parts=tuple(_task_metric(p, task) for p in check.parts))
    own = next((m for m in task.metrics if m.id == check.metric.name and names_code(m.name)), None)
    if own is None:
        return check
    return dataclasses.replace(check, metric=MetricSpec(check.metric.id, own.name, {**own.args, **check.metric.args}))


def _build(check: Check, item: Mapping[str, Any], task: Task, built: set[str], where: str = "") -> None:
    """Build the check's metric (an assert-set's, each of its parts') once per distinct configuration."""
    for i, part in enumerate(check.parts):
        _build(part, item["value"][i], task, built, f"{where}value.{i}.")
    key = json.dumps([check.metric.name, check.metric.args], sort_keys=True, default=str)
    if check.metric.name in (UNSUPPORTED, ASSERT_SET) or key in built:
        return
    try:
        if "metric" in item:
            _check_arguments(check.metric, task, item)
        build_metric(check.metric, task)
    except EvalsError as e:
        raise _Bad(e.message, where + ("metric" if "metric" in item else "value")) from None
    built.add(key)


def _check_arguments(spec: MetricSpec, task: Task, item: Mapping[str, Any]) -> None:
    """A metric-form check names only arguments its metric takes (a misspelt one points at its key)."""
    takes = metric_arguments(spec, task.dir)
    for key in spec.args if takes is not None else ():
        if key not in takes:
            allowed = [*takes, *sorted(COMMON_KEYS | {"metric", "not", "reference"})]
            raise _Bad(f"metric '{spec.name}' has no argument '{key}'{suggest(key, allowed)} It takes: "
                       f"{', '.join(takes) or 'no arguments'}; a check also takes: id, threshold, weight, not, "
                       "reference", key)


def _number(item: Mapping[str, Any], key: str, default: float) -> float:
    value = item.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(f"expected a number, got {value!r}", key)
    if key == "weight" and value <= 0:
        raise _Bad("a weight must be above 0", key)
    return float(value)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _parse_one(item: Any) -> Check:
    if not isinstance(item, dict):
        raise _Bad("expected a mapping: {type: ASSERTION, value: ...} or {metric: NAME, ARGUMENT: ...}")
    if ("type" in item) == ("metric" in item):
        raise _Bad("a check needs either 'type' (an assertion such as icontains) or 'metric' (a metric name)")
    return _parse_type(item) if "type" in item else _parse_metric(item)


def _check_keys(item: Mapping[str, Any], allowed: set[str]) -> None:
    for key in item:
        if key not in allowed:
            raise _Bad(f"unknown key '{key}'{suggest(key, allowed)} Allowed: {', '.join(sorted(allowed))}", key)


def _parse_type(item: Mapping[str, Any]) -> Check:
    written = item["type"]
    if not isinstance(written, str):
        raise _Bad(f"expected a check type, got {written!r}", "type")
    negate, base = written.startswith("not-"), written.removeprefix("not-")
    if written == ASSERT_SET:
        return _parse_set(item)
    if base == UNSUPPORTED:
        _check_keys(item, UNSUPPORTED_KEYS)
        was = str(item.get("was") or "an assertion")
        return Check(id=f"{CHECK_PREFIX}{item.get('id') or was}", metric=MetricSpec(UNSUPPORTED, UNSUPPORTED),
                     label=f"{was} {_short(item.get('value', ''))} (not carried over: evals cannot run it)")
    if base not in TYPES:
        known = [*TYPES, *(f"not-{t}" for t in TYPES)]
        raise _Bad(f"unknown check type '{written}'{suggest(written, known)} Types: {', '.join(TYPES)} "
                   "(each also as not-TYPE), or {metric: NAME, ...} for any metric", "type")
    _check_keys(item, TYPE_KEYS)
    metric, fixed, destination = TYPES[base]
    value = item.get("value")
    if value is None or value == "" or value == []:
        if base not in OPTIONAL_VALUE:
            raise _Bad(f"a '{written}' check needs a value", "value")
        value = None
    if base in LISTS:
        value = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise _Bad("expected a list of strings (or one string of comma-separated ones)", "value")
    elif base in STRINGS and not isinstance(value, str):
        raise _Bad(f"expected a string, got {value!r}", "value")
    elif base == "is-valid-openai-tools-call" and value is not None and not isinstance(value, list):
        raise _Bad("expected the list of tools the model was offered", "value")
    if base == "starts-with":
        value = "^" + re.escape(value)
    if base in OPTIONAL_VALUE and isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise _Bad(f"the schema is not JSON: {e.msg}", "value") from None
    args = dict(fixed)
    if destination is not None and value is not None:
        args[destination] = value
    threshold = _number(item, "threshold", DEFAULT_THRESHOLD.get(base, 1.0))
    transform = _transform(item)
    label = written + (f" {_short(item['value'])}" if item.get("value") not in (None, "", []) else "")
    if base in THRESHOLD_ARGUMENT:
        argument, default = THRESHOLD_ARGUMENT[base]
        if "threshold" in item:
            args[argument] = threshold
            label += f" (threshold {threshold:g})"
        elif default is None and base != "javascript":
            raise _Bad(f"a '{written}' check needs a threshold", "threshold")
        threshold = 1.0
    if base == "javascript" and transform:  # its code sees the transformed value itself, not its text
        args["transform"], transform = list(transform), ()
    return Check(
        id=f"{CHECK_PREFIX}{item.get('id') or written}",
        metric=MetricSpec(id=str(item.get("id") or written), name=metric, args=args),
        label=label, reference=value, has_reference=destination is None and value is not None,
        negate=negate, threshold=threshold, weight=_number(item, "weight", 1.0), field=_field(item),
        transform=transform,
    )


def _transform(item: Mapping[str, Any]) -> tuple[str, ...]:
    value = item.get("transform")
    if value is None:
        return ()
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise _Bad("expected JavaScript source, or a list of it applied in order", "transform")
    return tuple(values)


def _parse_set(item: Mapping[str, Any]) -> Check:
    _check_keys(item, COMMON_KEYS | {"type", "value"})
    parts = item.get("value")
    if not isinstance(parts, list) or not parts:
        raise _Bad("an assert-set needs its checks as a list under 'value'", "value")
    parsed = []
    for i, part in enumerate(parts):
        try:
            check = _parse_one(part)
        except _Bad as e:
            raise _Bad(e.message, f"value.{i}" + (f".{e.key}" if e.key else "")) from None
        parsed.append(check)
    threshold = _number(item, "threshold", 1.0)
    return Check(id=f"{CHECK_PREFIX}{item.get('id') or ASSERT_SET}", metric=MetricSpec(ASSERT_SET, ASSERT_SET),
                 label=f"assert-set of {len(parsed)}" + (f" (threshold {threshold:g})" if "threshold" in item else ""),
                 threshold=threshold, weight=_number(item, "weight", 1.0), parts=tuple(parsed))


def _field(item: Mapping[str, Any]) -> str | None:
    value = item.get("field")
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise _Bad(f"expected a dotted path into the JSON answer, such as order.status; got {value!r}", "field")
    return value


def _parse_metric(item: Mapping[str, Any]) -> Check:
    name = item["metric"]
    if not isinstance(name, str) or not name.strip():
        raise _Bad(f"expected a metric name, got {name!r}", "metric")
    if names_code(name):
        raise _Bad(f"'{name}' names code, and a golden line is data: it may name only registered metrics and "
                   "check types (`evals metrics` lists them); a metric of your own goes in task.yaml's metrics:",
                   "metric")
    negate = item.get("not", False)
    if not isinstance(negate, bool):
        raise _Bad(f"expected true or false, got {negate!r}", "not")
    args = {k: v for k, v in item.items() if k not in COMMON_KEYS | {"metric", "not", "reference"}}
    short = name.rpartition(":")[2]
    return Check(
        id=f"{CHECK_PREFIX}{item.get('id') or short}",
        metric=MetricSpec(id=str(item.get("id") or short), name=name, args=args),
        label=("not " if negate else "") + short + "".join(f" {k}={_short(v)}" for k, v in args.items()),
        reference=item.get("reference"), has_reference="reference" in item, negate=negate,
        threshold=_number(item, "threshold", 1.0), weight=_number(item, "weight", 1.0),
    )


def pass_rule_for(task: Task, sample: Sample) -> dict[str, float]:
    """The task's pass rule for this example: all its checks must pass (or `pass: {checks: T}` of them)
    when it has checks; the rule's `checks` entry is moot for an example without any."""
    rule = {k: v for k, v in task.pass_rule.items() if k != CHECKS}
    if sample.checks:
        rule[CHECKS] = task.pass_rule.get(CHECKS, 1.0)
    return rule


class CheckScorer:
    """Scores examples' checks for one task, building each distinct metric configuration once (so an
    embedding model or a judge is shared by every example that uses it)."""

    def __init__(self, task: Task):
        self._task = task
        self._metrics: dict[str, Metric] = {}

    def metric(self, check: Check) -> Metric:
        spec = judged_by(check.metric, self._task.dir, self._task.judge)
        key = json.dumps([spec.name, spec.args], sort_keys=True, default=str)
        if key not in self._metrics:
            self._metrics[key] = build_metric(spec, self._task)
        return self._metrics[key]

    def metrics(self, samples: Iterable[Sample]) -> dict[str, Metric]:
        """Every distinct check metric these samples use, by a readable id (to open judges up front)."""
        def flat(checks: Iterable[Check]) -> Iterable[Check]:
            for c in checks:
                yield from flat(c.parts) if c.parts else (c,)

        return {f"{c.id} ({c.metric.name})": self.metric(c) for s in samples for c in flat(s.checks)
                if c.metric.name != UNSUPPORTED}

    async def score(self, checks: Iterable[Check], ctx: ScoreContext) -> dict[str, Score]:
        """Each check's 0/1 score (its metric's own value in details) and `checks`, the weighted share passed."""
        scores, share, failed = await self._scores(checks, ctx)
        n = len(scores)
        summary = f"{n - len(failed)}/{n} checks passed" + (f"; failed: {'; '.join(failed)}" if failed else "")
        scores[CHECKS] = Score(share, explanation=summary,
                               details={"failed": [i for i, s in scores.items() if s.value != 1.0]})
        return scores

    async def _scores(self, checks: Iterable[Check], ctx: ScoreContext) -> tuple[dict[str, Score], float, list[str]]:
        """(each check's score, the weighted share that passed, the labels of those that failed)."""
        scores: dict[str, Score] = {}
        total = passed = 0.0
        failed: list[str] = []
        for check in checks:
            score = await self._score(check, ctx)
            scores[check.id] = score
            total += check.weight
            if score.value == 1.0:
                passed += check.weight
            else:  # with the code's own reason (a javascript check's), so `show` says why
                reason = score.details.get("reason") or score.details.get("error")
                failed.append(f"{check.label}: {reason}" if reason else check.label)
        return scores, passed / total, failed

    async def _score(self, check: Check, ctx: ScoreContext) -> Score:
        if check.metric.name == UNSUPPORTED:
            return Score(None, error=f"{check.label}; rewrite it as an evals check (see docs/reference/tasks.md, Per-example checks)")
        if check.parts:  # promptfoo's assert-set: its weighted share of passes reaches its threshold
            scores, share, failed = await self._scores(check.parts, ctx)
            ok = share >= check.threshold
            why = "passed" if ok else f"{check.label} failed: {share:.2f} of it passed; failed: {'; '.join(failed)}"
            return Score(float(ok), explanation=why, details={"share": share, "threshold": check.threshold,
                                                              "parts": {k: v.as_dict() for k, v in scores.items()}})
        if check.transform:  # promptfoo's transforms, in the sandboxed V8: the metric sees what they return
            from evals.metrics.javascript import JSError, transformed

            try:
                text = await transformed(check.transform, ctx)
            except JSError as e:
                return Score(None, error=f"{check.label}: transform {e}")
            ctx = dataclasses.replace(ctx, completion=dataclasses.replace(ctx.completion, text=text))
        if check.has_reference:
            ctx = dataclasses.replace(ctx, sample=dataclasses.replace(ctx.sample, reference=check.reference))
        if check.field:  # like promptfoo's transform: the check looks at that field of the answer only
            try:
                text = as_text(answer_value(ctx, check.field))
            except NoAnswer as e:
                return Score(0.0, explanation=f"{check.label} failed: {e}")
            ctx = dataclasses.replace(ctx, completion=dataclasses.replace(ctx.completion, text=text))
        inner = await score_one(self.metric(check), ctx)
        details = {"metric": check.metric.name, "value": inner.value, "threshold": check.threshold,
                   "negated": check.negate, "weight": check.weight, **inner.details}
        if inner.value is None:
            return dataclasses.replace(inner, details=details, explanation=f"{check.label}: {inner.explanation}")
        ok = check.passed(inner.value) and not inner.details.get("error")  # code that failed fails, negated or not
        if inner.details.get("error"):
            why = f"{check.label} failed: {inner.explanation}"
        elif ok:
            why = "passed"
        elif check.negate:
            why = f"{check.label} failed: the answer matches what it must not" + (
                f" ({inner.value:.2f} >= {check.threshold:g})" if inner.value not in (0.0, 1.0) else "")
        else:
            why = f"{check.label} failed: " + (inner.explanation or f"{inner.value:.2f} < {check.threshold:g}")
        return Score(float(ok), explanation=why, details=details, usage=inner.usage)

