"""Guarding quality over time: accepted baselines and `evals check` against them."""
