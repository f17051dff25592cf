"""promptfoo tests -> ImportedTask.

Reads a tests CSV (variable columns plus `__expected`, `__expected1`… assertion columns written as
`type:value`, `type(threshold):value` or a bare expected value), a YAML list of tests, or a whole
promptfooconfig.yaml (`prompts`, `tests`, `defaultTest`; `tests` may point at CSV/YAML files with
`file://`). How assertions map onto task metrics and per-example checks: promptfoo_mapping.py.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from evals.data.importers import ImportedTask, example_ids
from evals.data.importers.promptfoo_mapping import (
    CHECKS_FIELD,
    SUPPORTED,
    Assertion,
    Case,
    map_assertions,
    transform_of,
)
from evals.data.importers.promptfoo_python import FILE as PYTHON_FILE
from evals.data.importers.promptfoo_python import METRIC as PYTHON_METRIC
from evals.data.importers.promptfoo_python import PythonAssertions
from evals.data.yamlfile import YamlDoc
from evals.errors import EvalsError, read_utf8
from evals.types import MAX_PROMPT_CHARS

# Assertion types promptfoo knows that evals cannot run: recognised (so that "javascript: …" is reported,
# not taken as an expected value), then carried as `unsupported` checks.
OTHER_TYPES = ("python", "webhook", "meteor", "perplexity", "perplexity-score", "is-sql", "contains-sql", "is-xml",
               "contains-xml", "is-html", "contains-html", "is-valid-openai-function-call", "model-graded-closedqa", "model-graded-factuality", "factuality",
               "answer-relevance", "context-recall", "context-relevance", "context-faithfulness", "classifier",
               "moderation", "g-eval", "select-best", "human", "finish-reason", "is-refusal", "word-count", "guardrails")
_TYPE_RE = re.compile(r"^(not-)?(%s)(?:\((\d+(?:\.\d+)?)\))?(?::([\s\S]*))?$"
                      % "|".join(re.escape(t) for t in sorted(SUPPORTED + OTHER_TYPES, key=len, reverse=True)))
SIMILAR_DEFAULT = {"csv": 0.8, "yaml": 0.75}  # promptfoo's defaults: its CSV parser, its `similar` assertion


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
    with io.StringIO(read_utf8(path).removeprefix("\ufeff"), newline="") as f:
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
    if raw["type"] == "assert-set":
        inner = raw.get("assert")
        if not isinstance(inner, list) or not inner:
            raise doc.error("an assert-set needs a list of assertions under 'assert'", *where, "assert")
        raw = {**raw, "value": [_yaml_assertion(doc, a, *where, "assert", j) for j, a in enumerate(inner)]}
    threshold = raw.get("threshold")
    if threshold is not None and not isinstance(threshold, (int, float)):
        raise doc.error(f"threshold must be a number, got {threshold!r}", *where, "threshold")
    if raw["type"].removeprefix("not-") == "similar" and threshold is None:
        threshold = SIMILAR_DEFAULT["yaml"]
    weight = raw.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
        raise doc.error(f"weight must be a number above 0, got {weight!r}", *where, "weight")
    where_text = f"{doc.path.name}:{doc.line(*where)}"
    metric = raw.get("metric")
    return Assertion(raw["type"], raw.get("value"), threshold, float(weight),
                     transform_of(raw.get("transform"), where_text), str(metric) if metric else None)


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
    options = {**(default.get("options") or {}), **(raw.get("options") or {})}
    case.asserts = with_transform(asserts, transform_of(options.pop("transform", None), case.where))
    threshold = raw.get("threshold", default.get("threshold"))
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
        raise doc.error(f"threshold must be a number, got {threshold!r}", *where, "threshold")
    case.threshold = None if threshold is None else float(threshold)
    case.extras = [k for k in ("provider", "providers") if k in raw] + [f"options.{k}" for k in options]
    return case


def with_transform(asserts: list[Assertion], transform: tuple[str, ...]) -> list[Assertion]:
    """promptfoo transforms the output with the test's `options.transform` first, then each assertion's own
    (an assert-set's parts each take the test's too)."""
    if not transform:
        return asserts
    return [replace(a, value=with_transform(a.value, transform)) if a.type == "assert-set"
            else replace(a, transforms=transform + a.transforms) for a in asserts]


def _expand_list_vars(case: Case) -> list[Case]:
    """promptfoo runs a test once per combination of the values of its list-valued vars."""
    lists = {k: v for k, v in case.vars.items() if isinstance(v, list)}
    if not lists:
        return [case]
    return [replace(case, vars={**case.vars, **dict(zip(lists, combo))}) for combo in itertools.product(*lists.values())]


def read_yaml_cases(path: Path, *, outside_files: bool = False) -> tuple[list[Case], dict[str, Any], YamlDoc]:
    """Cases plus the config mapping (empty for a bare list of tests); `outside_files`: see `referenced`."""
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
            cases += _cases_from_file(doc, referenced(doc, entry, outside_files, *where), default, *where)
        else:
            cases += _expand_list_vars(_yaml_case(doc, entry, default, *where))
    if not cases:
        raise doc.error("no tests", *key)
    return cases, config, doc


def referenced(doc: YamlDoc, ref: str, outside_files: bool, *where: str | int) -> Path:
    """The file a `file://` reference of the config names. The config is not trusted: a file outside its folder
    (`file:///etc/hostname`, `file://../x`, a link that leads out) is refused unless `outside_files` (the user's
    --allow-outside-files)."""
    folder = doc.path.parent.resolve()
    target = (folder / ref.removeprefix("file://")).resolve()
    if not outside_files and not target.is_relative_to(folder):
        raise doc.error(f"{ref} is outside the config's folder {folder}; evals reads it only with "
                        "--allow-outside-files", *where)
    return target


def _cases_from_file(doc: YamlDoc, target: Path, default: dict[str, Any], *where: str | int) -> list[Case]:
    if not target.is_file():
        raise doc.error(f"tests file not found: {target}", *where)
    if target.suffix.lower() == ".csv":
        cases = read_csv_cases(target)
        extra = [_yaml_assertion(doc, a, "defaultTest", "assert", j) for j, a in enumerate(default.get("assert") or [])]
        options = dict(default.get("options") or {})
        transform = transform_of(options.pop("transform", None), f"{doc.path.name}:{doc.line('defaultTest')}")
        threshold = default.get("threshold")
        for c in cases:
            c.vars = {**(default.get("vars") or {}), **c.vars}
            c.asserts = with_transform(c.asserts + extra, transform)
            c.extras += [f"options.{k}" for k in options]
            c.threshold = None if threshold is None else float(threshold)
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


def _config_prompt(config: dict[str, Any], doc: YamlDoc, notes: list[str],
                   outside_files: bool = False) -> tuple[str, str] | None:
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
        target = referenced(doc, first, outside_files, "prompts", 0)
        if target.suffix in (".js", ".ts", ".py", ".mjs", ".cjs") or not target.is_file():
            raise doc.error(f"cannot import the prompt {first} (a prompt function or a missing file); "
                            "pass --prompt", "prompts", 0)
        text = read_utf8(target)
        if target.suffix == ".json":
            try:
                messages = json.loads(text)
            except (ValueError, RecursionError) as e:
                why = f"{e.msg} (column {e.colno})" if isinstance(e, json.JSONDecodeError) else type(e).__name__
                raise EvalsError(f"malformed JSON in the prompt file: {why}", file=target,
                                 line=getattr(e, "lineno", None), field="prompts[0]") from None
            return _chat_prompt(messages, str(target))
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

    from evals.data.sandbox import environment

    try:
        ast = environment.parse(template)
        environment.from_string(template)  # unknown filters fail at compile time
    except jinja2.TemplateError as e:
        raise EvalsError(f"{where}: the prompt is not a valid Jinja2 template ({e}); Nunjucks-only syntax "
                         "must be rewritten, or pass --prompt") from None
    missing = sorted(meta.find_undeclared_variables(ast) - names)
    if missing:
        raise EvalsError(f"{where}: the prompt uses {', '.join(missing)}, which no test defines")


# --- Assertion values -------------------------------------------------------------------------------------
def _render_value(value: Any, case: Case) -> Any:
    """promptfoo renders assertion values with the test's vars (`value: "{{answer}}"`)."""
    if isinstance(value, list) and value and all(isinstance(v, Assertion) for v in value):  # an assert-set
        return [replace(a, value=_render_value(a.value, case)) for a in value]
    if not isinstance(value, str) or "{{" not in value:
        return value
    from evals.data.prompts import render_template

    test = f"{case.where} (test '{case.description}')" if case.description else case.where
    try:  # the config is not trusted: in the prompts' sandbox, so a template cannot reach Python's internals
        return render_template(value, case.vars, limit=MAX_PROMPT_CHARS)
    except EvalsError as e:
        raise EvalsError(f"{test}: assertion value {value!r} was not rendered: {e.message}") from None


def _rendered(cases: list[Case]) -> list[Case]:
    """The cases with their assertion values rendered (copies: expanded list-var tests share assertions)."""
    return [replace(c, asserts=[replace(a, value=_render_value(a.value, c)) for a in c.asserts]) for c in cases]


def provider_tools(config: dict[str, Any]) -> list[Any] | None:
    """The tools the first provider that lists any offers (its `config.tools`), or None."""
    providers = config.get("providers") or []
    providers = providers if isinstance(providers, list) else [providers]
    return next((p["config"]["tools"] for p in providers if isinstance(p, dict) and isinstance(p.get("config"), dict)
                 and isinstance(p["config"].get("tools"), list)), None)


def offered_tools(config: dict[str, Any], notes: list[str], unsupported: list[str]) -> list[dict[str, Any]]:
    """task.yaml's `tools:`: the provider's tools, when each is an OpenAI function definition (else none, said)."""
    tools = provider_tools(config) or []
    functions = [t for t in tools if isinstance(t, dict) and t.get("type", "function") == "function"
                 and isinstance(t.get("function"), dict) and isinstance(t["function"].get("name"), str)]
    if tools and len(functions) < len(tools):
        unsupported.append("The provider's `config.tools` are not all OpenAI function definitions, so the models "
                           "are offered none; add `tools:` to task.yaml by hand.")
        return []
    if functions:
        notes.append(f"The provider's {len(functions)} tool(s) ({', '.join(t['function']['name'] for t in functions)}) "
                     "are the task's `tools:`, offered to every model; `tool-call-f1` is `tool_calls_f1` by name.")
    return [{"type": "function", "function": t["function"]} for t in functions]


def _with_tools(cases: list[Case], config: dict[str, Any], notes: list[str]) -> list[Case]:
    """`is-valid-openai-tools-call` checks the call against the tools the provider offers: the first provider's
    `config.tools`, written into each such assertion that names none."""
    tools = provider_tools(config)
    if tools is None:
        if any(a.type.removeprefix("not-") == "is-valid-openai-tools-call" for c in cases for a in c.asserts):
            notes.append("`is-valid-openai-tools-call`: no provider lists its `config.tools` inline, so any function "
                         "name passes; the call's shape and JSON arguments are still checked.")
        return cases
    return [replace(c, asserts=[replace(a, value=tools) if a.type.removeprefix("not-") == "is-valid-openai-tools-call"
                                and a.value is None else a for a in c.asserts]) for c in cases]


# --- Entry point ----------------------------------------------------------------------------------------
def _identifier(name: str) -> str:
    ident = re.sub(r"\W", "_", name)
    return f"v_{ident}" if ident[:1].isdigit() else ident


def read_promptfoo(path: Path, name: str, prompt: str | None = None, *, outside_files: bool = False,
                   allow_code: bool = False) -> ImportedTask:
    """A promptfoo tests CSV, tests YAML or config; `outside_files` lets its `file://` references leave its folder;
    `allow_code`: its python assertions become promptfoo_python.py beside task.yaml, which runs them (without it
    they are `unsupported`: an imported config is data)."""
    notes: list[str] = []
    unsupported: list[str] = []
    config: dict[str, Any] = {}
    if path.suffix.lower() == ".csv":
        cases, kind = read_csv_cases(path), "promptfoo tests CSV"
        templates = None
    else:
        cases, config, doc = read_yaml_cases(path, outside_files=outside_files)
        kind = "promptfoo config YAML" if config else "promptfoo tests YAML"
        templates = None if prompt is not None else _config_prompt(config, doc, notes, outside_files)
    renames = {k: _identifier(k) for c in cases for k in c.vars if _identifier(k) != k}
    if renames:
        notes.append("Variables renamed to be template names: " + ", ".join(f"`{a}` -> `{b}`" for a, b in renames.items()))
    var_names = list(dict.fromkeys(renames.get(k, k) for c in cases for k in c.vars))
    if prompt is not None:
        prompt_path = Path(prompt)
        templates = ("", read_utf8(prompt_path).strip() if prompt_path.is_file() else prompt)
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
    python = PythonAssertions(cases, path.parent) if allow_code else None
    mapped = map_assertions(_rendered(_with_tools(cases, config, notes)), notes, unsupported,
                            python.add if python else None)
    if not mapped.metrics and not mapped.has_checks:
        raise EvalsError("the tests have no assertions, so the task would have nothing to score", file=path)
    ignored = sorted({e for c in cases for e in c.extras})
    if ignored:
        unsupported.append("Ignored test settings: " + ", ".join(f"`{e}`" for e in ignored) + ".")
    described = any(c.description for c in cases)
    ids = example_ids(name, len(cases))
    metrics, files = mapped.metrics, {}
    if python and python.found:
        metrics, files = [*metrics, PYTHON_METRIC], {PYTHON_FILE: python.source(ids, path.name)}
        notes.append(f"`python` x{len(python.found)} (--allow-code): the code is in {PYTHON_FILE}, which task.yaml's "
                     f"metric `{PYTHON_METRIC['id']}` runs; each check points at it by that id and an index.")
    rows = []
    for case, reference, checks, example_id in zip(cases, mapped.references, mapped.checks,
                                                    ids):
        values = {renames.get(k, k): v for k, v in case.vars.items()}
        row: dict[str, Any] = {"id": example_id}
        for key in var_names:  # the same keys on every line keeps the JSONL loader's schema stable
            value = values.get(key)
            row[key] = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) \
                else "" if value is None else str(value)
        if described:
            row["description"] = str(case.description or "")
        row["reference"] = reference
        if mapped.has_checks:
            row[CHECKS_FIELD] = checks
        rows.append(row)
    fields = [v for v in var_names if all(r[v] for r in rows)]
    return ImportedTask(
        name=name, source=path, source_format=kind, rows=rows, fields=fields, user=user,
        system=system, metrics=metrics, files=files, checks_field=CHECKS_FIELD if mapped.has_checks else None,
        pass_rule=mapped.pass_rule, notes=notes, unsupported=unsupported,
        tools=offered_tools(config, notes, unsupported),
        description=str(config.get("description") or f"Imported from the promptfoo tests in {path.name}."),
    )
