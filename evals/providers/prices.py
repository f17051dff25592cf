"""Prices: the shipped table (prices.yaml), per-model overrides, the cost of one call, and fine-tuning's
price per trained token."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import yaml

from evals.types import ModelConfig, Price

TRAINING = "training"  # the table's section of fine-tuning prices, beside one section per provider


@cache
def _raw() -> dict[str, Any]:
    return yaml.safe_load(files("evals.providers").joinpath("prices.yaml").read_text())


@cache
def price_table() -> dict[str, dict[str, Price]]:
    return {prov: {model: Price(r["input"], r["output"], r.get("cached_input"), r.get("cache_write"))
                   for model, r in models.items()} for prov, models in _raw().items() if prov != TRAINING}


def price_for(config: ModelConfig, model: str | None = None) -> Price:
    """The model's price: its task override, else the longest matching name in the table, else free.
    `model`: the name the API is sent, where the spec names it indirectly (`openai:ft@NAME`)."""
    if config.price is not None:
        return config.price
    table = price_table().get(config.spec.provider, {})
    name = model or config.spec.model
    matches = [known for known in table if name.startswith(known)]
    return table[max(matches, key=len)] if matches else Price()


def training_prices(provider: str) -> dict[str, float]:
    """Base model -> USD per million trained tokens, for the bases this provider fine-tunes."""
    return dict((_raw().get(TRAINING) or {}).get(provider) or {})


def training_price(provider: str, base: str) -> tuple[str, float] | None:
    """(the snapshot, its USD per million trained tokens) for a base named by snapshot or family; None if the
    table has no such base."""
    prices = training_prices(provider)
    if base in prices:
        return base, prices[base]
    family = [known for known in prices if known.startswith(base + "-")]
    return (family[0], prices[family[0]]) if len(family) == 1 else None
