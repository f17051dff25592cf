"""Pairing two runs, the Comparison they give, the cost model and the verdict."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from evals.analyse.compare import compare_runs
from evals.analyse.economics import CostModel, break_even_volume
from evals.analyse.verdict import JUSTIFIED, JUSTIFIED_OTHER, NO_GAP, NO_GAP_OTHER, TRADE_OFF, decide
from evals.errors import EvalsError
from evals.settings import validated
from evals.types import Decision

API = "openai:gpt-4o-mini"  # $0.15 / $0.60 per million tokens in the shipped table
TUNED = "local:smollm2+lora:finetune/adapters/resume-feedback"


def run_frame(passed: list[bool], *, run_id: str, model: str, golden: str = "g1", ids: list[str] | None = None,
              cost: float = 0.0, latency: float = 1.0, **columns: Any) -> pd.DataFrame:
    """A frame shaped like `load_run`'s: one row per example, attrs with the run and its manifest."""
    n = len(passed)
    df = pd.DataFrame({
        "example_id": ids or [f"ex{i:03d}" for i in range(n)],
        "output": [f"{model} answer {i}" for i in range(n)],
        "error": [None] * n,
        "passed": np.array(passed, dtype=bool),
        "score.f1": np.where(passed, 1.0, 0.4),
        "input_tokens": [1200] * n,
        "output_tokens": [200] * n,
        "latency_s": [latency] * n,
        "cost_usd": [cost] * n,
        "cached": [False] * n,
    })
    for name, values in columns.items():
        df[name] = values
    df.attrs["run"] = {"id": run_id, "model": model, "status": "completed", "n_samples": n}
    df.attrs["manifest"] = {"golden": {"hash": golden, "n": n}, "model": {"spec": model}}
    return df


def paired(both: int, a_only: int, b_only: int, neither: int, **kw: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    a = [True] * both + [True] * a_only + [False] * b_only + [False] * neither
    b = [True] * both + [False] * a_only + [True] * b_only + [False] * neither
    a_kw = {"cost": 0.0003, "latency": 0.8} | kw.pop("a", {})
    b_kw = {"latency": 0.5} | kw.pop("b", {})
    return (run_frame(a, run_id="aaaa", model=API, **a_kw), run_frame(b, run_id="bbbb", model=TUNED, **b_kw))


# utilisation 1: every paid GPU hour serves calls (the default, 0.7, is tested by hand below)
SELF_HOSTED = {"gpu_hourly_usd": 0.72, "calls_per_hour": 3600, "training_cost_usd": 120, "utilisation": 1.0}
DECISION = {"baseline": API, "candidate": TUNED, "min_gap": 0.05, "volume": 100_000, "self_hosted": SELF_HOSTED}


def test_seed_story() -> None:
    cmp = compare_runs(*paired(43, 1, 4, 2))
    assert cmp.a.summary.matches_text == "44/50 (88%, 95% CI 76-94%)"
    assert cmp.b.summary.matches_text == "47/50 (94%, 95% CI 84-98%)"
    assert (cmp.counts.both_pass, cmp.counts.a_only, cmp.counts.b_only, cmp.counts.both_fail) == (43, 1, 4, 2)
    assert cmp.mcnemar_p == pytest.approx(0.375)
    assert cmp.match_diff.estimate == pytest.approx(0.06) and cmp.match_diff.low < 0.05 < cmp.match_diff.high
    assert (cmp.power.discordance, cmp.power.n_needed) == (0.1, 312)

    verdict = decide(cmp, DECISION)
    assert verdict.label == "inconclusive: about 262 more golden examples needed"
    assert verdict.more_examples == 262
    text = verdict.render()
    assert "McNemar exact p = 0.375" in text and "312 paired examples" in text and "min_gap (0.05)" in text


def test_comparison_contents_and_json() -> None:
    a, b = paired(43, 1, 4, 2)
    b.loc[49, ["error", "output", "score.f1"]] = ["HTTP 500", None, None]
    cmp = compare_runs(a, b)
    assert [d.example_id for d in cmp.improved] == ["ex044", "ex045", "ex046", "ex047"]
    worse = cmp.regressed[0]
    assert (worse.example_id, worse.output_a, worse.output_b) == ("ex043", f"{API} answer 43", f"{TUNED} answer 43")
    assert (worse.scores_a, worse.scores_b) == ({"f1": 1.0}, {"f1": 0.4})
    assert cmp.a.metrics["f1"].n == 50 and cmp.b.metrics["f1"].n == 49  # the error has no score
    assert cmp.a.metrics["f1"].low <= cmp.a.metrics["f1"].estimate <= cmp.a.metrics["f1"].high
    assert cmp.metric_diffs["f1"].n == 49
    assert cmp.a.cost_per_1k_usd == pytest.approx(0.3) and cmp.b.summary.errors == 1
    assert (cmp.b.summary.latency_p50_s, cmp.b.summary.latency_p95_s) == (0.5, 0.5)
    data = json.loads(json.dumps(cmp.as_dict(), allow_nan=False))
    assert data["counts"]["discordant"] == 5 and data["match_diff"]["method"] == "Tango score interval"
    assert compare_runs(a, b).as_dict() == cmp.as_dict()  # seeded: the same numbers every time


def test_refuses_different_golden_sets_unless_forced() -> None:
    a, b = paired(43, 1, 4, 2, b={"golden": "other"})
    with pytest.raises(EvalsError, match="different golden sets"):
        compare_runs(a, b)
    assert compare_runs(a, b, force=True).golden_hashes_differ


def test_missing_ids_are_reported() -> None:
    a = run_frame([True] * 10, run_id="a", model=API)
    ids = [f"ex{i:03d}" for i in range(10) if i != 3] + ["zz"]
    b = run_frame([True] * 10, run_id="b", model=TUNED, ids=ids)
    cmp = compare_runs(a, b)
    assert (cmp.missing_in_b, cmp.missing_in_a, cmp.n_pairs) == (("ex003",), ("zz",), 9)
    assert "2 example(s) ran on one side only" in decide(cmp).render()
    with pytest.raises(EvalsError, match="no example id in common"):
        compare_runs(a, run_frame([True], run_id="c", model=TUNED, ids=["x"]))


def test_break_even_by_hand() -> None:
    api = CostModel(API, "api", per_call_usd=0.0003)
    tuned = CostModel(TUNED, "self-hosted", per_call_usd=0.72 / 3600, fixed_monthly_usd=120 / 12)
    # 0.0003 V = 10 + 0.0002 V  ->  V = 10 / 0.0001 = 100,000 calls a month
    assert break_even_volume(api, tuned) == pytest.approx(100_000)
    always_on = CostModel(TUNED, "self-hosted", 0.0002, 10, floor_monthly_usd=0.72 * 730)
    # an always-on GPU costs 10 + 525.60 until 2.6M calls: 0.0003 V = 535.60 -> V = 1,785,333
    assert break_even_volume(api, always_on) == pytest.approx(535.6 / 0.0003)
    assert break_even_volume(api, CostModel(TUNED, "self-hosted", 0.0004, 10)) is None  # API always cheaper
    assert break_even_volume(api, api) is None


def test_costs_in_the_verdict() -> None:
    verdict = decide(compare_runs(*paired(43, 1, 4, 2)), DECISION)
    costs = verdict.costs
    assert costs.baseline.per_call_usd == pytest.approx(0.0003)  # 1200 x 0.15 + 200 x 0.60 per million
    assert costs.break_even_volume == pytest.approx(100_000)
    assert [r.volume for r in costs.rows] == [100_000, 1_000_000, 10_000_000]
    assert (costs.rows[0].baseline_usd, costs.rows[0].candidate_usd) == pytest.approx((30.0, 30.0))
    assert (costs.rows[1].baseline_usd, costs.rows[1].candidate_usd) == pytest.approx((300.0, 210.0))
    assert "flips at about 100,000 calls/month" in verdict.render()


def test_throughput_measured_from_the_runs_busy_time_when_not_configured() -> None:
    settings = {k: v for k, v in SELF_HOSTED.items() if k != "calls_per_hour"}
    a, b = paired(43, 1, 4, 2)
    # 50 calls answered in 100 s of busy time at batch size 16: 1,800 calls/hour, whatever each request took
    b.attrs["run"] |= {"busy_s": 100.0, "served_calls": 50, "concurrency": 16, "hardware": "CPU: Test (2 cores)"}
    verdict = decide(compare_runs(a, b), DECISION | {"self_hosted": settings})
    assert verdict.costs.candidate.per_call_usd == pytest.approx(0.72 / 1800)
    basis = verdict.costs.candidate.basis
    assert "1,800 calls/hour measured at concurrency 16 on CPU: Test (2 cores) (run bbbb)" in basis
    assert any("measured on CPU: Test (2 cores), not on the GPU" in line for line in verdict.assumptions)
    unmeasured = decide(compare_runs(*paired(43, 1, 4, 2)), DECISION | {"self_hosted": settings})
    assert unmeasured.costs is None and "evals latency" in unmeasured.render()


def test_no_real_gap() -> None:
    verdict = decide(compare_runs(*paired(420, 10, 10, 60)), DECISION)
    assert verdict.label == NO_GAP and verdict.more_examples is None


def test_justified_needs_quality_and_cost_or_latency() -> None:
    cmp = compare_runs(*paired(400, 5, 60, 35))  # +11 points, CI well above 5
    assert cmp.match_diff.low > 0.05
    assert decide(cmp, DECISION).label == JUSTIFIED  # costs the same at 100k calls and is faster
    slow_and_dear = compare_runs(*paired(400, 5, 60, 35, b={"latency": 2.0}))
    costly = DECISION | {"self_hosted": SELF_HOSTED | {"gpu_hourly_usd": 5.0}}
    verdict = decide(slow_and_dear, costly)
    assert verdict.label == TRADE_OFF
    assert decide(slow_and_dear, costly | {"quality_only": True}).label == JUSTIFIED


def test_a_candidate_that_is_not_a_fine_tune_is_not_called_one() -> None:
    """A bigger model as the candidate (API against API): the verdict and its rules speak of the candidate and
    the baseline, not of a fine-tune and a prompted model."""
    def api_pair(*counts: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        a, b = paired(*counts, b={"cost": 0.0003})
        b.attrs["manifest"]["model"]["spec"] = b.attrs["run"]["model"] = "openai:gpt-4o"
        return a, b

    no_gap = decide(compare_runs(*api_pair(420, 10, 10, 60)), DECISION)
    assert no_gap.label == NO_GAP_OTHER and "fine-tun" not in " ".join(no_gap.rules)
    better = decide(compare_runs(*api_pair(400, 5, 60, 35)), DECISION | {"quality_only": True})
    assert better.label == JUSTIFIED_OTHER and not better.label.startswith("fine-tuning")


def test_decision_settings_are_checked() -> None:
    cmp = compare_runs(*paired(43, 1, 4, 2))
    with pytest.raises(EvalsError, match="did you mean 'volume'") as e:
        decide(cmp, {"volumes": 10})
    assert e.value.field == "decision.volumes"
    with pytest.raises(EvalsError, match="greater than 0, got 0") as e:
        validated(Decision, {"self_hosted": {"gpu_hourly_usd": 1, "calls_per_hour": 0}}, "decision")
    assert e.value.field == "decision.self_hosted.calls_per_hour"
    with pytest.raises(EvalsError, match="second run compared"):
        decide(cmp, {"baseline": TUNED, "candidate": API})
    unknown = decide(cmp, {"volume": 1000})
    assert unknown.costs is None and "decision.self_hosted" in unknown.render()
