"""Per-run summary: matches with a Wilson interval, metric means, errors, tokens, cost, latency."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from evals.stats import format_rate, mean, percentile, wilson_interval


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    model: str
    status: str
    n: int  # examples in the golden set (or the run's --limit)
    done: int  # examples with a stored result
    matches: int
    match_rate: float
    match_ci: tuple[float, float]
    matches_text: str
    metrics: dict[str, float | None]  # mean over examples that produced an answer
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: float  # what these calls cost (cached ones at their original price)
    spent_usd: float  # what this run actually paid (cache hits are free)
    latency_p50_s: float | None
    latency_p95_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(df: pd.DataFrame) -> RunSummary:
    """Summary of one stored run (from `load_run`). Errors and missing examples count as non-matches."""
    run = df.attrs["run"]
    n = int(run["n_samples"])
    matches = int(df["passed"].sum()) if len(df) else 0
    ok = df[df["error"].isna()] if len(df) else df
    metric_cols = [c for c in df.columns if c.startswith("score.")]
    latencies = ok.loc[~ok["cached"], "latency_s"].tolist() if len(ok) else []
    if not latencies and len(ok):  # a fully cached run: report the latency recorded when first called
        latencies = ok["latency_s"].tolist()
    return RunSummary(
        run_id=run["id"],
        model=run["model"],
        status=run["status"],
        n=n,
        done=len(df),
        matches=matches,
        match_rate=matches / n if n else 0.0,
        match_ci=wilson_interval(matches, n),
        matches_text=format_rate(matches, n),
        metrics={c.removeprefix("score."): mean(ok[c].tolist()) for c in metric_cols},
        errors=int(df["error"].notna().sum()) if len(df) else 0,
        input_tokens=int(df["input_tokens"].sum()) if len(df) else 0,
        output_tokens=int(df["output_tokens"].sum()) if len(df) else 0,
        cost_usd=float(df["cost_usd"].sum()) if len(df) else 0.0,
        spent_usd=float(df.loc[~df["cached"], "cost_usd"].sum()) if len(df) else 0.0,
        latency_p50_s=percentile(latencies, 50),
        latency_p95_s=percentile(latencies, 95),
    )
