"""A hosted fine-tune through Together AI's fine-tuning API (its official `together` SDK): a LoRA fine-tune of an
open model, as finetune/hosted.py runs OpenAI's, with Together's calls in place of OpenAI's:

- `files.upload`: POST /v1/files with the content's sha256, answered by a 302 to a PUT of the bytes (then
  /v1/files/{id}/preprocess), or by a 409 naming the file the same checksum already made, which is then reused;
  the file id is also kept in the manifest by sha256, so a resumed or forced fine-tune never uploads twice;
- `fine_tuning.create` (which first asks /v1/fine-tunes/models/limits and /v1/fine-tunes/estimate-price): the job
  carries no metadata, so the submission token ends its `suffix`, and a job created just before a crash is found
  again among /v1/fine-tunes by it;
- polled with `fine_tuning.retrieve` and `list_events` (step / total_steps and the job's messages) until it is
  completed, cancelled or in error; the trained model is the job's `model_output_name` (`together:ft@NAME`
  resolves to it) and the training cost is the job's own `total_price`, which the API gives in nanodollars.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field

from evals.errors import EvalsError
from evals.types import ModelConfig
from finetune.hosted import HostedFineTune, HostedSettings

NANODOLLARS = 1_000_000_000  # the SDK's own NANODOLLAR (together/lib/utils/tools.py): total_price / this = USD
ACTIVE = ("pending", "queued", "running", "compressing", "uploading", "cancel_requested")
SUFFIX_MAX = 40  # the API's limit on a job's suffix
TOKEN_HEX = 4  # bytes of the submission token: 8 hex characters at the end of the suffix


class TogetherConfig(HostedSettings):
    """Settings of a Together AI fine-tune (LoRA); unset hyperparameters are the API's defaults."""

    base: str = Field("meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
                      description="Together's base model to fine-tune (one its fine-tuning models list names)")
    learning_rate: Annotated[float, Field(gt=0)] | None = Field(None, description="peak learning rate (default: "
                                                                                  "the API's, 1e-5)")
    lora_r: Annotated[int, Field(ge=1)] | None = Field(None, description="LoRA rank (default: the base's)")
    n_evals: Annotated[int, Field(ge=0)] = Field(1, description="evaluations of the validation file during "
                                                                "training (each is billed as tokens processed)")


class TogetherFineTune(HostedFineTune):
    provider: ClassVar[str] = "together"
    vendor: ClassVar[str] = "Together AI"
    server: ClassVar[str] = "https://api.together.ai"
    active: ClassVar[tuple[str, ...]] = ACTIVE
    succeeded: ClassVar[str] = "completed"

    @classmethod
    def check(cls, settings: Any, config: ModelConfig) -> None:
        """Nothing known before the call: the API's model limits (create's first call) refuse a base it cannot
        fine-tune, in its own words."""

    def connect(self) -> None:
        from evals.providers._http import open_client

        self._sdk, self._client, self._secrets, _ = open_client(self.config, "together", "AsyncTogether",
                                                                "TOGETHER_API_KEY", "TOGETHER_BASE_URL", "Together AI",
                                                                aiohttp=False)  # the together[aiohttp] extra: not needed

    async def upload(self, role: str, content: bytes) -> str:
        digest, local = self.keep_local(role, content)
        if kept := self.kept_file(role, digest):
            return kept

        async def call() -> Any:
            try:
                return await self._client.files.upload(local, purpose="fine-tune", check=True)
            except self._sdk.APIError:
                raise
            except self._sdk.TogetherError as e:  # the SDK's own check of the file, before any request
                raise EvalsError(f"Together AI's SDK refused the {role} file: {e}", file=local) from None

        found = await self.api(f"accept the {role} file", call)
        return self.keep_file(role, found.id, digest, content, local.name, local)

    async def create_job(self, training: str, validation: str | None) -> str:
        token = self.manifest.get("submission")
        if token:
            jobs = await self.api("list fine-tuning jobs", lambda: self._client.fine_tuning.list())
            found = next((j for j in jobs.data if (j.suffix or "").endswith("-" + token)), None)
            if found is not None:
                return self._keep_job(found)
        token = self.new_submission(TOKEN_HEX)
        s = self.settings
        stem = (s.suffix or self.name)[:SUFFIX_MAX - 2 * TOKEN_HEX - 1]
        request: dict[str, Any] = {"training_file": training, "model": s.base, "suffix": f"{stem}-{token}",
                                   "lora": True, "random_seed": s.seed, "train_on_inputs": "auto"}
        if validation:
            request.update(validation_file=validation, n_evals=s.n_evals)
        chosen = {"n_epochs": s.epochs, "batch_size": s.batch_size, "learning_rate": s.learning_rate,
                  "lora_r": s.lora_r}
        request.update({k: v for k, v in chosen.items() if v is not None})

        async def call() -> Any:
            try:
                return await self._client.fine_tuning.create(**request)
            except ValueError as e:  # the SDK's check against the base's limits (a batch size too large, say)
                raise EvalsError(f"Together AI's SDK refused the job: {e}", field="config") from None

        return self._keep_job(await self.api("create the fine-tuning job", call))

    async def cancel(self, job_id: str) -> None:
        await self.api("cancel the fine-tuning job", lambda: self._client.fine_tuning.cancel(job_id))

    async def retrieve(self, job_id: str) -> Any:
        return await self._client.fine_tuning.retrieve(job_id)

    async def new_events(self, job_id: str) -> list[tuple[dict[str, Any] | None, str | None]]:
        """Events carry no id: those past the count already seen, in the order they happened. A step event
        (step, total_steps) moves the bar; an error event is kept as the job's error."""
        listed = await self.api("list the job's events", lambda: self._client.fine_tuning.list_events(job_id))
        events = sorted(listed.data, key=lambda e: e.created_at)
        seen = self.manifest.get("events_seen", 0)
        out: list[tuple[dict[str, Any] | None, str | None]] = []
        for event in events[seen:]:
            metric = None
            if event.step is not None and event.total_steps:
                metric = {"step": event.step, "total_steps": event.total_steps, "train_loss": None,
                          "valid_loss": None}
            if event.type == "job_error" or event.level == "error":
                self.manifest["job"]["error"] = event.message
            out.append((metric, event.message))
        self.manifest["events_seen"] = len(events)
        return out

    def job_state(self, job: Any) -> dict[str, Any]:
        return {"status": job.status, "updated_at": job.updated_at.isoformat() if job.updated_at else None,
                "token_count": job.token_count, "total_price": job.total_price,
                "model_output_name": job.x_model_output_name}

    def tokens(self, job: Any) -> int | None:
        return job.token_count

    async def finish(self, job: Any) -> dict[str, Any]:
        """Record a completed job's model, tokens processed and cost (its total_price); raise for any other end."""
        if job.status != self.succeeded:
            raise EvalsError(self.failure(job), file=self.path)
        price, tokens = job.total_price, job.token_count
        usd = price / NANODOLLARS if price is not None else None
        processed = f", {tokens:,} tokens processed (training and validation)" if tokens is not None else ""
        self.manifest.update(
            fine_tuned_model=job.x_model_output_name, trained_tokens=tokens,
            cost={"training_price_per_mtok": None, "training_cost_usd": usd, "total_price_nanodollars": price,
                  "basis": (f"the job's total_price, {price:,} nanodollars{processed}" if price is not None else
                            "the job reported no total_price")})
        self.save()
        return self.manifest

    def failure(self, job: Any) -> str:
        if job.status == "cancelled":
            return self.cancelled(job)
        error = self.manifest["job"].get("error") or "no reason given"
        return f"fine-tuning job {job.id} ended in {job.status}: {error}" + self.line_named(error, "training")


TogetherConfig.fine_tune = TogetherFineTune
