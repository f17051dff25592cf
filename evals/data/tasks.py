"""task.yaml -> Task: dataset layout, prompt, models, metrics and the pass rule, all validated up front."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evals._util import split_query, suggest
from evals.data.golden import source_problem
from evals.data.yamlfile import YamlDoc
from evals.errors import EvalsError
from evals.settings import validated
from evals.types import (
    CHECKS,
    MATCH_RATE,
    MAX_PROMPT_CHARS,
    MAX_REPEATS,
    TASK_FILE,
    CheckSettings,
    Decision,
    FewShot,
    MetricSpec,
    ModelConfig,
    ModelSpec,
    Price,
    PromptSpec,
    Task,
)

if TYPE_CHECKING:
    from evals.providers import BaseProvider

# Every key task.yaml takes, with its documentation: the reference pages of the docs site are generated from these
# tables (docs/hooks.py), and a key missing here is refused at load, so the two cannot drift.
TOP_KEYS = {
    "name": "the task's name in stored runs and reports (default: its folder's name)",
    "description": "one line on what the task measures",
    "dataset": "where the golden set and training data are and which fields they use (the `dataset.*` keys)",
    "prompt": "the prompt every model gets: `system`, `user` (Jinja2), `few_shot`, `max_chars`",
    "prompts": "named prompts beside `prompt:` (`{NAME: {system, user, few_shot}}`), run with a model's `prompt:` "
               "or `--prompt NAME`; `evals optimize` writes its winner as `optimized`",
    "models": "the models to run: a spec (`provider:model[+lora:DIR]`) or a mapping of the `models[].*` keys",
    "metrics": "the metrics that score every answer: a name or `{name, id, ...arguments}` (see the metrics page)",
    "pass": "`{metric id: threshold}`: an example matches when every listed metric reaches its threshold",
    "decision": "the settings of `compare` and `decide` (the `decision.*` settings)",
    "check": "the settings of `evals check`, the nightly gate (the `check.*` settings)",
    "repeats": "attempts per example, 1 to 1,000 (default 1): repeated runs are analysed clustered by example",
    "judge_repeats": "times every judge metric that sets no `repeats` asks its judge (its self-consistency)",
    "tools": "the functions the model may call: a JSON file or the list, in OpenAI's function format",
    "tool_choice": "`auto`, `none`, `required` or a declared function's name",
    "parallel_tool_calls": "false: at most one call per answer",
}
DATASET_KEYS = {
    "golden": "the golden set (required): a JSONL, CSV or Parquet file in the task folder, or a hub id",
    "train": "the training examples `evals finetune`, `optimize` and retrieved few-shot demos use (`train.jsonl`)",
    "id": "the field holding each example's id (default `id`)",
    "reference": "the field holding each example's reference answer (default `reference`)",
    "fields": "the input fields the prompt templates render",
    "checks": "the field holding each line's own assertions (per-example checks)",
    "human": "the field holding people's scores of the reference, for `evals judge-agreement`",
    "messages": "the field holding each line's conversation, sent as turns before the `user` template's "
                "(default `messages`)",
}
PROMPT_KEYS = {
    "system": "the system prompt (Jinja2)",
    "user": "the user turn (Jinja2 over the example's fields); without it the line's conversation is the input",
    "few_shot": "worked examples: `[{fields: {...}, answer: ...}]`, or `{retrieve: k}` for the k nearest "
                "training examples by embedding",
    "max_chars": "the cap on one example's rendered prompt, every message together (default 1,000,000)",
}
_MODEL_KEY_DOCS = {
    "spec": "`provider:model[+lora:ADAPTER_DIR]` (see the models page)",
    "base_url": "an OpenAI-compatible server's URL (vLLM, Ollama, a proxy)",
    "temperature": "sampling temperature (default 0)",
    "max_tokens": "the most tokens an answer may have (default 512)",
    "system": "this model's system prompt in place of the task's",
    "few_shot": "false: this model gets no few-shot turns (a fine-tune that learned the format)",
    "price": "USD per million tokens (`input_per_mtok`, `output_per_mtok`, optionally `cached_input_per_mtok`, "
             "`cache_write_per_mtok`, `batch_discount`) in place of the built-in price table",
    "concurrency": "API: requests in flight; local: the batch size",
    "stream": "API: stream the answer, timing its first token",
    "batch": "API: send the calls through the provider's Batch API (half price, answers within 24 h)",
    "options": "provider-specific extras passed through as they are",
    "repeats": "attempts per example for this model (default: the task's `repeats`)",
    "adapter": "the LoRA adapter folder a server of your own serves as this model, hashed into manifests",
    "prompt": "a named prompt of the task (`prompts:`) in place of its `prompt:`",
}
MODEL_KEYS = {f.name: _MODEL_KEY_DOCS[f.name] for f in fields(ModelConfig)}  # a new field needs its line above


def tasks_root() -> Path:
    """Where task names are looked up: $EVALS_TASKS_DIR, else ./golden_sets."""
    return Path(os.environ.get("EVALS_TASKS_DIR", "golden_sets"))


def find_task_file(name_or_path: str) -> Path:
    path = Path(name_or_path)
    candidates = [path / TASK_FILE, path] if path.suffix not in (".yaml", ".yml") else [path]
    candidates.append(tasks_root() / name_or_path / TASK_FILE)
    for c in candidates:
        if c.is_file():
            return c
    root = tasks_root()
    known = sorted(p.parent.name for p in root.glob(f"*/{TASK_FILE}")) if root.is_dir() else []
    hint = suggest(name_or_path, known, style=" Did you mean '{}'?")
    raise EvalsError(
        f"no task '{name_or_path}': not a task folder or task.yaml, and not in {root}/.{hint}"
        + (f" Known tasks: {', '.join(known)}" if known else "")
    )


def _check_keys(doc: YamlDoc, mapping: Any, allowed: set[str], *where: str | int) -> dict[str, Any]:
    if not isinstance(mapping, dict):
        raise doc.error("expected a mapping", *where)
    for key in mapping:
        if key not in allowed:
            raise doc.error(f"unknown key '{key}'{suggest(key, allowed)} Allowed: {', '.join(sorted(allowed))}", *where, key)
    return mapping


def _require_str(doc: YamlDoc, value: Any, *where: str | int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise doc.error("expected a non-empty string", *where)
    return value


def _optional_str(doc: YamlDoc, value: Any, *where: str | int) -> str:
    """A string setting that may be left out (or empty); a list or mapping there is a mistake, not text."""
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise doc.error(f"expected text, got a {type(value).__name__}", *where)
    return str(value)


def _parse_model(doc: YamlDoc, raw: Any, i: int) -> ModelConfig:
    if isinstance(raw, str):
        raw = {"spec": raw}
    raw = dict(_check_keys(doc, raw, MODEL_KEYS, "models", i))
    try:
        spec = ModelSpec.parse(_require_str(doc, raw.pop("spec", None), "models", i, "spec"))
    except ValueError as e:
        raise doc.error(str(e), "models", i, "spec")
    price = raw.pop("price", None)
    if price is not None:
        try:
            price = Price(**price)
        except TypeError:
            raise doc.error("price takes input_per_mtok and output_per_mtok, optionally cached_input_per_mtok, "
                            "cache_write_per_mtok and batch_discount (USD per million tokens)", "models", i, "price")
        for key, value in asdict(price).items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not 0 <= value < math.inf):
                raise doc.error(f"expected a price of 0 or more (USD), got {value!r}", "models", i, "price", key)
    for key, kind in (("temperature", (int, float)), ("max_tokens", int), ("concurrency", int), ("few_shot", bool),
                      ("stream", bool), ("batch", bool)):
        value = raw.get(key)
        if key in raw and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))
                           or (kind is not bool and not math.isfinite(value))):
            raise doc.error(f"expected {'true or false' if kind is bool else 'a number'}, got {value!r}",
                            "models", i, key)
        if kind is int and key in raw and value < 1:
            raise doc.error(f"expected a whole number, 1 or more; got {value!r}", "models", i, key)
    if "prompt" in raw:
        _require_str(doc, raw["prompt"], "models", i, "prompt")
    if raw.get("system") is not None:
        raw["system"] = _optional_str(doc, raw["system"], "models", i, "system")
    if "repeats" in raw:
        raw["repeats"] = _repeats(doc, raw["repeats"], "models", i, "repeats")
    if raw.get("base_url") is not None:
        _require_str(doc, raw["base_url"], "models", i, "base_url")
        try:
            split_query(raw["base_url"])  # what the SDKs cannot send is refused now, not at the first call
        except EvalsError as e:
            raise doc.error(e.message, "models", i, "base_url") from None
    from evals.providers import no_batch_api, with_server

    raw["options"] = raw.get("options") or {}  # `options:` with nothing under it is no options
    provider = _check_options(doc, spec, raw["options"], i)
    if "adapter" in raw:
        _require_str(doc, raw["adapter"], "models", i, "adapter")
        if provider.self_hosted or spec.adapter:
            raise doc.error(f"a local model loads its adapter itself: write it in the spec as "
                            f"local:{spec.model}+lora:{raw['adapter']}; `adapter:` is for a model your "
                            "server serves (e.g. openai:NAME with base_url)", "models", i, "adapter")
    if raw.get("batch") and not provider.batch:
        raise doc.error(no_batch_api(spec.provider), "models", i, "batch")
    return with_server(ModelConfig(spec=spec, price=price, **raw))


def default_model_config(spec: ModelSpec) -> ModelConfig:
    """Task.default_config: a model the task does not list, with defaults and the server its SDK would reach."""
    from evals.providers import with_server

    return with_server(ModelConfig(spec=spec))


def _repeats(doc: YamlDoc, value: Any, *where: str | int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REPEATS:
        raise doc.error(f"expected a whole number of attempts per example, 1 or more (at most {MAX_REPEATS:,}); "
                        f"got {value!r}", *where)
    return value


def _list(doc: YamlDoc, value: Any, *where: str | int) -> list[Any]:
    """A list setting that may be left out."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise doc.error(f"expected a list, got {type(value).__name__} {value!r}"[:200], *where)
    return value


def _judge_repeats(doc: YamlDoc, metrics: tuple[MetricSpec, ...], k: int) -> tuple[MetricSpec, ...]:
    """`judge_repeats: K`: every judge metric that takes `repeats` and sets none asks its judge K times."""
    from evals.metrics import metric_arguments

    out = []
    for i, m in enumerate(metrics):
        try:
            takes = metric_arguments(m, doc.path.parent) or []
        except EvalsError as e:
            raise doc.error(e.message, "metrics", i, "name") from None
        judged = "judge" in takes and "repeats" in takes and "repeats" not in m.args
        out.append(MetricSpec(m.id, m.name, {**m.args, "repeats": k}) if judged else m)
    return tuple(out)


def _provider_tools(config: ModelConfig) -> bool:
    from evals.providers import provider_class

    return provider_class(config.spec.provider).tools


def _check_options(doc: YamlDoc, spec: ModelSpec, options: Any, i: int) -> type[BaseProvider]:
    """The provider exists and takes these options (a misspelt option is an error, not silently ignored); what
    it can do."""
    from evals.providers import provider_class

    try:
        kind = provider_class(spec.provider)
    except EvalsError as e:
        raise doc.error(e.message, "models", i, "spec") from None
    if kind.options is not None:
        validated(kind.options, options, "models", i, "options", doc=doc)
    return kind


def _parse_metric(doc: YamlDoc, raw: Any, i: int) -> MetricSpec:
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise doc.error("expected a mapping with 'name' and the metric's arguments", "metrics", i)
    args = dict(raw)
    name = _require_str(doc, args.pop("name", None), "metrics", i, "name")
    metric_id = args.pop("id", name)
    return MetricSpec(id=str(metric_id), name=name, args=args)


def _parse_prompt(doc: YamlDoc, raw: Any, *where: str) -> PromptSpec:
    """A prompt mapping (`prompt:`, or one of `prompts:`): system, user, max_chars and few_shot, a list of worked
    examples or `{retrieve: k}` (the k training examples nearest each example, filled in by `_with_pools`)."""
    where = where or ("prompt",)
    raw = _check_keys(doc, raw, PROMPT_KEYS, *where)
    shots, retrieve = [], 0
    few_shot = raw.get("few_shot")
    if isinstance(few_shot, dict):
        _check_keys(doc, few_shot, {"retrieve"}, *where, "few_shot")
        retrieve = few_shot.get("retrieve")
        if isinstance(retrieve, bool) or not isinstance(retrieve, int) or retrieve < 1:
            raise doc.error(f"expected the number of nearest training examples to show, 1 or more; got {retrieve!r}",
                            *where, "few_shot", "retrieve")
        if not isinstance(doc.data.get("dataset"), dict) or not doc.data["dataset"].get("train"):
            raise doc.error("retrieved examples come from the task's training set: set dataset.train",
                            *where, "few_shot", "retrieve")
        few_shot = []
    for j, shot in enumerate(_list(doc, few_shot, *where, "few_shot")):
        if not isinstance(shot, dict) or "answer" not in shot or not isinstance(shot.get("fields"), dict):
            raise doc.error("a few-shot example needs 'fields' (a mapping) and 'answer'", *where, "few_shot", j)
        shots.append(FewShot(fields=shot["fields"], answer=str(shot["answer"])))
    max_chars = raw.get("max_chars", MAX_PROMPT_CHARS)
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
        raise doc.error(f"expected the most characters a rendered prompt may have, a whole number; got {max_chars!r}",
                        *where, "max_chars")
    user = raw.get("user")  # none: every line carries its `messages`
    user = "" if user is None else _require_str(doc, user, *where, "user")
    if (shots or retrieve) and not user.strip():
        raise doc.error("worked examples are rendered with the user template: give the prompt a `user:` (lines "
                        "that carry their own `messages` take none)", *where, "few_shot")
    return PromptSpec(
        system=_optional_str(doc, raw.get("system"), *where, "system"),
        user=user,
        few_shot=tuple(shots),
        retrieve=retrieve,
        max_chars=max_chars,
    )


def _parse_prompts(doc: YamlDoc, raw: Any) -> dict[str, PromptSpec]:
    """`prompts: {NAME: {system, user, few_shot}}`: named prompts a model runs with `prompt: NAME`."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise doc.error("expected a mapping of prompt name to a prompt (system, user, few_shot)", "prompts")
    return {str(_require_str(doc, name, "prompts")): _parse_prompt(doc, spec, "prompts", name)
            for name, spec in raw.items()}


def _with_pools(task: Task) -> Task:
    """Prompts that retrieve their worked examples get the training set to draw them from (read only then)."""
    prompts = {"": task.prompt, **task.prompts}
    if not any(p.retrieve for p in prompts.values()):
        return task
    from evals.data.golden import load_samples
    from evals.data.prompts import answer_text

    pool = tuple(FewShot(s.fields, answer_text(s.reference)) for s in load_samples(task, "train"))
    pooled = {k: dataclasses.replace(p, pool=pool) if p.retrieve else p for k, p in prompts.items()}
    return dataclasses.replace(task, prompt=pooled.pop(""), prompts=pooled)


def _parse_check(doc: YamlDoc, raw: Any, metric_ids: list[str]) -> CheckSettings:
    settings = validated(CheckSettings, raw, "check", doc=doc)
    allowed = [*metric_ids, MATCH_RATE]
    for metric_id in settings.floors:
        if metric_id not in allowed:
            raise doc.error(f"'{metric_id}' is not a metric id of this task (nor {MATCH_RATE})"
                            f"{suggest(metric_id, allowed)}", "check", "floors", metric_id)
    return settings


def _task_hash(doc: YamlDoc, metrics: tuple[MetricSpec, ...]) -> str:
    """task.yaml plus every file beside it that a metric names: a metric file, a schema, a rubric."""
    from evals.metrics import file_arg

    h = hashlib.sha256(doc.path.read_bytes())
    if isinstance(tools := doc.data.get("tools"), str) and (path := file_arg(doc.path.parent, tools)):
        h.update(path.read_bytes())  # the functions' definitions, when a file holds them
    for m in metrics:
        module = m.name.rpartition(":")[0]
        named = [module if module.endswith(".py") else f"{module.replace('.', '/')}.py"] if module else []
        for value in [*named, *m.args.values()]:
            if path := file_arg(doc.path.parent, value):
                h.update(path.read_bytes())
    return h.hexdigest()


def declared_name(name_or_path: str) -> str | None:
    """The name of the task TASK names, read from its task.yaml without loading it (no metric is built and nothing
    is imported: for commands that only read the store); None when there is no such task."""
    try:
        path = find_task_file(name_or_path)
    except EvalsError:
        return None
    return _name(YamlDoc(path).data, path)


def _name(data: Any, path: Path) -> str:
    return str((data.get("name") if isinstance(data, dict) else None) or path.parent.name)


def load_task(name_or_path: str) -> Task:
    """Load and validate a task; metric names, arguments and templates are checked before any model call."""
    path = find_task_file(name_or_path)
    doc = YamlDoc(path)
    data = _check_keys(doc, doc.data, TOP_KEYS)
    dataset = _check_keys(doc, data.get("dataset"), DATASET_KEYS, "dataset")
    input_fields = dataset.get("fields") or []
    if not isinstance(input_fields, list) or not all(isinstance(f, str) for f in input_fields):
        raise doc.error("expected a list of field names", "dataset", "fields")
    models = tuple(_parse_model(doc, m, i) for i, m in enumerate(_list(doc, data.get("models"), "models")))
    metrics = tuple(_parse_metric(doc, m, i) for i, m in enumerate(_list(doc, data.get("metrics"), "metrics")))
    if "judge_repeats" in data:
        metrics = _judge_repeats(doc, metrics, _repeats(doc, data["judge_repeats"], "judge_repeats"))
    checks_field = dataset.get("checks")
    if checks_field is not None:
        checks_field = _require_str(doc, checks_field, "dataset", "checks")
    if not metrics and not checks_field:
        raise doc.error("a task needs at least one metric (or per-example checks: dataset.checks)", "metrics")
    ids = [m.id for m in metrics]
    if len(set(ids)) != len(ids):
        raise doc.error(f"metric ids must be unique (got {ids}); give repeats an 'id'", "metrics")
    if CHECKS in ids:
        raise doc.error(f"'{CHECKS}' is the score of an example's own checks; give this metric another id",
                        "metrics", ids.index(CHECKS), "id")
    if checks_field:
        ids.append(CHECKS)
    pass_rule = data.get("pass") or {}
    if not isinstance(pass_rule, dict):
        raise doc.error("expected a mapping of metric id to threshold", "pass")
    for metric_id, threshold in pass_rule.items():
        if metric_id not in ids:
            raise doc.error(f"'{metric_id}' is not a metric id of this task{suggest(metric_id, ids)}", "pass",
                            metric_id)
        if not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise doc.error(f"threshold must be a number, got {threshold!r}", "pass", metric_id)
    from evals.data.tools import parse_tool_choice, parse_tools

    tools = parse_tools(doc, data.get("tools"))
    parallel = data.get("parallel_tool_calls")
    if parallel is not None and (not isinstance(parallel, bool) or not tools):
        raise doc.error("expected true or false, with tools declared", "parallel_tool_calls")
    for i, m in enumerate(models):
        if tools and not _provider_tools(m):
            raise doc.error(f"the {m.spec.provider} provider cannot call tools, and this task declares `tools:`",
                            "models", i, "spec")
    golden = _require_str(doc, dataset.get("golden"), "dataset", "golden")
    if problem := source_problem(golden, path.parent):
        raise doc.error(problem, "dataset", "golden")
    task = Task(
        name=_optional_str(doc, data.get("name"), "name") or path.parent.name,
        description=_optional_str(doc, data.get("description"), "description"),
        dir=path.parent.resolve(),
        golden=golden,
        train=dataset.get("train"),
        id_field=str(dataset.get("id", "id")),
        reference_field=str(dataset.get("reference", "reference")),
        input_fields=tuple(input_fields),
        prompt=_parse_prompt(doc, data.get("prompt")),
        prompts=_parse_prompts(doc, data.get("prompts")),
        models=models,
        metrics=metrics,
        pass_rule={str(k): float(v) for k, v in pass_rule.items()},
        decision=validated(Decision, data.get("decision"), "decision", doc=doc),
        hash=_task_hash(doc, metrics),
        check=_parse_check(doc, data.get("check"), ids),
        file=path.name,
        checks_field=checks_field,
        human_field=_require_str(doc, dataset["human"], "dataset", "human") if "human" in dataset else None,
        repeats=_repeats(doc, data.get("repeats", 1), "repeats"),
        default_config=default_model_config,
        tools=tools,
        tool_choice=parse_tool_choice(doc, data.get("tool_choice"), tools),
        parallel_tool_calls=parallel,
        messages_field=_require_str(doc, dataset.get("messages", "messages"), "dataset", "messages"),
    )
    for i, m in enumerate(models):
        if m.prompt is not None and m.prompt not in task.prompts:
            raise doc.error(f"no prompt named '{m.prompt}' under `prompts:`{suggest(m.prompt, task.prompts)}",
                            "models", i, "prompt")
    _validate_plugins(doc, task)
    return _with_pools(task)


def _validate_plugins(doc: YamlDoc, task: Task) -> None:
    """Build every metric and compile the templates now, so mistakes surface before any model call."""
    from evals.data.prompts import compile_prompt
    from evals.metrics import build_metric

    for i, spec in enumerate(task.metrics):
        try:
            build_metric(spec, task)
        except EvalsError as e:
            raise doc.error(e.message, "metrics", i, "name") from None
    for where, prompt in [(("prompt",), task.prompt), *((("prompts", n), p) for n, p in task.prompts.items())]:
        try:
            compile_prompt(prompt)
        except EvalsError as e:
            field = (e.field or "prompt").split(".")[1:]  # prompt.system -> system, under this prompt's place
            raise doc.error(e.message, *where, *field) from None
