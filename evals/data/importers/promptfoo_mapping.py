"""promptfoo assertions -> evals task metrics, references and per-example checks.

An assertion that every test makes the same way becomes a task metric (a value shared by all tests is
the metric's argument, a value that differs per test the example's reference); every other assertion
becomes a check on its own example (`assert:` on the golden line, see evals.metrics.checks). JavaScript
assertions and transforms travel as source for the sandboxed engine (evals.metrics.javascript): a test's
`options.transform`, then the assertion's own. An assertion evals cannot run (python, webhook...) becomes an
`unsupported` check, so its example never passes silently, and is listed per test.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from evals.errors import EvalsError
from evals.metrics.checks import ASSERT_SET, TYPES, UNSUPPORTED

SUPPORTED = (*TYPES, ASSERT_SET)  # the assertion types evals scores, each also as not-TYPE in a check
TASK_WIDE = ("equals", "contains", "icontains", "contains-any", "icontains-any", "starts-with", "regex", "is-json",
             "contains-json", "similar", "llm-rubric")  # types a task metric can carry for every test at once
REFERENCE_PRIORITY = ("equals", "similar", "contains-any", "icontains-any", "contains", "icontains", "llm-rubric")
NO_REFERENCE = "(no expected output)"
GENERIC_RUBRIC = "The answer satisfies the requirement given as the reference."
CHECKS_FIELD = "assert"
PYTHON_ID = "python"  # the task metric (task.yaml's, the generated promptfoo_python.py) python checks point at
_JSON_FIELD = re.compile(r"^\s*(?:return\s+)?JSON\.parse\(\s*output\s*\)((?:\s*(?:\.[A-Za-z_$][\w$]*|\[\s*(['\"])"
                         r"[^'\"]+\2\s*\]))*)\s*;?\s*$")
_PART = re.compile(r"\.([A-Za-z_$][\w$]*)|\[\s*['\"]([^'\"]+)['\"]\s*\]")


@dataclass
class Assertion:
    type: str
    value: Any = None
    threshold: float | None = None
    weight: float = 1.0
    transforms: tuple[str, ...] = ()  # JavaScript, applied in order: the test's options.transform, then its own
    metric: str | None = None  # promptfoo's named metric: the check's id


@dataclass
class Case:
    vars: dict[str, Any]
    asserts: list[Assertion]
    where: str  # "tests.csv:4" or "promptfooconfig.yaml:12", for notes
    description: str | None = None
    extras: list[str] = field(default_factory=list)  # settings that were ignored
    threshold: float | None = None  # the test passes when this weighted share of its assertions does


@dataclass
class Mapping:
    references: list[Any]
    metrics: list[dict[str, Any]]
    pass_rule: dict[str, float]
    checks: list[list[dict[str, Any]]]  # per case, in the source's order

    @property
    def has_checks(self) -> bool:
        return any(self.checks)


def json_field(transform: str) -> str | None:
    """The dotted field path of a `JSON.parse(output).a["b"]` transform ("" for the whole parsed output);
    None when the transform is anything else."""
    match = _JSON_FIELD.match(transform)
    if not match:
        return None
    return ".".join(a or b for a, b in _PART.findall(match.group(1)))


def _same(values: list[Any]) -> bool:
    return len({json.dumps(v, sort_keys=True) for v in values}) == 1


def field_path(a: Assertion) -> str | None:
    """The JSON field an assertion's one `JSON.parse(output).a.b` transform picks ("" for the whole parsed output);
    None when it has other transforms (run as JavaScript), or none."""
    if len(a.transforms) != 1 or a.type.removeprefix("not-") in ("javascript", "python"):
        return None
    return json_field(a.transforms[0])


def _check(a: Assertion, path: str | None = None, python: Callable[[Assertion], int] | None = None) -> dict[str, Any]:
    """An assertion as a golden line's check. `python` (--allow-code) takes a python assertion into the generated
    file and gives its index there; the check names no code, only the task metric's id and that index."""
    base = a.type.removeprefix("not-")
    if base == "python" and python is not None:
        entry: dict[str, Any] = {"metric": PYTHON_ID, "index": python(a)}
        if a.type != base:
            entry["not"] = True
        if a.transforms:
            entry["transform"] = list(a.transforms)
        if a.weight != 1:
            entry["weight"] = a.weight
        if a.metric:
            entry["id"] = re.sub(r"[^\w.-]+", "_", a.metric)
        return entry
    if base not in SUPPORTED:
        return {"type": UNSUPPORTED, "was": a.type, "value": a.value if a.value is not None else ""}
    entry = {"type": a.type}
    if a.type == ASSERT_SET:
        entry["value"] = [_check(p, field_path(p) or None, python) for p in a.value]
    elif a.value is not None:
        entry["value"] = a.value
    if a.threshold is not None:
        entry["threshold"] = a.threshold
    if a.weight != 1:
        entry["weight"] = a.weight
    if path:
        entry["field"] = path
    elif a.transforms and a.type != ASSERT_SET and path is None:
        entry["transform"] = list(a.transforms)
    if a.metric:
        entry["id"] = re.sub(r"[^\w.-]+", "_", a.metric)
    return entry


class _Mapper:
    def __init__(self, cases: list[Case], notes: list[str], unsupported: list[str],
                 python: Callable[[int, Assertion], int] | None):
        self.cases, self.notes, self.unsupported, self.python = cases, notes, unsupported, python
        self.metrics: list[dict[str, Any]] = []
        self.pass_rule: dict[str, float] = {}
        self.checks: list[list[tuple[int, dict[str, Any]]]] = [[] for _ in cases]
        self.to_check: dict[str, int] = {}  # assertion type -> how many became checks

    def check(self, i: int, order: int, a: Assertion, path: str | None = None) -> None:
        entry = _check(a, path, None if self.python is None else lambda x: self.python(i, x))
        self.checks[i].append((order, entry))
        parts = entry["value"] if entry.get("type") == ASSERT_SET else [entry]
        for part in parts:
            if part.get("type") == UNSUPPORTED:
                case = self.cases[i]
                test = f"{case.where}" + (f" ('{case.description}')" if case.description else "")
                hint = " (pass --allow-code to run the config's Python)" if part["was"].endswith("python") else ""
                self.unsupported.append(f"`{part['was']}` in test {test}: evals cannot run it{hint}; the example "
                                        "carries an `unsupported` check, so it never passes until that check is "
                                        "rewritten.")
        if entry.get("type") != UNSUPPORTED:
            self.to_check[a.type] = self.to_check.get(a.type, 0) + 1

    def add_metric(self, metric: dict[str, Any]) -> None:
        self.metrics.append(metric)
        self.pass_rule[metric["id"]] = 1.0


def map_assertions(cases: list[Case], notes: list[str], unsupported: list[str],
                   python: Callable[[int, Assertion], int] | None = None) -> Mapping:
    """Task metrics, references and per-example checks for the cases' (rendered) assertions; `python(case index,
    assertion)` takes each python assertion into the generated file (only with --allow-code)."""
    m = _Mapper(cases, notes, unsupported, python)
    n = len(cases)
    by_type: dict[str, list[list[tuple[int, Assertion]]]] = {}
    for i, case in enumerate(cases):
        for order, a in enumerate(case.asserts):
            if a.transforms:
                path = field_path(a)
                if path is None:  # run as JavaScript in the check
                    m.check(i, order, a)
                    continue
                if path:
                    m.check(i, order, a, path)
                    continue
                note = f"`{a.transforms[0]}` (the whole output parsed) is scored on the answer's text."
                if note not in notes:
                    notes.append(note)
            by_type.setdefault(a.type, [[] for _ in range(n)])[i].append((order, a))
    candidates: dict[str, tuple[list[Assertion], list[int]]] = {}
    for type_, per_case in by_type.items():
        everywhere = all(per_case) and type_ in TASK_WIDE
        for i, found in enumerate(per_case):  # all but each test's first of a task-wide type are checks
            for order, a in found[1:] if everywhere else found:
                m.check(i, order, a)
        if not everywhere:
            continue
        firsts = [x[0][1] for x in per_case]
        orders = [x[0][0] for x in per_case]
        values, constant = [a.value for a in firsts], _same([a.value for a in firsts])
        if not constant and type_ in ("is-json", "contains-json", "regex", "starts-with") or \
                any(a.weight != 1 or a.metric for a in firsts):
            for i, (a, order) in enumerate(zip(firsts, orders)):
                m.check(i, order, a)
        elif type_ in ("is-json", "contains-json"):
            schema = json.loads(values[0]) if isinstance(values[0], str) and values[0].strip() else values[0]
            m.add_metric({"name": "json_valid" if type_ == "is-json" else "contains_json", "id": type_.replace("-", "_"),
                          **({"schema": schema} if schema else {})})
        elif type_ in ("regex", "starts-with"):
            pattern = values[0] if type_ == "regex" else "^" + re.escape(str(values[0]))
            m.add_metric({"name": "regex", "id": type_.replace("-", "_"), "pattern": pattern})
        elif type_ in ("contains", "icontains") and constant:
            m.add_metric({"name": "includes", "id": type_, "text": str(values[0]), "ignore_case": type_ == "icontains"})
        elif type_ == "llm-rubric" and constant:
            m.add_metric({"name": "rubric_judge", "id": "llm_rubric", "rubric": str(values[0]), "scale": "pass_fail"})
        else:
            candidates[type_] = (firsts, orders)
    references = _choose_references(m, candidates)
    if m.to_check:
        notes.append("Per-test assertions became checks on their own examples (the `assert` field of "
                     f"golden.jsonl): {', '.join(f'`{t}` x{k}' for t, k in m.to_check.items())}.")
    _test_thresholds(m)
    return Mapping(references, m.metrics, m.pass_rule,
                   [[entry for _, entry in sorted(found, key=lambda x: x[0])] for found in m.checks])


def _choose_references(m: _Mapper, candidates: dict[str, tuple[list[Assertion], list[int]]]) -> list[Any]:
    """The per-test values become references: the highest-priority type's, and any type agreeing with it;
    the other per-test values become checks."""
    n = len(m.cases)
    if not candidates:
        m.notes.append(f"No assertion in every test carries an expected output, so every reference is "
                       f"'{NO_REFERENCE}'.")
        return [NO_REFERENCE] * n
    chosen = min(candidates, key=REFERENCE_PRIORITY.index)
    references = [a.value for a in candidates[chosen][0]]
    for type_ in sorted(candidates, key=REFERENCE_PRIORITY.index):
        firsts, orders = candidates[type_]
        thresholds = [a.threshold for a in firsts if a.threshold is not None]
        if any(json.dumps(a.value) != json.dumps(r) for a, r in zip(firsts, references)):
            for i, (a, order) in enumerate(zip(firsts, orders)):
                m.check(i, order, a)
            continue
        metric_id = type_.replace("-", "_")
        if type_ == "equals":
            m.metrics.append({"name": "exact_match", "id": metric_id, "ignore_case": False})
            m.notes.append("`equals` -> `exact_match` with case kept; whitespace runs are normalised.")
        elif type_ == "similar":
            m.metrics.append({"name": "embedding_similarity", "id": metric_id})
            if len(set(thresholds)) > 1:
                m.notes.append(f"`similar` thresholds differ between tests; the strictest, {max(thresholds)}, "
                               "is used.")
        elif type_ in ("contains", "icontains", "contains-any", "icontains-any"):
            m.metrics.append({"name": "includes", "id": metric_id, "ignore_case": type_.startswith("i")})
            if type_.endswith("-any"):
                m.notes.append(f"`{type_}` -> `includes` with the list of strings as the reference: any one counts.")
        else:  # llm-rubric that differs per test: the rubric is the reference
            m.metrics.append({"name": "rubric_judge", "id": metric_id, "rubric": GENERIC_RUBRIC, "scale": "pass_fail"})
            m.notes.append("`llm-rubric` differs per test: each test's rubric is its reference, judged with a "
                           "task-wide rubric that points at it.")
        m.pass_rule[metric_id] = max(thresholds) if type_ == "similar" else 1.0
    return references


def _test_thresholds(m: _Mapper) -> None:
    """promptfoo's test-level `threshold` (a weighted share of the test's assertions) -> `pass: {checks: T}`."""
    given = {c.threshold for c in m.cases if c.threshold is not None}
    if not given:
        return
    if len(given) > 1:
        m.unsupported.append(f"Test-level `threshold` differs between tests ({', '.join(map(str, sorted(given)))}); "
                             "evals has one for the task, so every check must pass.")
    elif not any(m.checks):
        m.unsupported.append("Test-level `threshold` was ignored: every assertion became a task metric, all required.")
    else:
        m.pass_rule["checks"] = given.pop()
        m.notes.append(f"Test-level `threshold` -> `pass: {{checks: {m.pass_rule['checks']}}}` (the weighted share "
                       "of an example's checks that must pass; the task's own metrics must all pass).")


def transform_of(raw: Any, where: str) -> tuple[str, ...]:
    """A test's or an assertion's `transform` (options.transform for a test): JavaScript source, or none."""
    if raw is None:
        return ()
    if not isinstance(raw, str) or raw.startswith("file://"):
        raise EvalsError(f"{where}: transform must be inline JavaScript (a file:// transform is code this import "
                         "does not read)")
    return (raw,)
