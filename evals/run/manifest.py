"""A run's manifest: everything that shaped it, and nothing secret.

It also holds what reading the run later needs from its task (decision settings, pass rule, metric ids and
names, where people's labels are), so that `compare`, `show`, the viewer and `history` never load the
task.yaml a manifest names: a store is data, and loading a task imports its plugins."""

from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from evals._util import dir_hash, redact_secrets
from evals.data.prompts import prompt_record
from evals.errors import EvalsError
from evals.metrics import metric_config, names_code
from evals.providers.finetuned import run_record
from evals.types import MetricSpec, ModelConfig, ModelSpec, Price, Task

PACKAGES = ("evals", "openai", "anthropic", "transformers", "peft", "torch", "datasets", "jinja2", "sacrebleu",
            "sentence-transformers")


def package_versions() -> dict[str, str | None]:
    def get(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {"python": platform.python_version(), **{name: get(name) for name in PACKAGES}}


def git_state(path: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    return {"commit": commit, "dirty": bool(git("status", "--porcelain")) if commit else None}


def config_to_dict(config: ModelConfig) -> dict[str, Any]:
    d = dataclasses.asdict(config)
    d["spec"] = str(config.spec)
    d["base_url"] = redact_secrets(config.base_url)
    d["options"] = redact_secrets(config.options)
    return d


def plain(value: Any) -> Any:
    """JSON types only (a stored manifest holds lists where a fresh one holds tuples)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def changed_settings(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The keys whose recorded value differs from today's. A key a newer version added (so missing from
    the record) is no change; values are compared as redacted, as manifests hold them."""
    recorded, now = plain(redact_secrets(recorded)), plain(redact_secrets(now))

    def same(old: Any, new: Any) -> bool:
        if isinstance(old, dict) and isinstance(new, dict):
            return all(same(v, new.get(k, v)) for k, v in old.items())
        return old == new

    return sorted(k for k, v in recorded.items() if not same(v, now.get(k, v)))


def config_from_dict(d: dict[str, Any]) -> ModelConfig:
    d = dict(d)
    price = d.pop("price", None)
    return ModelConfig(spec=ModelSpec.parse(d.pop("spec")), price=Price(**price) if price else None, **d)


def without_passwords(value: Any) -> Any:
    """Metric arguments as a manifest may hold them: a URL's user:password (a judge's `store:
    postgresql://...`) left out; libpq then takes it from PGPASSWORD or ~/.pgpass where the run is resumed."""
    if isinstance(value, dict):
        return {k: without_passwords(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(without_passwords(v) for v in value)
    if isinstance(value, str) and "://" in value and (parts := urlsplit(value)).password is not None:
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username}@{host}" if parts.username else host))
    return value


def build_manifest(task: Task, config: ModelConfig, provider_id: str, golden_hash: str, n: int) -> dict[str, Any]:
    adapter = config.adapter_dir
    return {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "task": {"name": task.name, "path": str(task.path), "hash": task.hash,
                 **({"messages_field": task.messages_field} if task.messages_field != "messages" else {})},
        "golden": {"source": task.golden, "hash": golden_hash, "n": n},
        "prompt": prompt_record(task.prompt_for(config)) | (
            {"system": config.system} if config.system is not None else {}),
        "model": config_to_dict(config),
        "provider_id": provider_id,
        "params": task.params_for(config).as_dict(),
        "adapter": {"path": adapter, "hash": dir_hash(adapter)} if adapter else None,
        "finetuned": run_record(config.spec),  # the hosted fine-tune an `ft@NAME` spec stood for
        # args as written in task.yaml (a --judge override included); config with every default filled in
        "metrics": [{"id": m.id, "name": m.name, "args": without_passwords(m.args),
                     "config": without_passwords(metric_config(m, task.dir))} for m in task.metrics],
        "pass": task.pass_rule,
        "decision": task.decision.model_dump(mode="json"),  # what `evals compare` decides this run's pairs by
        **({"labels": {"file": str(task.dir / task.golden), "id": task.id_field, "field": task.human_field}}
           if task.human_field else {}),  # people's labels, for the judge-agreement warnings of `compare`
        # each example's own checks are in the golden set (and its hash); where they are, and their judge
        **({"checks": {"field": task.checks_field, "judge": task.judge}} if task.checks_field else {}),
        "versions": package_versions(),
        "git": git_state(task.dir),
    }


def recorded_metrics(manifest: dict[str, Any], task: Task, run_id: str) -> tuple[MetricSpec, ...]:
    """The metrics a run was scored with, as its manifest records them (a --judge override included). A store
    is data: a recorded metric that names code (`file.py:function`) is refused unless `task`, loaded from a
    path the user gave, names that code itself."""
    own = {m.name for m in task.metrics}
    try:
        specs = tuple(MetricSpec(str(m["id"]), str(m["name"]), dict(m.get("args") or {}))
                      for m in manifest.get("metrics") or [])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise EvalsError(f"run {run_id}: its manifest's metrics are malformed") from None
    for spec in specs:
        if names_code(spec.name) and spec.name not in own:
            raise EvalsError(f"run {run_id}: its manifest names code as metric '{spec.id}' ({spec.name}), which "
                             f"{task.path} does not; a store is data, and only task.yaml names code to run")
    return specs
