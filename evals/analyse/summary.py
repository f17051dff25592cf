"""Per-run summary: matches with a Wilson interval (clustered by example when repeated), metric aggregates,
errors, tokens, cost, latency."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from evals.analyse.aggregate import Classification, aggregate_run, judge_usage
from evals.analyse.repeats import attempts, clustered_rate_ci, repeat_stats, repeats_text
from evals.analyse.stats import format_rate, percentile, wilson_interval
from evals.types import decode_rate


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    model: str
    status: str
    n: int  # examples in the golden set (or the run's --limit)
    done: int  # attempts with a stored result (one per example unless repeated)
    matches: int  # matching attempts
    match_rate: float  # with repeats, the mean over examples of each one's share of passing attempts
    match_ci: tuple[float, float]
    matches_text: str
    metrics: dict[str, float | None]  # mean over examples that produced an answer
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: float  # what these calls cost (cached ones at their original price)
    spent_usd: float  # what this run actually paid (cache hits are free)
    latency_p50_s: float | None  # one request's service time (not its batch's, not its queue wait)
    latency_p95_s: float | None
    ttft_p50_s: float | None = None  # time to first token; None when the run was not streamed
    ttft_p95_s: float | None = None
    tokens_per_s: float | None = None  # median output tokens per second of one request
    queue_p50_s: float | None = None  # median wait in the provider's own queue (local batches)
    cached_input_tokens: int = 0  # of input_tokens, read from the provider's prompt cache
    cache_write_tokens: int = 0
    calls_per_hour: float | None = None  # measured: answered calls per busy hour, at `concurrency` on `hardware`
    busy_s: float | None = None
    concurrency: int | None = None
    hardware: str | None = None
    metric_errors: dict[str, int] = field(default_factory=dict)  # examples where the metric itself failed
    classification: dict[str, Classification] = field(default_factory=dict)  # label metrics
    judge_calls: int = 0  # model calls made by metrics (judges); not in the tokens and cost above
    judge_input_tokens: int = 0
    judge_output_tokens: int = 0
    judge_cost_usd: float = 0.0
    judge_spent_usd: float = 0.0
    repeats: int = 1  # attempts asked of each example
    pass_at_k: int | None = None  # with repeats: examples where at least one attempt passed
    pass_all_k: int | None = None  # pass^k: examples where every attempt passed
    flaky: tuple[str, ...] = ()  # examples that passed some attempts and failed others
    batched: bool = False  # its calls went through the Batch API: costs are at batch prices
    cache_saved_usd: float = 0.0  # what the prompt cache's reads and writes saved against uncached input (< 0: cost)

    @property
    def total_cost_usd(self) -> float:
        """The model's calls plus the judges'."""
        return self.cost_usd + self.judge_cost_usd

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Result columns newer than the first stores, with the value an older row (or a frame built by hand) means.
TIMING_DEFAULTS = {"ttft_s": float("nan"), "queue_s": 0.0, "cached_input_tokens": 0, "cache_write_tokens": 0,
                   "mean_logprob": float("nan")}


def with_timing_columns(df: pd.DataFrame) -> pd.DataFrame:
    missing = {k: v for k, v in TIMING_DEFAULTS.items() if k not in df.columns}
    return df.assign(**missing) if missing else df


def cache_saving(df: pd.DataFrame, model: dict[str, Any] | None) -> tuple[bool, float]:
    """Whether the run was batched, and what its prompt-cache reads and writes saved against paying every
    input token as fresh input, at the model's rates (batch rates for a batched run)."""
    from evals.providers.prices import price_for
    from evals.run.manifest import config_from_dict

    try:
        config = config_from_dict(model or {})
    except (KeyError, TypeError, ValueError):
        return False, 0.0
    answered = df[df["error"].isna()] if len(df) else df
    if not len(answered) or not (answered["cached_input_tokens"].any() or answered["cache_write_tokens"].any()):
        return config.batch, 0.0
    price = price_for(config)
    tokens_in, tokens_out = answered["input_tokens"].sum(), answered["output_tokens"].sum()
    cached, written = answered["cached_input_tokens"].sum(), answered["cache_write_tokens"].sum()
    return config.batch, (price.cost(tokens_in, tokens_out, batch=config.batch)
                          - price.cost(tokens_in, tokens_out, cached, written, batch=config.batch))


def summarize(df: pd.DataFrame) -> RunSummary:
    """Summary of one stored run (from `load_run`). Errors and missing examples count as non-matches."""
    df = with_timing_columns(df)
    run = df.attrs["run"]
    n = int(run["n_samples"])
    matches = int(df["passed"].sum()) if len(df) else 0
    repeated = repeat_stats(df, n) if attempts(df) > 1 else None
    if repeated:
        match_rate, match_ci = float(np.mean(repeated.fractions)), clustered_rate_ci(repeated.fractions, repeated.k)
        matches_text = repeats_text(repeated, n)
    else:
        match_rate, match_ci, matches_text = (matches / n if n else 0.0), wilson_interval(matches, n), \
            format_rate(matches, n)
    ok = df[df["error"].isna()] if len(df) else df
    aggregates = aggregate_run(df)
    judged = judge_usage(df)
    timed = ok[~ok["cached"]] if len(ok) else ok
    if not len(timed):  # a fully cached run: report the timings recorded when first called
        timed = ok
    latencies = timed["latency_s"].tolist() if len(timed) else []
    ttfts = timed["ttft_s"].dropna().tolist() if len(timed) else []
    rates = [r for r in (decode_rate(o, lat, None if pd.isna(t) else t) for o, lat, t in
                         zip(timed["output_tokens"], timed["latency_s"], timed["ttft_s"])) if r is not None] \
        if len(timed) else []
    busy, served = run.get("busy_s"), run.get("served_calls")
    batched, saved = cache_saving(df, (df.attrs.get("manifest") or {}).get("model"))
    return RunSummary(
        run_id=run["id"],
        model=run["model"],
        status=run["status"],
        n=n,
        done=len(df),
        matches=matches,
        match_rate=match_rate,
        match_ci=match_ci,
        matches_text=matches_text,
        metrics={m: a.mean for m, a in aggregates.items()},
        errors=int(df["error"].notna().sum()) if len(df) else 0,
        input_tokens=int(df["input_tokens"].sum()) if len(df) else 0,
        output_tokens=int(df["output_tokens"].sum()) if len(df) else 0,
        cost_usd=float(df["cost_usd"].sum()) if len(df) else 0.0,
        spent_usd=float(df.loc[~df["cached"], "cost_usd"].sum()) if len(df) else 0.0,
        latency_p50_s=percentile(latencies, 50),
        latency_p95_s=percentile(latencies, 95),
        ttft_p50_s=percentile(ttfts, 50),
        ttft_p95_s=percentile(ttfts, 95),
        tokens_per_s=percentile(rates, 50),
        queue_p50_s=percentile(timed["queue_s"].tolist(), 50) if len(timed) and timed["queue_s"].any() else None,
        cached_input_tokens=int(df["cached_input_tokens"].sum()) if len(df) else 0,
        cache_write_tokens=int(df["cache_write_tokens"].sum()) if len(df) else 0,
        calls_per_hour=served / busy * 3600 if busy and served else None,
        busy_s=busy,
        concurrency=run.get("concurrency"),
        hardware=run.get("hardware"),
        metric_errors={m: a.errors for m, a in aggregates.items() if a.errors},
        classification={m: a.classification for m, a in aggregates.items() if a.classification},
        judge_calls=int(judged["calls"]),
        judge_input_tokens=int(judged["input_tokens"]),
        judge_output_tokens=int(judged["output_tokens"]),
        judge_cost_usd=float(judged["cost_usd"]),
        judge_spent_usd=float(judged["spent_usd"]),
        repeats=repeated.k if repeated else 1,
        pass_at_k=repeated.pass_at_k if repeated else None,
        pass_all_k=repeated.pass_all_k if repeated else None,
        flaky=repeated.flaky if repeated else (),
        batched=batched,
        cache_saved_usd=float(saved),
    )
