"""A hosted fine-tune through a provider's fine-tuning API (its official SDK): OpenAI's here, Together AI's in
finetune/hosted_together.py (a subclass overriding the vendor's calls). The same chats as the local
fine-tune (the golden set checked for overlap and never sent; the same seeded validation slice, uploaded
as the validation file), `files.create`, `fine_tuning.jobs.create`, then polled with progress until the
job ends. Its state lives in finetune/hosted/NAME/manifest.json, written whole at every step:

- uploads are kept by the sha256 of their content, so the same data is never uploaded twice (a file
  uploaded before a crash is found again by its name, which carries that hash);
- the job id is kept as soon as it exists (and a job created just before a crash is found again by the
  submission token in its metadata), so Ctrl-C leaves the job running and `--resume` re-attaches to it;
- a finished job records its model (`openai:ft@NAME` resolves to it), trained tokens and training cost.

The settings' class names the vendor (HostedConfig: OpenAI, TogetherConfig: Together), so one `train_hosted`
serves both, and a learning curve's sizes too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field

from evals._util import redact_url, suggest, write_atomic
from evals.data.golden import samples_hash
from evals.errors import EvalsError, ProviderError
from evals.providers.finetuned import MANIFEST_FILE, hosted_dir, read_manifest
from evals.providers.prices import training_price, training_prices
from evals.settings import validated
from evals.types import Message, ModelConfig, Sample, Task
from finetune.config import Settings
from finetune.data import check_overlap, load_train, openai_jsonl, split, training_chats

ACTIVE = ("validating_files", "queued", "running")
RETRIES = 5  # a poll's transient failure (429, 5xx, a dropped connection) is retried this often


class HostedSettings(Settings):
    """What every hosted fine-tune's settings have; `fine_tune` is the vendor's HostedFineTune, whose API trains it."""

    fine_tune: ClassVar[type[HostedFineTune]]

    epochs: Annotated[int, Field(ge=1)] | None = Field(None, description="passes over the training data "
                                                                         "(default: the provider's auto)")
    batch_size: Annotated[int, Field(ge=1)] | None = Field(None, description="examples per step (default: auto)")
    suffix: str | None = Field(None, max_length=64, description="added to the model's name (default: the "
                                                                "fine-tune's name)")
    val_fraction: Annotated[float, Field(ge=0, le=0.5)] = Field(
        0.1, description="share of train.jsonl held out and uploaded as the validation file (as the local "
                         "fine-tune does)")
    seed: int = Field(20261123, description="seed for the validation split (the local fine-tune's) and the job")
    poll_s: Annotated[float, Field(gt=0)] = Field(15.0, description="seconds between polls of the job")


class HostedConfig(HostedSettings):
    """Settings of an OpenAI fine-tune; unset hyperparameters are the provider's `auto`."""

    base: str = Field("gpt-4o-mini-2024-07-18", description="the provider's base model to fine-tune")
    learning_rate_multiplier: Annotated[float, Field(gt=0)] | None = Field(
        None, description="scales the provider's learning rate (default: auto)")

    def hyperparameters(self) -> dict[str, Any]:
        chosen = {"n_epochs": self.epochs, "batch_size": self.batch_size,
                  "learning_rate_multiplier": self.learning_rate_multiplier}
        return {k: v for k, v in chosen.items() if v is not None}


def check_base(base: str, base_url: str | None) -> None:
    """api.openai.com fine-tunes only some bases (those with a training price in prices.yaml); another
    server (a managed open-model host) decides for itself."""
    if base_url is not None and "api.openai.com" not in base_url:
        return
    if training_price("openai", base) is None:
        known = training_prices("openai")
        raise EvalsError(f"OpenAI cannot fine-tune '{base}'{suggest(base, known)} Fine-tunable bases: "
                         f"{', '.join(known)} (or their families, e.g. gpt-4o-mini)", field="base")


def _jsonl(chats: Sequence[list[Message]], task: Task) -> bytes:
    return openai_jsonl(chats, task).encode()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class HostedFineTune:
    """One fine-tune's life: its manifest (saved after every change), the client, the uploads and the job. This
    class speaks OpenAI's API; a vendor's subclass overrides the class attributes and the calls that differ."""

    provider: ClassVar[str] = "openai"
    vendor: ClassVar[str] = "OpenAI"  # in messages
    server: ClassVar[str] = "https://api.openai.com/v1"  # where it trains when no base_url is set
    active: ClassVar[tuple[str, ...]] = ACTIVE  # a job in these states is still going
    succeeded: ClassVar[str] = "succeeded"

    def __init__(self, task: Task, settings: Any, name: str, config: ModelConfig, manifest: dict[str, Any]):
        self.task, self.settings, self.name, self.config = task, settings, name, config
        self.out = hosted_dir(name)
        self.manifest = manifest
        self._sdk = self._client = None
        self._secrets: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        return self.out / MANIFEST_FILE

    def save(self) -> None:
        self.manifest["updated_at"] = _now()
        write_atomic(self.path, json.dumps(self.manifest, indent=2, sort_keys=True) + "\n")

    @classmethod
    def check(cls, settings: Any, config: ModelConfig) -> None:
        """Refuse, before any call, what is known to fail (a base the vendor does not fine-tune)."""
        check_base(settings.base, config.base_url)

    # ---- the API, errors translated once ---------------------------------------------------------

    def connect(self) -> None:
        from evals.providers._http import open_client

        self._sdk, self._client, self._secrets, _ = open_client(self.config, "openai", "AsyncOpenAI", "OPENAI_API_KEY",
                                                            "OPENAI_BASE_URL", "OpenAI")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def api(self, what: str, call: Callable[[], Any]) -> Any:
        """`await call()`, retrying what a retry can fix; anything else is the user's to fix (exit 2)."""
        from evals.providers._http import to_provider_error

        for attempt in range(RETRIES + 1):
            try:
                return await call()
            except self._sdk.APIError as e:
                error: ProviderError = to_provider_error(e, self._sdk, secrets=self._secrets)
            if not error.retryable or attempt == RETRIES:
                raise EvalsError(f"{self.vendor} refused to {what}: {error}")
            await asyncio.sleep(error.retry_after or min(2.0 ** attempt, self.settings.poll_s))
        raise AssertionError("unreachable")

    # ---- uploads ---------------------------------------------------------------------------------

    def keep_local(self, role: str, content: bytes) -> tuple[str, Path]:
        """The content's sha256, and the copy beside the manifest (so a line the API names can be read)."""
        digest = hashlib.sha256(content).hexdigest()
        local = self.out / f"{role}.jsonl"
        if not local.is_file() or hashlib.sha256(local.read_bytes()).hexdigest() != digest:
            self.out.mkdir(parents=True, exist_ok=True)
            local.write_bytes(content)
        return digest, local

    def kept_file(self, role: str, digest: str) -> str | None:
        kept = self.manifest["data"].setdefault("files", {}).get(role)
        return kept["id"] if kept and kept.get("sha256") == digest else None

    def keep_file(self, role: str, file_id: str, digest: str, content: bytes, filename: str, local: Path) -> str:
        self.manifest["data"]["files"][role] = {"id": file_id, "sha256": digest, "bytes": len(content),
                                                "filename": filename, "path": str(local)}
        self.save()
        return file_id

    async def upload(self, role: str, content: bytes) -> str:
        """The id of a file holding `content`: the one kept in the manifest or found on the server, else a new
        upload."""
        digest, local = self.keep_local(role, content)
        if kept := self.kept_file(role, digest):
            return kept
        filename = f"evals-{self.name}-{role}-{digest[:16]}.jsonl"
        listed = await self.api("list files", lambda: self._client.files.list(purpose="fine-tune"))
        found = next((f for f in listed.data if f.filename == filename and f.bytes == len(content)), None)
        if found is None:
            found = await self.api(f"accept the {role} file", lambda: self._client.files.create(
                file=(filename, content, "application/jsonl"), purpose="fine-tune"))
        return self.keep_file(role, found.id, digest, content, filename, local)

    # ---- the job ---------------------------------------------------------------------------------

    async def create_job(self, training: str, validation: str | None) -> str:
        """A new job (or the one created just before a crash, found by its submission token)."""
        token = self.manifest.get("submission")
        if token:
            jobs = await self.api("list fine-tuning jobs", lambda: self._client.fine_tuning.jobs.list(limit=100))
            found = next((j for j in jobs.data if (j.metadata or {}).get("evals_submission") == token), None)
            if found is not None:
                return self._keep_job(found)
        token = self.new_submission()
        s = self.settings
        request: dict[str, Any] = {
            "model": s.base, "training_file": training, "seed": s.seed, "suffix": s.suffix or self.name[:64],
            "metadata": {"evals_task": self.task.name, "evals_name": self.name, "evals_submission": token},
            "method": {"type": "supervised", "supervised": {"hyperparameters": s.hyperparameters()}}}
        if validation:
            request["validation_file"] = validation
        job = await self.api("create the fine-tuning job", lambda: self._client.fine_tuning.jobs.create(**request))
        return self._keep_job(job)

    def new_submission(self, length: int = 8) -> str:
        """A fresh submission token, saved before the job is asked for: a crash during the call finds it again."""
        token = self.manifest["submission"] = secrets.token_hex(length)
        self.save()
        return token

    def _keep_job(self, job: Any) -> str:
        created = job.created_at.isoformat() if isinstance(job.created_at, datetime) else job.created_at
        self.manifest["job"] = {"id": job.id, "status": job.status, "created_at": created}
        self.manifest.pop("submission", None)
        self.save()
        return job.id

    async def cancel(self, job_id: str) -> None:
        await self.api("cancel the fine-tuning job", lambda: self._client.fine_tuning.jobs.cancel(job_id))

    async def follow(self, job_id: str, progress: Any, on_poll: Callable[[Any], None] | None = None) -> Any:
        """Poll until the job ends, showing its status, steps, losses and messages; the finished job."""
        while True:
            job = await self.api("report on the fine-tuning job", lambda: self.retrieve(job_id))
            for metric, message in await self.new_events(job_id):
                if metric is not None:
                    self.manifest.setdefault("metrics", []).append(metric)
                    progress.metrics(metric)
                if message:
                    progress.note(f"job {job_id}: {message}")
            self.manifest["job"].update(self.job_state(job))
            self.save()
            progress.status(job.status, self.tokens(job))
            if job.status not in self.active:
                return job
            if on_poll is not None:
                on_poll(job)
            await asyncio.sleep(self.settings.poll_s)

    async def retrieve(self, job_id: str) -> Any:
        return await self._client.fine_tuning.jobs.retrieve(job_id)

    async def new_events(self, job_id: str) -> list[tuple[dict[str, Any] | None, str | None]]:
        """The job's events not seen before, oldest first: (metrics: step, total_steps, train_loss, valid_loss;
        or a message)."""
        events = await self.api("list the job's events",
                                lambda: self._client.fine_tuning.jobs.list_events(job_id, limit=100))
        ids = [e.id for e in events.data]  # newest first
        last = self.manifest.get("last_event")
        out: list[tuple[dict[str, Any] | None, str | None]] = []
        for event in reversed(events.data[:ids.index(last)] if last in ids else events.data):
            if event.type == "metrics" and isinstance(event.data, dict):
                out.append(({k: event.data.get(k) for k in ("step", "total_steps", "train_loss", "valid_loss")},
                            None))
            else:
                out.append((None, event.message))
        self.manifest["last_event"] = ids[0] if ids else last
        return out

    def job_state(self, job: Any) -> dict[str, Any]:
        return {"status": job.status, "finished_at": job.finished_at,
                "error": job.error.model_dump() if job.error else None,
                "hyperparameters": job.hyperparameters.model_dump()}

    def tokens(self, job: Any) -> int | None:
        return job.trained_tokens

    async def finish(self, job: Any) -> dict[str, Any]:
        """Record a succeeded job's model, trained tokens, cost and checkpoints; raise for any other end."""
        if job.status != self.succeeded:
            raise EvalsError(self.failure(job), file=self.path)
        checkpoints = await self.api("list the job's checkpoints",
                                     lambda: self._client.fine_tuning.jobs.checkpoints.list(job.id))
        priced = training_price("openai", job.model)
        rate = priced[1] if priced else None
        tokens = job.trained_tokens
        self.manifest.update(
            fine_tuned_model=job.fine_tuned_model, trained_tokens=tokens,
            checkpoints=[{"step": c.step_number, "model": c.fine_tuned_model_checkpoint,
                          "metrics": c.metrics.model_dump(exclude_none=True)} for c in checkpoints.data],
            cost={"training_price_per_mtok": rate,
                  "training_cost_usd": tokens * rate / 1e6 if tokens is not None and rate is not None else None,
                  "basis": (f"{tokens:,} trained tokens (the job's) x ${rate:g} per million (prices.yaml, "
                            f"{job.model})" if tokens is not None and rate is not None else
                            f"no training price for {job.model} in prices.yaml")})
        self.save()
        return self.manifest

    def cancelled(self, job: Any) -> str:
        return (f"fine-tuning job {job.id} was cancelled; start a new one with `evals finetune "
                f"{self.task.name} --on {self.provider} --force`")

    def line_named(self, error: str, role: str) -> str:
        """Where a line the API's error names comes from: the uploaded file's line and the example it stands for."""
        found = re.search(r"\b(?:line|example)\s+(\d+)", error, re.IGNORECASE)
        ids = self.manifest["data"]["val_ids" if role == "validation" else "train_ids"]
        if not found or not 1 <= int(found.group(1)) <= len(ids):
            return ""
        line = int(found.group(1))
        sample_id, source_line = ids[line - 1]
        return (f". Line {line} of the uploaded {role} file ({self.out / (role + '.jsonl')}) is example "
                f"'{sample_id}' of {self.task.dir / str(self.task.train)}:{source_line}")

    def failure(self, job: Any) -> str:
        """A failed or cancelled job in words: the API's error, and the example a line it names stands for."""
        if job.status == "cancelled":
            return self.cancelled(job)
        error = job.error.message if job.error else "no reason given"
        text = f"fine-tuning job {job.id} failed: {error}"
        if job.error and job.error.code:
            text += f" ({job.error.code}{', ' + job.error.param if job.error.param else ''})"
        role = "validation" if job.error and job.error.param == "validation_file" else "training"
        return text + self.line_named(error, role)


def fine_tune_class(settings: HostedSettings) -> type[HostedFineTune]:
    """The vendor's HostedFineTune, named by the settings' class."""
    return type(settings).fine_tune


HostedConfig.fine_tune = HostedFineTune


def new_manifest(kind: type[HostedFineTune], task: Task, settings: HostedSettings, name: str, config: ModelConfig,
                 train: Sequence[Sample], val: Sequence[Sample], all_samples: Sequence[Sample],
                 overlap: list[Any]) -> dict[str, Any]:
    from evals.run.manifest import git_state, package_versions

    return {
        "kind": "evals-hosted-finetune", "name": name, "provider": kind.provider, "created_at": _now(),
        "server": redact_url(config.base_url) or kind.server,
        "model_spec": f"{kind.provider}:ft@{name}", "base": settings.base, "config": settings.to_dict(),
        "task": {"name": task.name, "path": str(task.path), "hash": task.hash},
        "data": {"train_file": task.train, "train_hash": samples_hash(all_samples), "train_examples": len(train),
                 "val_examples": len(val), "train_ids": [[s.id, s.line] for s in train],
                 "val_ids": [[s.id, s.line] for s in val],
                 "golden_overlap_allowed": [{"golden": o.golden_id, "train": o.train_id, "exact": o.exact}
                                            for o in overlap]},
        "job": None, "fine_tuned_model": None, "trained_tokens": None, "cost": None,
        "packages": package_versions(), "git": git_state(Path.cwd()),
    }


def _previous_job(previous: dict[str, Any] | None) -> dict[str, Any] | None:
    return (previous or {}).get("job") or None


async def train_hosted(task: Task, settings: HostedSettings, name: str, *, resume: bool = False, force: bool = False,
                       allow_overlap: bool = False, console: Any = None, progress_mode: str = "bar",
                       on_poll: Callable[[Any], None] | None = None, subset: tuple[Sequence[Sample],
                                                                                   Sequence[Sample]] | None = None,
                       prompt_model: ModelConfig | None = None) -> dict[str, Any]:
    """Fine-tune through the provider's API and return the manifest once the job has succeeded. Raises
    EvalsError (exit 2) for a refused request or a failed or cancelled job, KeyboardInterrupt on Ctrl-C (the
    job keeps running; `resume=True` re-attaches). `subset` (train, validation samples) replaces the split of the
    task's train file, and `prompt_model` the task entry whose prompt settings the chats follow (a learning
    curve's sizes: finetune/curve.py)."""
    from finetune.hosted_progress import HostedProgress

    kind = fine_tune_class(settings)
    # the task's entry: its prompt settings and server
    config = prompt_model or task.model_config(f"{kind.provider}:ft@{name}")
    previous = read_manifest(name)
    job = _previous_job(previous)
    path = hosted_dir(name) / MANIFEST_FILE
    if previous and previous.get("provider", "openai") != kind.provider:
        raise EvalsError(f"{path} holds a {previous.get('provider')} fine-tune, not a {kind.provider} one: give this "
                         "one another --name")
    if resume:
        if job is None:
            raise EvalsError(f"nothing to resume: {path} holds no fine-tuning job; start one without --resume")
        try:  # a hand-edited manifest: one line naming the setting
            recorded = validated(type(settings), {**(previous.get("config") or {}), "poll_s": settings.poll_s},
                                 "config")
        except EvalsError as e:
            raise EvalsError(e.message, file=path, field=e.field) from None
        ft = kind(task, recorded, name, config, previous)
    else:
        if job is not None and not force:
            what = (f"its model {previous['fine_tuned_model']}" if previous.get("fine_tuned_model") else
                    f"job {job['id']} ({job['status']})")
            raise EvalsError(f"{path} already holds {what}: `--resume` re-attaches to a running job, `--force` "
                             "trains a new one")
        kind.check(settings, config)
        samples = load_train(task)
        overlap = check_overlap(task, samples, allow=allow_overlap)
        train, val = subset if subset is not None else split(samples, settings.val_fraction, settings.seed)
        manifest = new_manifest(kind, task, settings, name, config, train, val, samples, overlap)
        if previous:  # files already uploaded for this fine-tune are reused by content
            manifest["data"]["files"] = previous.get("data", {}).get("files", {})
            manifest["submission"] = previous.get("submission") if job is None else None
        ft = kind(task, settings, name, config, manifest)
        contents = {"training": _jsonl(training_chats(task, train, config), task),
                    "validation": _jsonl(training_chats(task, val, config), task) if val else None}
    ft.connect()
    try:
        if not resume:
            if job is not None and job["status"] in kind.active:  # --force: one job at a time, not two paid for
                await ft.cancel(job["id"])
                (console.print if console else print)(f"cancelled the previous job {job['id']}")
            training = await ft.upload("training", contents["training"])
            validation = await ft.upload("validation", contents["validation"]) if contents["validation"] else None
            job_id = await ft.create_job(training, validation)
        else:
            job_id = job["id"]
        with HostedProgress(console, job_id, progress_mode) as progress:
            finished = await ft.follow(job_id, progress, on_poll)
        return await ft.finish(finished)
    finally:
        await ft.close()


def run_hosted(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """`train_hosted` from synchronous code; Ctrl-C arrives as KeyboardInterrupt after the client is closed."""
    return asyncio.run(train_hosted(*args, **kwargs))
