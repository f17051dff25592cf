"""Cost and latency in the verdict, checked against numbers worked out by hand."""

from __future__ import annotations

from datetime import date

import pytest

from evals.analyse.compare import compare_runs
from evals.analyse.verdict import JUSTIFIED, NEITHER, decide
from evals.errors import EvalsError
from evals.run.store import LatencyProfile
from tests.analyse.test_compare import run_frame

GPT4O = "openai:gpt-4o"  # $2.50 input, $1.25 cached input, $10.00 output per million tokens
HAIKU = "anthropic:claude-haiku-4-5"  # $1.00 input, $0.10 cache read, $1.25 cache write, $5.00 output
TUNED = "local:smollm2+lora:finetune/adapters/resume-feedback"
SELF_HOSTED = {"gpu_hourly_usd": 1.20, "calls_per_hour": 2400, "utilisation": 0.6, "ops_monthly_usd": 150,
               "training_cost_usd": 90, "retrain_every_months": 3}


def frames(api: str = GPT4O, *, a_kw: dict | None = None, b_kw: dict | None = None, n: int = 100):
    """The API baseline matches 80 of 100, the fine-tune 95 (15 more, none fewer): a real gain."""
    a = run_frame([True] * 80 + [False] * 20, run_id="aaaa", model=api, cached_input_tokens=[1500] * n,
                  **{"input_tokens": [2000] * n, "output_tokens": [300] * n} | (a_kw or {}))
    b = run_frame([True] * 95 + [False] * 5, run_id="bbbb", model=TUNED, **(b_kw or {}))
    return a, b


def verdict_for(decision: dict, **kw):
    return decide(compare_runs(*frames(**kw)), {"baseline": GPT4O, "candidate": TUNED, "volume": 100_000,
                                                "self_hosted": SELF_HOSTED} | decision, today=date(2026, 12, 1))


def test_api_with_cached_input_at_list_and_batch_prices() -> None:
    # Per call: 2,000 input tokens of which 1,500 were read from the prompt cache, 300 output tokens.
    #   fresh  500 x $2.50 = 1,250;  cached 1,500 x $1.25 = 1,875;  output 300 x $10 = 3,000  (per million)
    #   = $6,125 / 1e6 = $0.006125 a call; $612.50 at 100,000 calls a month
    listed = verdict_for({}).costs.baseline
    assert listed.per_call_usd == pytest.approx(0.006125)
    assert listed.monthly_usd(100_000) == pytest.approx(612.50)
    assert "1,500 cached" in listed.basis and "$1.25 cached input" in listed.basis
    # The Batch API bills half of every rate: $0.0030625 a call, $306.25 a month.
    batch = verdict_for({"api_batch": True}).costs.baseline
    assert batch.per_call_usd == pytest.approx(0.0030625)
    assert batch.monthly_usd(100_000) == pytest.approx(306.25) and "Batch API discount of 50%" in batch.basis


def test_a_batched_run_is_priced_at_batch_rates_without_api_batch() -> None:
    a, b = frames()
    a.attrs["manifest"]["model"]["batch"] = True  # the run went through the Batch API (--batch / batch: true)
    verdict = decide(compare_runs(a, b), {"volume": 100_000, "self_hosted": SELF_HOSTED})
    assert verdict.costs.baseline.per_call_usd == pytest.approx(0.0030625)  # half of the $0.006125 above
    assert "Batch API discount of 50% (the run was batched)" in verdict.costs.baseline.basis


def test_anthropic_cache_reads_and_writes_have_their_own_rates() -> None:
    # 2,000 input = 400 fresh x $1.00 + 1,500 read x $0.10 + 100 written x $1.25; 300 output x $5.00
    #   = 400 + 150 + 125 + 1,500 = $2,175 / 1e6 a call
    a_kw = {"cache_write_tokens": [100] * 100}
    cmp = compare_runs(*frames(HAIKU, a_kw=a_kw))
    verdict = decide(cmp, {"volume": 100_000, "self_hosted": SELF_HOSTED})
    assert verdict.costs.baseline.per_call_usd == pytest.approx(0.002175)
    assert "100 written to the cache" in verdict.costs.baseline.basis


def test_self_hosted_lora_with_utilisation_operations_and_retraining() -> None:
    # GPU $1.20/hour, 2,400 calls/hour given, 60% utilisation (idle hours are paid too):
    #   $1.20 / (2,400 x 0.6) = $0.000833... a call
    # fixed: operations $150/month + training $90 every 3 months ($30/month) = $180/month
    # at 100,000 calls: 100,000 x 0.000833... + 180 = $83.33 + $180 = $263.33
    v = verdict_for({})
    tuned = v.costs.candidate
    assert tuned.per_call_usd == pytest.approx(1.20 / 1440)
    assert tuned.fixed_monthly_usd == pytest.approx(180)
    assert tuned.monthly_usd(100_000) == pytest.approx(263.333, abs=0.001)
    assert [(r.volume, round(r.baseline_usd, 2), round(r.candidate_usd, 2)) for r in v.costs.rows] == [
        (100_000, 612.50, 263.33), (1_000_000, 6125.0, 1013.33), (10_000_000, 61250.0, 8513.33)]
    # break-even: 0.006125 V = 180 + 0.000833.. V  ->  V = 180 / 0.0052916.. = 34,015.7 calls a month,
    # in tokens: 34,015.7 calls x 2,300 tokens (the API side's mean per call) / 30.42 days = 2,572,150 a day
    assert v.costs.break_even_volume == pytest.approx(180 / (0.006125 - 1.20 / 1440))
    assert v.costs.break_even_tokens_per_day == pytest.approx(v.costs.break_even_volume * 2300 / (730 / 24))
    text = v.render()
    assert "flips at about 34,016 calls/month (about 2,572,150 tokens/day)" in text
    # every self-hosting input is printed, given or default
    assert "utilisation 0.6 (given)" in text and "min_gpu_hours_per_month 0.0 (default)" in text
    assert "retrained every 3 months" in tuned.basis and v.label == JUSTIFIED


def test_data_that_may_not_leave_excludes_the_api_side() -> None:
    v = verdict_for({"in_house_only": True, "in_house_reason": "resumes are personal data"})
    assert v.label == f"only the candidate qualifies: {TUNED}"
    assert "resumes are personal data" in v.excluded["baseline"] and "candidate" not in v.excluded
    assert v.headline.startswith("The baseline does not qualify")


def test_latency_ceilings_exclude_a_side_and_say_when_unchecked() -> None:
    slow = verdict_for({"max_p95_s": 0.9, "max_ttft_p95_s": 0.5}, a_kw={"latency": 0.5}, b_kw={"latency": 1.5})
    assert slow.label == f"only the baseline qualifies: {GPT4O}"
    assert "p95 latency 1.50 s is above decision.max_p95_s 0.9 s" in slow.excluded["candidate"]
    assert "time to first token was not measured" in slow.render()  # neither run was streamed
    both = verdict_for({"max_p95_s": 0.1})
    assert both.label == NEITHER and set(both.excluded) == {"baseline", "candidate"}


def test_a_latency_profile_sets_throughput_and_latency() -> None:
    levels = [
        {"concurrency": 1, "n": 20, "errors": 0, "latency_p50_s": 0.20, "latency_p95_s": 0.25, "ttft_p50_s": 0.03,
         "ttft_p95_s": 0.04, "calls_per_hour": 16_000, "tokens_per_s": 90},
        {"concurrency": 8, "n": 20, "errors": 0, "latency_p50_s": 0.40, "latency_p95_s": 0.50, "ttft_p50_s": 0.06,
         "ttft_p95_s": 0.08, "calls_per_hour": 60_000, "tokens_per_s": 70},
        {"concurrency": 32, "n": 20, "errors": 0, "latency_p50_s": 1.00, "latency_p95_s": 1.40, "ttft_p50_s": 0.20,
         "ttft_p95_s": 0.30, "calls_per_hour": 110_000, "tokens_per_s": 40},
    ]
    profile = LatencyProfile(7, "t", TUNED, "{}", "GPU: NVIDIA L4 (1x)", "2026-11-30T10:00:00+00:00", levels)
    settings = {k: v for k, v in SELF_HOSTED.items() if k != "calls_per_hour"}
    cmp = compare_runs(*frames())
    base = {"volume": 100_000, "self_hosted": settings}
    fastest = decide(cmp, base, profiles={"candidate": profile})
    assert fastest.latency["candidate"].concurrency == 32  # most calls/hour with no ceiling
    assert fastest.costs.candidate.per_call_usd == pytest.approx(1.20 / (110_000 * 0.6))
    capped = decide(cmp, base | {"max_p95_s": 0.6}, profiles={"candidate": profile})
    assert capped.latency["candidate"].concurrency == 8 and "candidate" not in capped.excluded
    assert "60,000 calls/hour measured at concurrency 8 on GPU: NVIDIA L4 (1x)" in capped.costs.candidate.basis
    assert not any("not on the GPU" in a for a in capped.assumptions)  # measured on a GPU: no caution


def test_provider_errors_over_the_threshold_refuse_a_verdict() -> None:
    a, b = frames()
    a.loc[:9, "error"] = "HTTP 500 InternalServerError"  # 10 of 100: above the default 5%
    with pytest.raises(EvalsError, match=r"failed on 10 of 100 examples \(10%\), above decision.max_error_rate 5%"):
        decide(compare_runs(a, b), {})
    assert decide(compare_runs(a, b), {"max_error_rate": 0.1}).label  # the team may accept more


def test_the_verdict_is_dated_with_a_revisit_date() -> None:
    v = verdict_for({"revisit_months": 3})
    assert (v.decided_on, v.revisit_on) == ("2026-12-01", "2027-03-02")
    assert "revisit by 2027-03-02" in v.render()
