"""promptfoo tests -> ImportedTask.

Reads a tests CSV (variable columns plus `__expected`, `__expected1`… assertion columns written as
`type:value`, `type(threshold):value` or a bare expected value), a YAML list of tests, or a whole
promptfooconfig.yaml (`prompts`, `tests`, `defaultTest`; `tests` may point at CSV/YAML files with
`file://`). Assertions are per test in promptfoo but metrics are per task in evals, so an assertion
type becomes a metric only when every test has it: a value shared by all tests becomes the metric's
argument (a rubric, a regex, a required substring), a value that differs per test becomes the example's
reference. Everything else is listed as not carried over.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.data.importers import ImportedTask, example_ids
from evals.data.yamlfile import YamlDoc
from evals.errors import EvalsError

# Assertion types evals can score. The others that promptfoo knows are recognised (so that
# "javascript: …" is reported, not taken as an expected value) and reported as not carried over.
SUPPORTED = ("equals", "contains", "icontains", "contains-any", "icontains-any", "regex", "starts-with",
             "is-json", "contains-json", "similar", "llm-rubric")
OTHER_TYPES = ("contains-all", "icontains-all", "javascript", "python", "webhook", "levenshtein", "rouge-n", "bleu",
               "meteor", "latency", "cost", "perplexity", "perplexity-score", "is-sql", "contains-sql", "is-xml",
               "contains-xml", "is-html", "contains-html", "is-valid-openai-tools-call",
               "is-valid-openai-function-call", "model-graded-closedqa", "model-graded-factuality", "factuality",
               "answer-relevance", "context-recall", "context-relevance", "context-faithfulness", "classifier",
               "moderation", "g-eval", "select-best", "human", "finish-reason", "is-refusal", "word-count", "guardrails")
_TYPE_RE = re.compile(r"^(not-)?(%s)(?:\((\d+(?:\.\d+)?)\))?(?::([\s\S]*))?$"
                      % "|".join(re.escape(t) for t in sorted(SUPPORTED + OTHER_TYPES, key=len, reverse=True)))
REFERENCE_PRIORITY = ("equals", "similar", "contains-any", "icontains-any", "contains", "icontains", "llm-rubric")
SIMILAR_DEFAULT = {"csv": 0.8, "yaml": 0.75}  # promptfoo's defaults: its CSV parser, its `similar` assertion
NO_REFERENCE = "(no expected output)"
GENERIC_RUBRIC = "The answer satisfies the requirement given as the reference."


@dataclass
class Assertion:
    type: str
    value: Any = None
    threshold: float | None = None


@dataclass
class Case:
    vars: dict[str, Any]
    asserts: list[Assertion]
    where: str  # "tests.csv:4" or "promptfooconfig.yaml:12", for notes
    description: str | None = None
    extras: list[str] = field(default_factory=list)  # settings that were ignored


# --- Reading ----------------------------------------------------------------------------------------
def assertion_from_string(text: str, kind: str = "csv") -> Assertion:
    """promptfoo's CSV assertion syntax; anything that is not `type…:value` is an expected value (equals)."""
    for prefix, kind_ in (("javascript:", "javascript"), ("fn:", "javascript"), ("eval:", "javascript"),
                          ("grade:", "llm-rubric"), ("llm-rubric:", "llm-rubric"), ("python:", "python")):
        if text.startswith(prefix):
            return Assertion(kind_, text[len(prefix):].strip())
    match = _TYPE_RE.match(text)
    if not match:
        return Assertion("equals", text)
    negated, type_, threshold, value = match.groups()
    value = (value or "").strip()
    if type_ in ("contains-any", "icontains-any", "contains-all", "icontains-all"):
        value = [v.strip() for v in value.split(",")]
    if type_ == "similar":
        threshold = threshold or SIMILAR_DEFAULT[kind]
    return Assertion(("not-" if negated else "") + type_, value or None, float(threshold) if threshold else None)


def read_csv_cases(path: Path) -> list[Case]:
    cases = []
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or any(not (h or "").strip() for h in reader.fieldnames):
            raise EvalsError("the header row needs a name for every column", file=path, line=1)
        for row in reader:
            line = reader.line_num
            if None in row:
                raise EvalsError(f"{len(row[None])} more value(s) than there are columns", file=path, line=line)
            vars_, asserts, case = {}, [], Case({}, [], f"{path.name}:{line}")
            for key, value in row.items():
                value = value or ""
                if key.startswith("__expected"):
                    if value.strip():
                        asserts.append(assertion_from_string(value, "csv"))
                elif key == "__description":
                    case.description = value or None
                elif key.startswith("__"):
                    if value:
                        case.extras.append(key)
                else:
                    vars_[key] = value
            case.vars, case.asserts = vars_, asserts
            cases.append(case)
    if not cases:
        raise EvalsError("no test rows under the header", file=path)
    return cases


def _yaml_assertion(doc: YamlDoc, raw: Any, *where: str | int) -> Assertion:
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise doc.error("an assertion needs a 'type'", *where)
    threshold = raw.get("threshold")
    if threshold is not None and not isinstance(threshold, (int, float)):
        raise doc.error(f"threshold must be a number, got {threshold!r}", *where, "threshold")
    if raw["type"] == "similar" and threshold is None:
        threshold = SIMILAR_DEFAULT["yaml"]
    return Assertion(raw["type"], raw.get("value"), threshold)


def _yaml_case(doc: YamlDoc, raw: Any, default: dict[str, Any], *where: str | int) -> Case:
    if not isinstance(raw, dict):
        raise doc.error("a test must be a mapping with 'vars' and 'assert'", *where)
    if not isinstance(raw.get("vars") or {}, dict):
        raise doc.error("'vars' must be a mapping", *where, "vars")
    if not isinstance(default.get("vars") or {}, dict):
        raise doc.error("'vars' must be a mapping", "defaultTest", "vars")
    vars_ = {**(default.get("vars") or {}), **(raw.get("vars") or {})}
    asserts_raw = raw.get("assert") or []
    if not isinstance(asserts_raw, list):
        raise doc.error("'assert' must be a list", *where, "assert")
    asserts = [_yaml_assertion(doc, a, *where, "assert", j) for j, a in enumerate(asserts_raw)]
    asserts += [_yaml_assertion(doc, a, "defaultTest", "assert", j) for j, a in enumerate(default.get("assert") or [])]
    line = doc.line(*where)
    case = Case(vars_, asserts, f"{doc.path.name}:{line}", raw.get("description"))
    case.extras = [k for k in ("threshold", "options", "provider", "providers") if k in raw]
    return case


def _expand_list_vars(case: Case) -> list[Case]:
    """promptfoo runs a test once per combination of the values of its list-valued vars."""
    lists = {k: v for k, v in case.vars.items() if isinstance(v, list)}
    if not lists:
        return [case]
    return [Case({**case.vars, **dict(zip(lists, combo))}, case.asserts, case.where, case.description, case.extras)
            for combo in itertools.product(*lists.values())]


def read_yaml_cases(path: Path) -> tuple[list[Case], dict[str, Any], YamlDoc]:
    """Cases plus the config mapping (empty for a bare list of tests)."""
    doc = YamlDoc(path)
    data = doc.data
    if isinstance(data, list):
        config, tests, key = {}, data, ()
    elif isinstance(data, dict) and "tests" in data:
        config, tests, key = data, data["tests"], ("tests",)
    else:
        raise doc.error("expected a list of tests, or a promptfoo config with 'tests'")
    default = config.get("defaultTest") or {}
    if not isinstance(default, dict):
        raise doc.error("'defaultTest' must be a mapping (file:// defaults are not supported)", "defaultTest")
    entries = tests if isinstance(tests, list) else [tests]
    cases: list[Case] = []
    for i, entry in enumerate(entries):
        where = (*key, i) if isinstance(tests, list) else key
        if isinstance(entry, str):
            cases += _cases_from_file(doc, entry, default, *where)
        else:
            cases += _expand_list_vars(_yaml_case(doc, entry, default, *where))
    if not cases:
        raise doc.error("no tests", *key)
    return cases, config, doc


def _cases_from_file(doc: YamlDoc, ref: str, default: dict[str, Any], *where: str | int) -> list[Case]:
    target = doc.path.parent / ref.removeprefix("file://")
    if not target.is_file():
        raise doc.error(f"tests file not found: {target}", *where)
    if target.suffix.lower() == ".csv":
        cases = read_csv_cases(target)
        extra = [_yaml_assertion(doc, a, "defaultTest", "assert", j) for j, a in enumerate(default.get("assert") or [])]
        for c in cases:
            c.vars = {**(default.get("vars") or {}), **c.vars}
            c.asserts += extra
        return cases
    if target.suffix.lower() in (".yaml", ".yml"):
        sub = YamlDoc(target)
        if not isinstance(sub.data, list):
            raise sub.error("expected a list of tests")
        return [c for i, t in enumerate(sub.data) for c in _expand_list_vars(_yaml_case(sub, t, default, i))]
    raise doc.error(f"only CSV and YAML test files can be imported, not {target.name}", *where)


# --- Prompt -------------------------------------------------------------------------------------------
def _chat_prompt(messages: Any, where: str) -> tuple[str, str]:
    if not isinstance(messages, list) or not all(isinstance(m, dict) and isinstance(m.get("content"), str)
                                                  for m in messages):
        raise EvalsError(f"{where}: a chat prompt must be a list of {{role, content}} messages")
    system = "\n\n".join(m["content"] for m in messages if m.get("role") == "system")
    users = [m["content"] for m in messages if m.get("role") == "user"]
    if not users or any(m.get("role") == "assistant" for m in messages) or len(users) > 1:
        raise EvalsError(f"{where}: only a system message plus one user message can be imported; pass --prompt")
    return system, users[0]


def _config_prompt(config: dict[str, Any], doc: YamlDoc, notes: list[str]) -> tuple[str, str] | None:
    """(system, user) templates from the config's first prompt, or None when it has none."""
    prompts = config.get("prompts")
    if not prompts:
        return None
    prompts = prompts if isinstance(prompts, list) else [prompts]
    if len(prompts) > 1:
        notes.append(f"The config compares {len(prompts)} prompts; the first one is the task's prompt.")
    first = prompts[0]
    if isinstance(first, dict):
        first = first.get("raw") or first.get("id")
    if not isinstance(first, str):
        raise doc.error("cannot read this prompt; pass --prompt", "prompts", 0)
    if first.startswith("file://"):
        target = doc.path.parent / first.removeprefix("file://")
        if target.suffix in (".js", ".ts", ".py", ".mjs", ".cjs") or not target.is_file():
            raise doc.error(f"cannot import the prompt {first} (a prompt function or a missing file); "
                            "pass --prompt", "prompts", 0)
        text = target.read_text(encoding="utf-8")
        if target.suffix == ".json":
            return _chat_prompt(json.loads(text), str(target))
        return "", text.strip()
    if first.lstrip().startswith("["):
        try:
            return _chat_prompt(json.loads(first), f"{doc.path}: prompts[0]")
        except json.JSONDecodeError:
            pass
    return "", first


def _check_template(template: str, names: set[str], where: str) -> None:
    import jinja2
    from jinja2 import meta
    from jinja2.sandbox import SandboxedEnvironment

    try:
        ast = SandboxedEnvironment().parse(template)
        SandboxedEnvironment().from_string(template)  # unknown filters fail at compile time
    except jinja2.TemplateError as e:
        raise EvalsError(f"{where}: the prompt is not a valid Jinja2 template ({e}); Nunjucks-only syntax "
                         "must be rewritten, or pass --prompt") from None
    missing = sorted(meta.find_undeclared_variables(ast) - names)
    if missing:
        raise EvalsError(f"{where}: the prompt uses {', '.join(missing)}, which no test defines")


# --- Mapping assertions to metrics ----------------------------------------------------------------------
def _render_value(value: Any, case: Case) -> Any:
    """promptfoo renders assertion values with the test's vars (`value: "{{answer}}"`)."""
    if not isinstance(value, str) or "{{" not in value:
        return value
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment, SecurityError

    test = f"{case.where} (test '{case.description}')" if case.description else case.where
    try:  # the config is not trusted: sandboxed, as the prompts are, so a template cannot reach Python's internals
        return SandboxedEnvironment(undefined=jinja2.StrictUndefined).from_string(value).render(**case.vars)
    except SecurityError as e:
        raise EvalsError(f"{test}: assertion value {value!r} is unsafe and was not rendered ({e})") from None
    except jinja2.TemplateError as e:
        raise EvalsError(f"{test}: assertion value {value!r}: {e}") from None


def _same(values: list[Any]) -> bool:
    return len({json.dumps(v, sort_keys=True) for v in values}) == 1


def map_assertions(cases: list[Case], notes: list[str], unsupported: list[str]) -> tuple[list[Any], list[dict], dict]:
    """(references, metric entries, pass rule) for the cases' assertions."""
    n = len(cases)
    by_type: dict[str, list[list[Assertion]]] = {}
    for i, case in enumerate(cases):
        for a in case.asserts:  # copies: expanded list-var tests share their assertion objects
            rendered = Assertion(a.type, _render_value(a.value, case), a.threshold)
            by_type.setdefault(a.type, [[] for _ in range(n)])[i].append(rendered)
    metrics, pass_rule, candidates = [], {}, {}

    def add(metric: dict[str, Any]) -> None:
        metrics.append(metric)
        pass_rule[metric["id"]] = 1.0

    for type_, per_case in by_type.items():
        count, having = sum(map(len, per_case)), sum(1 for x in per_case if x)
        if type_ not in SUPPORTED:
            reason = "negated assertions have no metric" if type_.startswith("not-") else "no matching metric"
            unsupported.append(f"`{type_}`: {count} assertion(s) in {having} test(s); {reason} in evals.")
            continue
        if having < n:
            unsupported.append(f"`{type_}` is in {having} of {n} tests; evals scores every example with the "
                               "same metrics, so it was left out.")
            continue
        if any(len(x) > 1 for x in per_case):
            unsupported.append(f"`{type_}`: some tests have several; only the first of each test is kept.")
        firsts = [x[0] for x in per_case]
        values, constant = [a.value for a in firsts], _same([a.value for a in firsts])
        thresholds = [a.threshold for a in firsts if a.threshold is not None]
        if type_ in ("is-json", "contains-json"):
            if not constant:
                unsupported.append(f"`{type_}`: the JSON schema differs between tests; left out.")
                continue
            schema = json.loads(values[0]) if isinstance(values[0], str) and values[0].strip() else values[0]
            add({"name": "json_valid", "id": type_.replace("-", "_"), **({"schema": schema} if schema else {})})
            if type_ == "contains-json":
                notes.append("`contains-json` -> `json_valid`: the whole answer (or one ``` fence) must be JSON, "
                             "not just contain it.")
        elif type_ in ("regex", "starts-with"):
            if not constant:
                unsupported.append(f"`{type_}`: the pattern differs between tests, and a regex metric has one "
                                   "pattern per task; left out.")
                continue
            pattern = values[0] if type_ == "regex" else "^" + re.escape(str(values[0]))
            add({"name": "regex", "id": type_.replace("-", "_"), "pattern": pattern})
        elif type_ in ("contains", "icontains") and constant:
            add({"name": "includes", "id": type_, "text": str(values[0]), "ignore_case": type_ == "icontains"})
        elif type_ == "llm-rubric" and constant:
            add({"name": "rubric_judge", "id": "llm_rubric", "rubric": str(values[0]), "scale": "pass_fail"})
        else:
            candidates[type_] = (values, thresholds)
    references = _choose_references(candidates, n, metrics, pass_rule, notes, unsupported)
    return references, metrics, pass_rule


def _choose_references(candidates: dict[str, tuple[list[Any], list[float]]], n: int, metrics: list[dict],
                       pass_rule: dict[str, float], notes: list[str], unsupported: list[str]) -> list[Any]:
    """The per-test values become references: the highest-priority type's, and any type agreeing with it."""
    if not candidates:
        notes.append(f"No assertion carries an expected output, so every reference is '{NO_REFERENCE}'.")
        return [NO_REFERENCE] * n
    chosen = min(candidates, key=REFERENCE_PRIORITY.index)
    references = candidates[chosen][0]
    for type_ in sorted(candidates, key=REFERENCE_PRIORITY.index):
        values, thresholds = candidates[type_]
        differing = sum(json.dumps(v) != json.dumps(r) for v, r in zip(values, references))
        if differing:
            unsupported.append(f"`{type_}`: its value differs from the `{chosen}` value (the example's reference) "
                               f"in {differing} test(s); left out.")
            continue
        metric_id = type_.replace("-", "_")
        if type_ == "equals":
            metrics.append({"name": "exact_match", "id": metric_id, "ignore_case": False})
            notes.append("`equals` -> `exact_match` with case kept; whitespace runs are normalised.")
        elif type_ == "similar":
            metrics.append({"name": "embedding_similarity", "id": metric_id})
            if len(set(thresholds)) > 1:
                notes.append(f"`similar` thresholds differ between tests; the strictest, {max(thresholds)}, is used.")
        elif type_ in ("contains", "icontains", "contains-any", "icontains-any"):
            metrics.append({"name": "includes", "id": metric_id, "ignore_case": type_.startswith("i")})
            if type_.endswith("-any"):
                notes.append(f"`{type_}` -> `includes` with the list of strings as the reference: any one counts.")
        else:  # llm-rubric that differs per test: the rubric is the reference
            metrics.append({"name": "rubric_judge", "id": metric_id, "rubric": GENERIC_RUBRIC, "scale": "pass_fail"})
            notes.append("`llm-rubric` differs per test: each test's rubric is its reference, judged with a "
                         "task-wide rubric that points at it.")
        pass_rule[metric_id] = max(thresholds) if type_ == "similar" else 1.0
    return references


# --- Entry point ----------------------------------------------------------------------------------------
def _identifier(name: str) -> str:
    ident = re.sub(r"\W", "_", name)
    return f"v_{ident}" if ident[:1].isdigit() else ident


def read_promptfoo(path: Path, name: str, prompt: str | None = None) -> ImportedTask:
    notes: list[str] = []
    unsupported: list[str] = []
    config: dict[str, Any] = {}
    if path.suffix.lower() == ".csv":
        cases, kind = read_csv_cases(path), "promptfoo tests CSV"
        templates = None
    else:
        cases, config, doc = read_yaml_cases(path)
        kind = "promptfoo config YAML" if config else "promptfoo tests YAML"
        templates = None if prompt is not None else _config_prompt(config, doc, notes)
    renames = {k: _identifier(k) for c in cases for k in c.vars if _identifier(k) != k}
    if renames:
        notes.append("Variables renamed to be template names: " + ", ".join(f"`{a}` -> `{b}`" for a, b in renames.items()))
    var_names = list(dict.fromkeys(renames.get(k, k) for c in cases for k in c.vars))
    if prompt is not None:
        prompt_path = Path(prompt)
        templates = ("", prompt_path.read_text(encoding="utf-8").strip() if prompt_path.is_file() else prompt)
    if templates is None:
        user = "\n".join(f"{v}: {{{{ {v} }}}}" for v in var_names) if len(var_names) > 1 else f"{{{{ {var_names[0]} }}}}" \
            if var_names else ""
        if not user:
            raise EvalsError("the tests define no variables and there is no prompt; pass --prompt", file=path)
        notes.append("The source has no prompt; the user message shows the variables"
                     + (" one per line." if len(var_names) > 1 else "."))
        templates = ("", user)
    system, user = templates
    _check_template(system + "\n" + user, set(var_names), f"{path}: prompt")
    references, metrics, pass_rule = map_assertions(cases, notes, unsupported)
    if not metrics:
        raise EvalsError("no assertion could be carried over, so the task would have no metric: "
                         + " ".join(unsupported), file=path)
    ignored = sorted({e for c in cases for e in c.extras})
    if ignored:
        unsupported.append("Ignored test settings: " + ", ".join(f"`{e}`" for e in ignored) + ".")
    described = any(c.description for c in cases)
    rows = []
    for case, reference, example_id in zip(cases, references, example_ids(name, len(cases))):
        values = {renames.get(k, k): v for k, v in case.vars.items()}
        row: dict[str, Any] = {"id": example_id}
        for key in var_names:  # the same keys on every line keeps the JSONL loader's schema stable
            value = values.get(key)
            row[key] = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) \
                else "" if value is None else str(value)
        if described:
            row["description"] = str(case.description or "")
        row["reference"] = reference
        rows.append(row)
    fields = [v for v in var_names if all(r[v] for r in rows)]
    return ImportedTask(
        name=name, source=path, source_format=kind, rows=rows, fields=fields, user=user,
        system=system, metrics=metrics,
        pass_rule=pass_rule, notes=notes, unsupported=unsupported,
        description=str(config.get("description") or f"Imported from the promptfoo tests in {path.name}."),
    )
