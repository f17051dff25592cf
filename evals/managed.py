"""task.yaml's `decision.managed:` (part of the kernel, imported by evals.types: it imports nothing of evals).
Its specs are checked and normalised by Decision, as the other blocks' are."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, model_validator

HOURS = 730  # evals.types.HOURS_PER_MONTH: one endpoint up all month


class Managed(BaseModel):
    """How a managed host's models are paid for: per token at their `price:` (serverless), or per endpoint hour."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    dedicated: tuple[str, ...] = Field((), description="Managed model specs served on a dedicated endpoint, paid per "
                                                       "hour; every other managed side is serverless (per token).")
    endpoint_hourly_usd: float | None = Field(None, gt=0, description="Price of one dedicated-endpoint hour (USD), "
                                                                      "as the host lists it for its hardware.")
    calls_per_hour: float | None = Field(
        None, gt=0, description="Calls one endpoint serves per hour. Default: measured (the newest `evals latency` "
                                "profile of the model, else the run itself).")
    utilisation: float = Field(0.7, gt=0, le=1, description="Share of the endpoint's paid hours that serve calls.")
    min_hours_per_month: float = Field(HOURS, ge=0, le=HOURS * 1000, description=(
        "Endpoint hours paid each month however few the calls (730: up all month; an endpoint bills while up)."))
    models: tuple[str, ...] = Field((), description="Other specs to cost as managed, e.g. an openai: spec whose "
                                                    "base_url is the host's OpenAI-compatible endpoint.")
    hardware: str | None = Field(None, description="The endpoint's hardware (e.g. '1x H100 80GB'); printed beside a "
                                                   "given calls_per_hour.")

    @model_validator(mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        if isinstance(value, dict):  # YAML lists, as the other blocks take them
            return {k: tuple(v) if k in ("models", "dedicated") and isinstance(v, list) else v
                    for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _priced(self) -> Managed:
        if self.dedicated and self.endpoint_hourly_usd is None:
            raise ValueError("dedicated endpoints need endpoint_hourly_usd (their price per hour)")
        return self

    def with_specs(self, check: Callable[[str], str]) -> Managed:
        """This block with its specs checked and normalised (Decision passes its spec check)."""
        return self.model_copy(update={k: tuple(map(check, getattr(self, k))) for k in ("models", "dedicated")})
