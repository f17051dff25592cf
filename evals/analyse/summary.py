"""Per-run summary: matches with a Wilson interval (clustered by example when repeated), metric aggregates,
errors, tokens, cost, latency. Results are folded in one at a time (RunTally), streamed from the store or read
from a frame, so a summary holds no frame of the run and, unrepeated, imports neither pandas nor numpy."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from evals.analyse.aggregate import Classification, MetricTally
from evals.analyse.rates import format_rate, mean, wilson_interval
from evals._util import decode_rate, percentile

if TYPE_CHECKING:
    import pandas as pd

    from evals.run.store import Store


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


def present(x: Any) -> bool:
    return x is not None and x == x  # NULL from the store, NaN from a frame


def _number(x: Any) -> Any:
    return x if present(x) else 0


def _count(x: Any) -> int:
    return int(x) if x is not None and x == x else 0


@dataclass
class RunTally:
    """A run's results folded in one at a time: counts and sums, the timings of answered calls (for percentiles),
    each metric's tally over answered attempts, and each example's passing attempts (for repeats)."""

    done: int = 0
    matches: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    costs: list[float] = field(default_factory=list)  # summed exactly at the end (math.fsum)
    spent: list[float] = field(default_factory=list)  # of the calls not answered from the cache
    answered_tokens: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # input, output, cached, written
    timings: dict[bool, list[tuple[float, float | None, int, float]]] = field(
        default_factory=lambda: {False: [], True: []})  # by cached: (latency, ttft, output tokens, queue)
    metrics: dict[str, MetricTally] = field(default_factory=dict)
    judges: dict[str, float] = field(default_factory=lambda: {
        "calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "spent_usd": 0.0})
    passes: dict[str, int] = field(default_factory=dict)  # by example, in the run's order
    last_attempt: int = 1

    def add(self, row: Mapping[str, Any]) -> None:
        """One result: a dict of the store's columns (`Store.result_rows`), scores decoded."""
        passed, cached, scores = bool(row["passed"]), bool(row["cached"]), row["scores"]
        tokens_in, tokens_out = _count(row["input_tokens"]), _count(row["output_tokens"])
        read, written = _count(row.get("cached_input_tokens")), _count(row.get("cache_write_tokens"))
        cost = row["cost_usd"]
        cost = float(cost) if present(cost) else 0.0
        self.done += 1
        self.matches += passed
        self.input_tokens += tokens_in
        self.output_tokens += tokens_out
        self.cached_input_tokens += read
        self.cache_write_tokens += written
        self.costs.append(cost)
        if not cached:
            self.spent.append(cost)
        example = row["example_id"]
        self.passes[example] = self.passes.get(example, 0) + passed
        attempt = row.get("attempt") or 1
        if attempt > self.last_attempt:
            self.last_attempt = int(attempt)
        for score in scores.values():
            if score.get("usage"):
                for key, value in score["usage"].items():
                    self.judges[key] = self.judges.get(key, 0) + value
        if present(row["error"]):
            self.errors += 1
            return
        answered = self.answered_tokens
        answered[0] += tokens_in
        answered[1] += tokens_out
        answered[2] += read
        answered[3] += written
        latency, ttft = row["latency_s"], row.get("ttft_s")
        if present(latency):  # a row stored without one has no timing to count
            self.timings[cached].append((latency, ttft if present(ttft) else None, tokens_out,
                                         _number(row.get("queue_s"))))
        metrics = self.metrics
        for metric, score in scores.items():
            tally = metrics.get(metric)
            if tally is None:
                tally = metrics[metric] = MetricTally()
            tally.add(score)

    def summary(self, run: Mapping[str, Any], manifest: Mapping[str, Any] | None) -> RunSummary:
        """The RunSummary of what was added, for this run record (as a dict) and manifest."""
        n = int(run["n_samples"])
        k = int((manifest or {}).get("repeats") or self.last_attempt)
        repeated = None
        if k > 1:
            from evals.analyse.repeats import clustered_rate_ci, repeats_text, stats_of_passes

            repeated = stats_of_passes(self.passes, k, n, self.done)
            match_rate = mean(repeated.fractions) or 0.0
            match_ci, matches_text = clustered_rate_ci(repeated.fractions, k), repeats_text(repeated, n)
        else:
            match_rate, match_ci, matches_text = (self.matches / n if n else 0.0), \
                wilson_interval(self.matches, n), format_rate(self.matches, n)
        aggregates = {m: self.metrics[m].aggregate() for m in sorted(self.metrics)}
        timed = self.timings[False] or self.timings[True]  # a fully cached run: the timings first recorded
        latencies = [t[0] for t in timed]
        ttfts = [t[1] for t in timed if t[1] is not None]
        rates = [r for r in (decode_rate(out, lat, ttft) for lat, ttft, out, _ in timed) if r is not None]
        queues = [t[3] for t in timed]
        busy, served = run.get("busy_s"), run.get("served_calls")
        batched, saved = cache_saving(self.answered_tokens, (manifest or {}).get("model"))
        return RunSummary(
            run_id=run["id"],
            model=run["model"],
            status=run["status"],
            n=n,
            done=self.done,
            matches=self.matches,
            match_rate=match_rate,
            match_ci=match_ci,
            matches_text=matches_text,
            metrics={m: a.mean for m, a in aggregates.items()},
            errors=self.errors,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_usd=math.fsum(self.costs),
            spent_usd=math.fsum(self.spent),
            latency_p50_s=percentile(latencies, 50),
            latency_p95_s=percentile(latencies, 95),
            ttft_p50_s=percentile(ttfts, 50),
            ttft_p95_s=percentile(ttfts, 95),
            tokens_per_s=percentile(rates, 50),
            queue_p50_s=percentile(queues, 50) if any(queues) else None,
            cached_input_tokens=self.cached_input_tokens,
            cache_write_tokens=self.cache_write_tokens,
            calls_per_hour=served / busy * 3600 if busy and served else None,
            busy_s=busy,
            concurrency=run.get("concurrency"),
            hardware=run.get("hardware"),
            metric_errors={m: a.errors for m, a in aggregates.items() if a.errors},
            classification={m: a.classification for m, a in aggregates.items() if a.classification},
            judge_calls=int(self.judges["calls"]),
            judge_input_tokens=int(self.judges["input_tokens"]),
            judge_output_tokens=int(self.judges["output_tokens"]),
            judge_cost_usd=float(self.judges["cost_usd"]),
            judge_spent_usd=float(self.judges["spent_usd"]),
            repeats=k if repeated else 1,
            pass_at_k=repeated.pass_at_k if repeated else None,
            pass_all_k=repeated.pass_all_k if repeated else None,
            flaky=repeated.flaky if repeated else (),
            batched=batched,
            cache_saved_usd=float(saved),
        )


def tally(rows: Iterable[Mapping[str, Any]]) -> RunTally:
    folded = RunTally()
    for row in rows:
        folded.add(row)
    return folded


def summarize_stored(run_id: str, store: Store) -> RunSummary:
    """A stored run's summary, its results streamed from the store: no frame, no pandas."""
    record = store.get_run(run_id)
    return tally(store.result_rows(record.id)).summary(dataclasses.asdict(record), record.manifest)


def summarize(df: pd.DataFrame) -> RunSummary:
    """Summary of a run's frame (from `load_run`, or built by hand with `score.<id>` value columns).
    Errors and missing examples count as non-matches."""
    return tally(frame_rows(df)).summary(df.attrs["run"], df.attrs.get("manifest"))


def frame_rows(df: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """A frame's rows as `Store.result_rows` gives them (only the columns a summary reads; no texts): scores from
    the `score.<id>` columns if that is all there is."""
    from evals.run.store import Store

    values = [c for c in df.columns if c.startswith("score.")] if "scores" not in df.columns else []
    df = with_timing_columns(df)
    columns = [c for c in (*Store.SUMMARY_COLUMNS, *values) if c in df.columns]
    for cells in zip(*(df[c].tolist() for c in columns), strict=True):
        row = dict(zip(columns, cells, strict=True))
        if values:
            row["scores"] = {c.removeprefix("score."): {"value": row[c] if present(row[c]) else None}
                             for c in values}
        yield row


def cache_saving(answered: list[int], model: dict[str, Any] | None) -> tuple[bool, float]:
    """Whether the run was batched, and what its prompt-cache reads and writes saved against paying every
    input token as fresh input, at the model's rates (batch rates for a batched run). `answered`: the input,
    output, cached and cache-written tokens of the answered calls."""
    from evals.providers.prices import price_for
    from evals.run.manifest import config_from_dict

    try:
        config = config_from_dict(model or {})
    except (KeyError, TypeError, ValueError):
        return False, 0.0
    tokens_in, tokens_out, cached, written = answered
    if not (cached or written):
        return config.batch, 0.0
    price = price_for(config)
    return config.batch, (price.cost(tokens_in, tokens_out, batch=config.batch)
                          - price.cost(tokens_in, tokens_out, cached, written, batch=config.batch))
