"""What each side of a decision costs and how fast it answers, with where every figure comes from.

API sides are priced as billed: the mean recorded tokens of a call (fresh input, prompt-cache reads
and writes, output) at the model's own rates, at Batch API rates when `decision.api_batch` is set.
A hosted fine-tune (`openai:ft@NAME`) is an API side at its fine-tuned model's rates, plus its one-off
training (the job's trained tokens x the training price) amortised as a self-hosted adapter's is.
Managed sides (a provider that is `managed`, such as together:, or a spec in `decision.managed.models`) are
either serverless, an API side at the model's `price:` (no managed rate is shipped), or on a dedicated endpoint
(`decision.managed.dedicated`), priced per endpoint hour as a GPU hour is below, at least min_hours_per_month;
a managed fine-tune's training (its job's own price) is amortised as a hosted fine-tune's is.
Self-hosted sides (provider `local`, a `+lora:` adapter, or a spec listed in
`decision.self_hosted.models`) are priced as they are paid for:

    GPU hours / month = volume / (calls_per_hour x utilisation), at least min_gpu_hours_per_month
    monthly           = GPU hours x gpu_hourly_usd + ops_monthly_usd + training_cost_usd / training months

calls_per_hour is the one given in task.yaml, else measured: the newest `evals latency` profile of
the model (the concurrency with the most calls/hour that meets the latency ceilings), else the run
itself (answered calls per busy hour at its concurrency). Each figure says which, and on what hardware.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evals.errors import EvalsError
from evals.providers import provider_class
from evals.providers.prices import price_for
from evals.run.manifest import config_from_dict
from evals.types import DAYS_PER_MONTH, Decision, Managed, ModelConfig, ModelSpec, Price, SelfHosted

if TYPE_CHECKING:
    from evals.analyse.compare import Comparison, Side
    from evals.run.store import LatencyProfile


@dataclass(frozen=True)
class Latency:
    """One side's request latency and throughput, from one measurement (a run or a latency profile level)."""

    p50_s: float | None
    p95_s: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    tokens_per_s: float | None
    calls_per_hour: float | None
    concurrency: int | None
    hardware: str | None
    source: str  # e.g. "run 3f9cc320" or "latency profile 2 (2026-12-01)"

    @property
    def where(self) -> str:
        """'at concurrency 8 on CPU: ... (run 3f9cc320)'."""
        at = f"at concurrency {self.concurrency}" if self.concurrency else ""
        on = f"on {self.hardware}" if self.hardware else "on unrecorded hardware"
        return " ".join(p for p in (at, on, f"({self.source})") if p)


PER_TOKEN = ("api", "managed (serverless)")  # hostings billed per token


@dataclass(frozen=True)
class CostModel:
    """Monthly cost = fixed + max(per_call x volume, floor)."""

    model: str
    hosting: str  # "api", "self-hosted", "managed (serverless)" or "managed (dedicated)"
    per_call_usd: float  # the marginal cost of one more call (API: as billed; self-hosted: its GPU time)
    fixed_monthly_usd: float = 0.0  # operations plus amortised training
    floor_monthly_usd: float = 0.0  # GPU hours paid for even when idle
    tokens_per_call: float | None = None  # mean input + output tokens recorded
    basis: str = ""  # how the numbers were reached, in words
    calls_per_hour: float | None = None  # self-hosted: the throughput the GPU time per call was computed from
    calls_per_hour_from: str = ""  # and where that came from: given, or where it was measured

    def monthly_usd(self, volume: float) -> float:
        return self.fixed_monthly_usd + max(self.per_call_usd * volume, self.floor_monthly_usd)


@dataclass(frozen=True)
class SideFigures:
    """Every cost and throughput figure the reports show for one side, computed once: the terminal, Markdown,
    HTML and JSON reports all print these (the basis of each is stated once, under Assumptions)."""

    role: str  # baseline or candidate
    model: str
    hosting: str  # api, self-hosted, managed (serverless | dedicated), or '-' where it could not be costed
    marginal_per_call_usd: float | None  # one more call: as billed (API), or its GPU time (self-hosted)
    fixed_monthly_usd: float | None  # paid whatever the volume: operations and amortised training
    gpu_minimum_monthly_usd: float | None  # GPU hours paid each month however few the calls
    volume: float | None  # decision.volume
    monthly_usd: float | None  # at the volume: fixed + max(marginal x volume, GPU minimum)
    per_call_at_volume_usd: float | None  # monthly / volume: what a call costs all told at that volume
    calls_per_hour: float | None  # the throughput the cost rests on (self-hosted), else as measured
    calls_per_hour_from: str  # given (and on what hardware), or where it was measured
    latency_from: str  # where the latency figures were measured
    latency: Latency


def side_figures(role: str, side: Side, model: CostModel | None, latency: Latency,
                 volume: float | None) -> SideFigures:
    """One side's figures from its cost model (None: not costed) and its latency measurement."""
    monthly = model.monthly_usd(volume) if model and volume else None
    measured = latency.calls_per_hour
    if model is not None and model.calls_per_hour is not None:  # the throughput the cost was computed from
        calls_per_hour, source = model.calls_per_hour, model.calls_per_hour_from
        if measured and measured != calls_per_hour:
            source += f"; not the {measured:,.0f} measured {latency.where}"
    else:
        calls_per_hour, source = measured, f"measured {latency.where}" if measured else "not measured"
    return SideFigures(
        role, side.summary.model, model.hosting if model else "-", model.per_call_usd if model else None,
        model.fixed_monthly_usd if model else None, model.floor_monthly_usd if model else None, volume, monthly,
        monthly / volume if monthly is not None and volume else None, calls_per_hour, source,
        latency.where if latency.p50_s is not None else "not measured", latency)


@dataclass(frozen=True)
class CostRow:
    volume: float
    baseline_usd: float
    candidate_usd: float


@dataclass(frozen=True)
class CostProjection:
    baseline: CostModel
    candidate: CostModel
    rows: tuple[CostRow, ...]  # at the volume, 10x and 100x (empty without a volume)
    break_even_volume: float | None  # calls/month where the cheaper side flips; None if it never does
    break_even_tokens_per_day: float | None  # the same in tokens a day (the API side's mean tokens per call)

    @property
    def modes(self) -> str:
        """How each side is paid for: 'baseline api, candidate managed (dedicated)'."""
        return f"baseline {self.baseline.hosting}, candidate {self.candidate.hosting}"


def side_config(side: Side) -> ModelConfig:
    try:
        return config_from_dict(side.config)
    except (KeyError, TypeError, ValueError):
        return ModelConfig(spec=ModelSpec.parse(side.summary.model))


def is_self_hosted(config: ModelConfig, settings: SelfHosted | None) -> bool:
    """A model the team serves itself: its provider is (local), it has a LoRA adapter, or `self_hosted.models`
    lists it (an openai: spec whose base_url is your vLLM server). A provider not installed here is not."""
    listed = settings.models if settings else ()
    try:
        served_here = provider_class(config.spec.provider).self_hosted
    except EvalsError:
        served_here = False
    return served_here or bool(config.adapter_dir) or str(config.spec) in listed


def managed_mode(config: ModelConfig, settings: Managed | None) -> str | None:
    """'serverless' or 'dedicated' for a model a managed host serves (its provider is `managed`, or
    `decision.managed.models` lists it); None for any other."""
    spec = str(config.spec)
    try:
        managed = provider_class(config.spec.provider).managed
    except EvalsError:
        managed = False
    if not (managed or (settings is not None and spec in settings.models)):
        return None
    return "dedicated" if settings is not None and spec in settings.dedicated else "serverless"


def run_latency(side: Side) -> Latency:
    s = side.summary
    return Latency(s.latency_p50_s, s.latency_p95_s, s.ttft_p50_s, s.ttft_p95_s, s.tokens_per_s, s.calls_per_hour,
                   s.concurrency, s.hardware, f"run {s.run_id}")


def meets_ceilings(level: Mapping[str, Any], d: Decision) -> bool:
    return all(ceiling is None or (level.get(key) is not None and level[key] <= ceiling)
               for key, ceiling in (("latency_p95_s", d.max_p95_s), ("ttft_p95_s", d.max_ttft_p95_s)))


def profile_latency(profile: LatencyProfile, d: Decision) -> tuple[Latency, str]:
    """The profile's serving point: the most calls/hour among levels without too many errors that meet the
    latency ceilings; else the lowest p95. Returns it and a line on the choice."""
    usable = [lv for lv in profile.levels if lv.get("calls_per_hour") and lv["errors"] <= d.max_error_rate * lv["n"]]
    usable = usable or profile.levels
    meeting = [lv for lv in usable if meets_ceilings(lv, d)]
    if meeting:
        level = max(meeting, key=lambda lv: lv["calls_per_hour"] or 0)
        why = ("the concurrency with the most calls/hour" +
               (" that meets the latency ceilings" if d.max_p95_s or d.max_ttft_p95_s else ""))
    else:
        level = min(usable, key=lambda lv: lv.get("latency_p95_s") or float("inf"))
        why = "no measured concurrency meets the latency ceilings, so the one with the lowest p95"
    latency = Latency(level.get("latency_p50_s"), level.get("latency_p95_s"), level.get("ttft_p50_s"),
                      level.get("ttft_p95_s"), level.get("tokens_per_s"), level.get("calls_per_hour"),
                      level["concurrency"], profile.hardware,
                      f"`evals latency` profile {profile.id}, {profile.created_at[:10]}")
    measured = ", ".join(str(lv["concurrency"]) for lv in profile.levels)
    return latency, f"{profile.model}: measured at concurrency {measured}; serving at {level['concurrency']}, {why}."


def api_cost(config: ModelConfig, side: Side, d: Decision, hosting: str = "api") -> tuple[CostModel | None, str]:
    """Per token as billed: an API side, or a managed serverless one (`hosting`)."""
    model = str(config.spec)
    finetuned = side.finetuned or {}
    price = price_for(config, finetuned.get("model"))
    if price == Price():
        shipped = ("" if hosting == "api" else " (prices.yaml ships no managed host's rates: give its per-token "
                   "rates for this model, from the host's pricing page)")
        return None, f"Cost unknown: no price known for {model}; add `price:` to its entry in task.yaml{shipped}."
    if side.mean_input_tokens is None:
        return None, f"Cost unknown: {model} answered no example to take token counts from."
    tin, tout = side.mean_input_tokens, side.mean_output_tokens or 0.0
    cached, written = side.mean_cached_input_tokens or 0.0, side.mean_cache_write_tokens or 0.0
    batch = d.api_batch or config.batch
    per_call = price.cost(tin, tout, cached, written, batch=batch)
    rates = f"${price.input_per_mtok:g} input, ${price.output_per_mtok:g} output"
    tokens = f"{tin:,.0f} input ({cached:,.0f} cached"
    if price.cached_input_per_mtok is not None:
        rates += f", ${price.cached_input_per_mtok:g} cached input"
    if written or price.cache_write_per_mtok is not None:
        rates += f", ${(price.cache_write_per_mtok or price.input_per_mtok):g} cache write"
        tokens += f", {written:,.0f} written to the cache"
    who = f"{model} ({finetuned['model']}, fine-tuned by job {finetuned['job_id']})" if finetuned else model
    basis = (f"{who} {'API' if hosting == 'api' else hosting}: {tokens}) and {tout:,.0f} output tokens per call, the means recorded in run "
             f"{side.summary.run_id}, at {rates} per million tokens")
    if batch:
        why = "the run was batched" if config.batch else "decision.api_batch"
        basis += f", less the Batch API discount of {price.batch_discount:.0%} ({why})"
    basis += f" = ${per_call:.6f} per call"
    training, line = hosted_training(finetuned, d)
    return CostModel(model, hosting, per_call, training, tokens_per_call=tin + tout, basis=basis + line), ""


def hosted_training(finetuned: Mapping[str, Any], d: Decision) -> tuple[float, str]:
    """A hosted fine-tune's one-off training cost per month (trained tokens x training price, both from its
    job), amortised like a self-hosted adapter's; and the words for the basis."""
    if not finetuned:
        return 0.0, ""
    cost, tokens, rate = (finetuned.get(k) for k in ("training_cost_usd", "trained_tokens", "training_price_per_mtok"))
    if cost is None:
        return 0.0, (f"; training cost unknown (no training price for {finetuned.get('base')} in prices.yaml, and "
                     "none from the job), so none is charged")
    settings = d.self_hosted
    if settings is not None and settings.retrain_every_months:
        months, every = settings.retrain_every_months, "retrained every {:g} months (decision.self_hosted)"
    else:
        given = settings is not None and "amortize_months" in settings.model_fields_set
        months = settings.amortize_months if settings else SelfHosted.model_fields["amortize_months"].default
        every = "amortised over {:g} months (" + ("decision.self_hosted" if given else "default") + ")"
    every = every.format(months)
    monthly = cost / months
    how = (f"{tokens:,} trained tokens x ${rate:g} per million" if rate is not None else
           f"the job's own total_price, {tokens or 0:,} tokens processed")
    return monthly, (f"; training ${cost:,.2f} once ({how}, from job {finetuned['job_id']}) {every} = "
                     f"${monthly:,.2f}/month")


def throughput(settings: SelfHosted | Managed, block: str, latency: Latency) -> tuple[float, str] | None:
    """Calls per hour: given in `decision.BLOCK.calls_per_hour` (on its hardware), else measured; None if neither."""
    if settings.calls_per_hour is not None:
        return settings.calls_per_hour, f"given (decision.{block}.calls_per_hour" + (
            f", on {settings.hardware})" if settings.hardware else ")")
    if latency.calls_per_hour:
        return latency.calls_per_hour, f"measured {latency.where}"
    return None


def dedicated_cost(config: ModelConfig, side: Side, d: Decision, latency: Latency) -> tuple[CostModel | None, str]:
    """A managed dedicated endpoint: paid per hour while up (at least min_hours_per_month), serving
    calls_per_hour at its utilisation; plus the fine-tune's training, amortised."""
    model, settings = str(config.spec), d.managed
    assert settings is not None and settings.endpoint_hourly_usd is not None  # validated at load
    found = throughput(settings, "managed", latency)
    if found is None:
        return None, (f"Cost unknown: {model} is on a dedicated endpoint and has no decision.managed.calls_per_hour "
                      "and no measured throughput (measure it with `evals latency`).")
    cph, source = found
    hourly = settings.endpoint_hourly_usd
    per_call = hourly / (cph * settings.utilisation)
    training, line = hosted_training(side.finetuned or {}, d)
    basis = (f"{model} managed (dedicated endpoint): {cph:,.0f} calls/hour {source}; endpoint ${hourly:g}/hour "
             f"(decision.managed, given) at {settings.utilisation:.0%} utilisation = ${per_call:.6f} per call; "
             + (f"at least {settings.min_hours_per_month:g} endpoint hours a month" if settings.min_hours_per_month
                else "paid only for the hours used"))
    return CostModel(model, "managed (dedicated)", per_call, training, hourly * settings.min_hours_per_month,
                     (side.mean_input_tokens or 0.0) + (side.mean_output_tokens or 0.0), basis + line, cph,
                     source), ""


def self_hosted_cost(config: ModelConfig, side: Side, settings: SelfHosted | None,
                     latency: Latency) -> tuple[CostModel | None, str]:
    model = str(config.spec)
    if settings is None:
        return None, (f"Cost unknown: {model} is self-hosted and decision.self_hosted (at least gpu_hourly_usd) "
                      "is not set.")
    found = throughput(settings, "self_hosted", latency)
    if found is None:
        return None, (f"Cost unknown: {model} has no decision.self_hosted.calls_per_hour and no measured "
                      "throughput (measure it with `evals latency`).")
    cph, source = found
    per_call = settings.gpu_hourly_usd / (cph * settings.utilisation)
    trained = bool(config.adapter_dir) or str(config.spec) in settings.trained
    training = settings.training_cost_usd / settings.training_months if trained else 0.0
    basis = (f"{model} self-hosted: {cph:,.0f} calls/hour {source}; GPU ${settings.gpu_hourly_usd:g}/hour at "
             f"{settings.utilisation:.0%} utilisation = ${per_call:.6f} per call")
    basis += (f"; at least {settings.min_gpu_hours_per_month:g} GPU hours a month"
              if settings.min_gpu_hours_per_month else "; GPU paid only for the hours used")
    basis += f"; operations ${settings.ops_monthly_usd:,.2f}/month"
    if trained:
        every = (f"retrained every {settings.retrain_every_months:g} months" if settings.retrain_every_months
                 else f"amortised over {settings.amortize_months:g} months")
        basis += f"; training ${settings.training_cost_usd:,.2f} {every} = ${training:,.2f}/month"
    return CostModel(model, "self-hosted", per_call, settings.ops_monthly_usd + training,
                     settings.gpu_hourly_usd * settings.min_gpu_hours_per_month,
                     (side.mean_input_tokens or 0.0) + (side.mean_output_tokens or 0.0), basis, cph, source), ""


def cost_model(side: Side, d: Decision, latency: Latency) -> tuple[CostModel | None, str]:
    """The side's cost model, or None with the reason it cannot be costed."""
    config = side_config(side)
    mode = managed_mode(config, d.managed)
    if mode == "dedicated":
        return dedicated_cost(config, side, d, latency)
    if mode is None and is_self_hosted(config, d.self_hosted):
        return self_hosted_cost(config, side, d.self_hosted, latency)
    return api_cost(config, side, d, "api" if mode is None else f"managed ({mode})")


def break_even_volume(x: CostModel, y: CostModel) -> float | None:
    """The smallest monthly volume > 0 at which the cheaper of x and y changes; None if it never does.

    Both costs are piecewise linear (a kink where per-call cost reaches the floor), so the
    difference is affine between kinks and each crossing is found exactly.
    """
    kinks = sorted({m.floor_monthly_usd / m.per_call_usd for m in (x, y)
                    if m.per_call_usd > 0 and m.floor_monthly_usd > 0})

    def diff(v: float) -> float:
        return x.monthly_usd(v) - y.monthly_usd(v)

    def sign(v: float) -> int:
        return (v > 1e-12) - (v < -1e-12)

    start = sign(diff(0.0)) or sign(diff(kinks[0] / 2 if kinks else 1.0))  # who is cheaper at low volume
    if not start:
        return None
    lo, f_lo = 0.0, diff(0.0)
    for hi in kinks:
        f_hi = diff(hi)
        if sign(f_hi) == -start:
            return lo + (hi - lo) * f_lo / (f_lo - f_hi)
        lo, f_lo = hi, f_hi
    slope = x.per_call_usd - y.per_call_usd  # past the last kink both are linear
    if sign(slope) == -start and sign(f_lo) != -start:
        return lo - f_lo / slope
    return None


def project_costs(cmp: Comparison, d: Decision, latencies: tuple[Latency, Latency]
                  ) -> tuple[CostProjection | None, list[str]]:
    """Both sides' monthly cost at the volume, 10x and 100x, and the break-even volume."""
    (base, why_a), (cand, why_b) = (cost_model(side, d, lat) for side, lat in zip((cmp.a, cmp.b), latencies))
    if base is None or cand is None:
        return None, [w for w in (why_a, why_b) if w]
    volumes = [d.volume * k for k in (1, 10, 100)] if d.volume else []
    rows = tuple(CostRow(v, base.monthly_usd(v), cand.monthly_usd(v)) for v in volumes)
    even = break_even_volume(base, cand)
    api = next((m for m in (base, cand) if m.hosting in PER_TOKEN), base)
    tokens_day = even * api.tokens_per_call / DAYS_PER_MONTH if even is not None and api.tokens_per_call else None
    return CostProjection(base, cand, rows, even, tokens_day), []
