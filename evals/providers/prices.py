"""Prices: the shipped table (prices.yaml), per-model overrides, and the cost of one call."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import yaml

from evals.types import ModelConfig, Price


@cache
def price_table() -> dict[str, dict[str, Price]]:
    raw = yaml.safe_load(files("evals.providers").joinpath("prices.yaml").read_text())
    return {prov: {model: Price(r["input"], r["output"], r.get("cached_input"), r.get("cache_write"))
                   for model, r in models.items()} for prov, models in raw.items()}


def price_for(config: ModelConfig) -> Price:
    """The model's price: its task override, else the longest matching name in the table, else free."""
    if config.price is not None:
        return config.price
    table = price_table().get(config.spec.provider, {})
    matches = [name for name in table if config.spec.model.startswith(name)]
    return table[max(matches, key=len)] if matches else Price()
