"""task.yaml's `decision:` block: what `compare` and `decide` weigh, validated at load with file, line and field.

    decision:
      baseline: openai:gpt-4o-mini
      candidate: local:smollm2+lora:finetune/adapters/resume-feedback
      min_gap: 0.05              # smallest match-rate gain worth acting on
      volume: 50000              # calls per month
      api_batch: false           # price API sides at Batch API rates (work that can wait)
      max_error_rate: 0.05       # refuse to decide when a side's provider failed on more examples
      max_p95_s: 2.0             # a side slower than this (p95) does not qualify
      in_house_only: false       # data may not leave the team's infrastructure: API sides excluded
      revisit_months: 6
      self_hosted: {gpu_hourly_usd: 0.80, utilisation: 0.7, ops_monthly_usd: 500, training_cost_usd: 5}

Each field's description is its documentation: the README's settings table is generated from it
(`settings_table`; a test keeps the two equal).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evals.types import ModelSpec

HOURS_PER_MONTH = 730  # 8760 / 12
DAYS_PER_MONTH = HOURS_PER_MONTH / 24


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SelfHosted(_Settings):
    """How a self-hosted model is paid for: GPU hours at a throughput and utilisation, operations, training."""

    gpu_hourly_usd: float = Field(gt=0, description="Price of one GPU hour (USD), as the cloud or the team pays it.")
    calls_per_hour: float | None = Field(
        None, gt=0, description="Calls one GPU serves per hour at the serving concurrency. Default: measured "
                                "(the newest `evals latency` profile of the model, else the run itself).")
    utilisation: float = Field(0.7, gt=0, le=1, description="Share of paid GPU hours that serve calls; idle hours "
                                                            "are paid too.")
    min_gpu_hours_per_month: float = Field(0.0, ge=0, le=HOURS_PER_MONTH * 1000, description=(
        "GPU hours paid each month however few the calls (730: one GPU always on)."))
    ops_monthly_usd: float = Field(0.0, ge=0, description="Engineering and operations cost per month (on-call, "
                                                          "upgrades, monitoring).")
    training_cost_usd: float = Field(0.0, ge=0, description="What training the adapter costs, once (GPU hours, "
                                                            "data work); charged to a side with a LoRA adapter.")
    amortize_months: float = Field(12.0, gt=0, description="Months a one-off training cost is spread over.")
    retrain_every_months: float | None = Field(
        None, gt=0, description="Retrain (and pay training again) every N months; replaces amortize_months.")
    models: tuple[str, ...] = Field((), description="Other model specs to cost as self-hosted, e.g. an openai: "
                                                    "spec whose base_url is your vLLM server.")
    hardware: str | None = Field(None, description="What production serves on (e.g. '1x L4 24GB'); printed beside "
                                                   "a given calls_per_hour.")

    @field_validator("models", mode="before")
    @classmethod
    def _specs(cls, value: Any) -> Any:
        if isinstance(value, list):
            value = tuple(value)
        if isinstance(value, tuple):
            return tuple(_spec(v) for v in value)
        return value

    @property
    def training_months(self) -> float:
        """Months one training is paid over: the retraining interval, else the amortisation period."""
        return self.retrain_every_months or self.amortize_months


class Decision(_Settings):
    """task.yaml's `decision:` settings."""

    baseline: str | None = Field(None, description="The prompted model (spec), e.g. openai:gpt-4o-mini.")
    candidate: str | None = Field(None, description="The alternative (spec), e.g. a local LoRA fine-tune.")
    min_gap: float = Field(0.05, gt=0, lt=1, description="Smallest gain in match rate worth acting on (0.05: 5 "
                                                         "points).")
    volume: float | None = Field(None, gt=0, description="Calls per month; costs are projected at 1x, 10x, 100x.")
    quality_only: bool = Field(False, description="Decide on quality alone; cost and latency are shown, not weighed.")
    api_batch: bool = Field(False, description="Price API sides at Batch API rates (half price), for work that can "
                                               "wait up to a day.")
    max_error_rate: float = Field(0.05, ge=0, le=1, description=(
        "Refuse to compare when a side's provider failed on more than this share of examples (errors would "
        "count as misses and bias the comparison)."))
    in_house_only: bool = Field(False, description="Data may not leave the team's infrastructure: API sides are "
                                                   "excluded.")
    in_house_reason: str | None = Field(None, description="Why (printed with the exclusion), e.g. 'resumes are "
                                                          "personal data'.")
    max_p95_s: float | None = Field(None, gt=0, description="Latency ceiling: a side whose p95 total latency is "
                                                            "above it does not qualify.")
    max_ttft_p95_s: float | None = Field(None, gt=0, description="Ceiling on time to first token (p95), for "
                                                                 "streamed use.")
    revisit_months: float = Field(6.0, gt=0, description="When the decision is due again (prices and models move); "
                                                         "`evals check` says when.")
    self_hosted: SelfHosted | None = Field(None, description="How self-hosted sides are paid for (see below).")

    @field_validator("baseline", "candidate", mode="before")
    @classmethod
    def _model_spec(cls, value: Any) -> Any:
        return _spec(value) if isinstance(value, str) else value

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> Decision:
        """Validate a `decision:` mapping; a bad value raises EvalsError naming the field (decision.x.y)."""
        from evals.yamlfile import validated

        return validated(cls, raw, "decision")


def _spec(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return str(ModelSpec.parse(value))
    except ValueError as e:
        raise ValueError(str(e)) from None


def settings_table(model: type[BaseModel] = Decision, prefix: str = "decision") -> list[tuple[str, str, str]]:
    """(field, default, description) for every setting, nested blocks included: the README table's rows."""
    rows = []
    for name, f in model.model_fields.items():
        nested = SelfHosted if name == "self_hosted" else None
        default = "required" if f.is_required() else json.dumps(f.default) if f.default not in (None, ()) else "-"
        rows.append((f"{prefix}.{name}", "" if nested else default, f.description or ""))
        if nested:
            rows += settings_table(nested, f"{prefix}.{name}")
    return rows
