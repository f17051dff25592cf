"""`evals route` on a hand-built pair of runs whose outcomes, signal values and costs are known, so every
share, blended match rate, CI, cost and the recommended threshold can be worked out by hand.

The task: 10 examples (ex000..ex009), pass rule json_valid + labels_f1, decision min_gap 0.3 and volume
100,000 calls/month. Every call records 1,000 input and 100 output tokens.

    example           0     1     2     3     4     5     6     7     8     9
    cheap logprob   -0.1  -0.2  -0.3  -0.4  -0.5  -0.6  -0.7  -0.8  -0.9  -1.0
    cheap matches     y     y     y     y     n     y     n     n     y     n
    strong matches    y     y     y     y     y     y     y     y     n     n

The strong model matches 8/10. Keeping the calls with logprob >= t on the cheap model:

    t      kept  blended  table (both, strong only, blended only, neither)   difference
    -0.1   1     8/10     8 0 0 2                                             0
    -0.4   4     8/10     8 0 0 2                                             0
    -0.5   5     7/10     7 1 0 2                                            -0.1
    -0.8   8     5/10     5 3 0 2                                            -0.3
    -1.0  10     6/10     5 3 1 1                                            -0.2

Tango's 95% CI with no discordant pair of 10 is -27.8 to +27.8 points: above -30, so -0.1 to -0.4 are
non-inferior; one regression (-0.5) gives -40.4 to +20.5: not. Prices: cheap $0.1/$0.4 and strong $2.5/$10
per million input/output tokens: $0.00014 and $0.0035 a call. The cheap model answers every call, so at
-0.4 (60% routed) a call costs 0.00014 + 0.6 x 0.0035 = $0.00224, $224/month against $350 on the strong
model alone: the cheapest non-inferior threshold, so it is the recommendation.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from evals.analyse.route import NO_SAFE, route_stored
from evals.analyse.signals import NeedsReference, parse_signal, signal_values
from evals.analyse.stats import paired_diff_ci
from evals.data.golden import load_samples, samples_hash
from evals.data.tasks import load_task
from evals.errors import EvalsError
from evals.run.manifest import build_manifest
from evals.run.store import Store, load_run
from evals.types import Completion, ExampleResult, ModelConfig, ModelSpec, Price, Score, Task
from tests.conftest import answer_for, qa_rows

LOGPROBS = [-0.1, -0.2, -0.3, -0.4, -0.5, -0.6, -0.7, -0.8, -0.9, -1.0]
CHEAP = [True, True, True, True, False, True, False, False, True, False]
STRONG = [True] * 8 + [False, False]
DECISION = {"min_gap": 0.3, "volume": 100_000}
QA_METRICS = [{"name": "json_valid"}, {"name": "set_f1", "id": "labels_f1", "field": "labels"}]


def hand_built_run(folder: Path, store: Store, model: str, price: Price, passes: list[bool],
                   logprobs: list[float | None] | None = None, extra: Callable[[int], dict] | None = None) -> str:
    """A stored run with exactly these outcomes (a match answers the labels, a miss answers 'not json')."""
    task = load_task(str(folder))
    samples = load_samples(task)
    config = ModelConfig(spec=ModelSpec("fake", model), price=price)
    run_id = store.create_run(task.name, str(config.spec), len(samples),
                              build_manifest(task, config, f"fake:{model}", samples_hash(samples), len(samples)))
    for i, (sample, ok) in enumerate(zip(samples, passes, strict=True)):
        text = answer_for(i) if ok else "not json"
        completion = Completion(text=text, input_tokens=1000, output_tokens=100, latency_s=0.1 * (i + 1),
                                cost_usd=price.cost(1000, 100), mean_logprob=logprobs[i] if logprobs else None)
        scores = {"json_valid": Score(float(ok)), "labels_f1": Score(float(ok)), **(extra(i) if extra else {})}
        store.add_result(run_id, ExampleResult(sample, completion, scores, ok))
    store.set_status(run_id, "completed")
    return run_id


@pytest.fixture
def runs(make_task, tmp_path):
    folder = make_task(rows=qa_rows(10), decision=DECISION)
    store = Store(tmp_path / "route.db")
    cheap = hand_built_run(folder, store, "cheap", Price(0.1, 0.4), CHEAP, LOGPROBS)
    strong = hand_built_run(folder, store, "strong", Price(2.5, 10.0), STRONG)
    return load_task(str(folder)), cheap, strong, store


def test_the_hand_computed_routing(runs) -> None:
    task, cheap, strong, store = runs
    r = route_stored(task, cheap, strong, store, "logprob")
    by_t = {o.threshold: o for o in r.thresholds}
    assert [o.threshold for o in r.thresholds] == LOGPROBS  # the highest first
    assert (r.strong.matches, r.cheap.matches, r.n) == (8, 6, 10)
    for t, kept, matches, table in ((-0.1, 1, 8, (8, 0, 0, 2)), (-0.4, 4, 8, (8, 0, 0, 2)),
                                    (-0.5, 5, 7, (7, 1, 0, 2)), (-0.8, 8, 5, (5, 3, 0, 2)),
                                    (-1.0, 10, 6, (5, 3, 1, 1))):
        o = by_t[t]
        assert (o.kept, o.share_cheap, o.matches) == (kept, kept / 10, matches)
        assert o.vs_strong.estimate == pytest.approx((table[2] - table[1]) / 10)
        assert (o.vs_strong.low, o.vs_strong.high) == pytest.approx(paired_diff_ci(*table))
        assert o.cost_per_call_usd == pytest.approx(0.00014 + (1 - kept / 10) * 0.0035)
        assert o.monthly_usd == pytest.approx(100_000 * (0.00014 + (1 - kept / 10) * 0.0035))
    assert (by_t[-0.4].vs_strong.low, by_t[-0.4].vs_strong.high) == pytest.approx((-0.2775, 0.2775), abs=1e-4)
    assert by_t[-0.5].vs_strong.low == pytest.approx(-0.4042, abs=1e-4)
    assert [o.non_inferior for o in r.thresholds] == [True] * 4 + [False] * 6
    assert r.recommended is by_t[-0.4]
    assert r.recommended.monthly_usd == pytest.approx(224.0) and r.strong.monthly_usd == pytest.approx(350.0)
    assert r.label.startswith("route 40% of calls to the cheap model") and r.beats_both
    # latency: kept calls take the cheap answer's time, routed ones the cheap and then the strong answer's
    assert by_t[-0.1].latency_p50_s == pytest.approx(float(np.median([0.1] + [0.2 * (i + 1) for i in range(1, 10)])))


def test_no_safe_threshold_says_how_many_examples_would_settle_it(runs, make_task) -> None:
    _, cheap, strong, store = runs
    strict = load_task(str(make_task(rows=qa_rows(10), decision={**DECISION, "min_gap": 0.1})))
    r = route_stored(strict, cheap, strong, store, "logprob")
    assert r.recommended is None and r.label == NO_SAFE
    # the closest is -0.4 (no discordant pair, 0 points, 10 above the margin): Connor's n for a 0.1 gap at the
    # floored discordance 0.1 is (1.96 sqrt(0.1) + 0.8416 sqrt(0.09))^2 / 0.01 = 76.1 -> 77, so 67 more
    assert r.more_examples == 67 and "about 67 more paired examples" in r.headline and "-0.4" in r.headline


@pytest.fixture
def poisoned(tmp_path) -> Callable[[Task], Task]:
    """The task again, in a folder of its own, with every reference swapped for a wrong one (ids and inputs kept)."""

    def poison(task: Task) -> Task:
        folder = tmp_path / "poisoned"
        shutil.copytree(task.dir, folder)
        rows = [json.loads(line) for line in (folder / "golden.jsonl").read_text().splitlines()]
        (folder / "golden.jsonl").write_text("".join(
            json.dumps({**row, "reference": {"labels": ["poison"]}}) + "\n" for row in rows))
        return load_task(str(folder))

    return poison


def decisions(task: Task, cheap: str, strong: str, store: Store, signal: str) -> list[tuple[float | None, int]]:
    """What routing does on `signal`: each threshold and the calls it keeps on the cheap model."""
    r = route_stored(task, cheap, strong, store, signal)
    return [(o.threshold, o.kept) for o in r.thresholds]


@pytest.mark.parametrize("signal", ["logprob", "json_valid", "fallback:json_valid"])
def test_poisoned_references_leave_every_routing_decision_as_it_was(runs, poisoned, signal) -> None:
    task, cheap, strong, store = runs
    wrong = poisoned(task)
    assert [s.reference for s in load_samples(wrong)] != [s.reference for s in load_samples(task)]
    assert decisions(wrong, cheap, strong, store, signal) == decisions(task, cheap, strong, store, signal)


def test_the_poisoned_references_catch_a_signal_that_reads_them(runs, poisoned, monkeypatch) -> None:
    """With the guard taken off, labels_f1 (scored against the reference) routes differently once the references
    are poisoned, so the comparison above bites; with the guard on, it is refused."""
    from evals.analyse import signals

    task, cheap, strong, store = runs
    wrong = poisoned(task)
    with monkeypatch.context() as unguarded:
        unguarded.setattr(signals, "WithoutReference", lambda sample: sample)
        assert decisions(task, cheap, strong, store, "labels_f1") == [(1.0, 6), (0.0, 10)]
        assert decisions(wrong, cheap, strong, store, "labels_f1") == [(0.0, 10)]
    with pytest.raises(EvalsError, match="metric 'labels_f1' \\(set_f1\\) reads the reference"):
        decisions(task, cheap, strong, store, "labels_f1")
    assert list(signal_values(parse_signal("json_valid", task), task, {s.id: s for s in load_samples(task)},
                              load_run(cheap, store)).values()) == [float(ok) for ok in CHEAP]


def test_a_metric_that_hides_its_reference_read_is_still_refused(make_task, tmp_path) -> None:
    (tmp_path / "task").mkdir()
    (tmp_path / "task" / "peek.py").write_text(
        "def peek(ctx):\n"
        "    try:\n"
        "        return float(ctx.completion.text == str(ctx.sample.reference))\n"
        "    except Exception:\n"
        "        return 0.5\n")
    folder = make_task(rows=qa_rows(10), decision=DECISION,
                       metrics=[*QA_METRICS, {"name": "peek.py:peek", "id": "peek"}])
    task = load_task(str(folder))
    store = Store(tmp_path / "peek.db")
    run = hand_built_run(folder, store, "cheap", Price(0.1, 0.4), CHEAP, LOGPROBS)
    with pytest.raises(EvalsError, match="metric 'peek'.*reads the reference"):
        signal_values(parse_signal("peek", task), task, {s.id: s for s in load_samples(task)}, load_run(run, store))
    assert issubclass(NeedsReference, BaseException) and not issubclass(NeedsReference, Exception)


def test_fallback_keeps_the_answers_that_pass_the_check(runs) -> None:
    task, cheap, strong, store = runs
    r = route_stored(task, cheap, strong, store, "fallback:json_valid")
    [only] = r.thresholds
    # the 6 valid answers are kept (all match); the strong model answers 4, 6, 7 (matches) and 9 (misses)
    assert (only.threshold, only.kept, only.matches) == (1.0, 6, 9)
    assert json.loads(json.dumps(r.as_dict()))["thresholds"][0]["kept"] == 6


def test_a_run_without_log_probabilities_is_refused(runs) -> None:
    task, _, strong, store = runs
    with pytest.raises(EvalsError, match="has no token log-probabilities"):
        route_stored(task, strong, strong, store, "logprob")


def test_a_judge_that_sees_only_the_answer_routes_on_its_stored_score(make_task, tmp_path) -> None:
    """answer_judge builds its prompt without the reference, so its stored score is the signal (no call made);
    rubric_judge shows the judge the reference, so it is refused."""
    judges = [{"name": "answer_judge", "id": "blind", "rubric": "Is the answer a JSON object of labels?"},
              {"name": "rubric_judge", "id": "sighted", "rubric": "Does the answer match the reference?"}]
    folder = make_task(rows=qa_rows(10), decision=DECISION, metrics=[*QA_METRICS, *judges])
    task = load_task(str(folder))
    store = Store(tmp_path / "judged.db")
    run = hand_built_run(folder, store, "cheap", Price(0.1, 0.4), CHEAP, LOGPROBS,
                         extra=lambda i: {"blind": Score(0.25 * (i % 5)), "sighted": Score(1.0)})
    samples, df = {s.id: s for s in load_samples(task)}, load_run(run, store)
    assert list(signal_values(parse_signal("blind", task), task, samples, df).values()) == [
        0.25 * (i % 5) for i in range(10)]
    with pytest.raises(EvalsError, match="metric 'sighted' \\(rubric_judge\\) reads the reference"):
        signal_values(parse_signal("sighted", task), task, samples, df)


def test_a_signal_with_a_value_per_example_is_cut_at_200_of_its_values() -> None:
    import numpy as np

    from evals.analyse.route import MAX_THRESHOLDS, thresholds

    values = np.random.default_rng(1).normal(size=50_000)
    values[::7] = np.nan
    cuts = thresholds(values)
    assert len(cuts) == MAX_THRESHOLDS and cuts == sorted(cuts, reverse=True)
    assert cuts[0] == np.nanmax(values) and cuts[-1] == np.nanmin(values) and set(cuts) <= set(values)
    assert thresholds(np.array([0.2, np.nan, 0.5, 0.2])) == [0.5, 0.2]  # few values: every one of them


def test_evals_route_scores_each_cheap_answer_once(make_task, tmp_path) -> None:
    """The stored cheap run is scored before any call (to refuse a signal it lacks) and that is the only time:
    the routing reuses those values. The metric file logs every answer it is shown."""
    from typer.testing import CliRunner

    from evals.cli import app

    (tmp_path / "task").mkdir()
    (tmp_path / "task" / "counted.py").write_text(
        "from pathlib import Path\n\n"
        "def counted(ctx):\n"
        "    with (Path(__file__).parent / 'scored.log').open('a') as log:\n"
        "        log.write(f'{ctx.sample.id} {ctx.completion.text!r}\\n')\n"
        "    return ctx.completion.text != 'not json'\n")
    folder = make_task(rows=qa_rows(10), decision=DECISION,
                       metrics=[*QA_METRICS, {"name": "counted.py:counted", "id": "counted"}])
    store = Store(tmp_path / "counted.db")
    cheap = hand_built_run(folder, store, "cheap", Price(0.1, 0.4), CHEAP, LOGPROBS)
    strong = hand_built_run(folder, store, "strong", Price(2.5, 10.0), STRONG)
    result = CliRunner().invoke(app, ["route", str(folder), "--cheap", cheap, "--strong", strong, "--signal",
                                      "counted", "--store", str(store.path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["thresholds"][0]["kept"] == 6
    shown = (folder / "scored.log").read_text().splitlines()
    answers = [line for line in shown if not line.endswith("''")]  # the probe before any call sees an empty answer
    assert sorted(answers) == sorted(f"ex{i:03d} {answer_for(i) if ok else 'not json'!r}"
                                     for i, ok in enumerate(CHEAP))
    assert len(shown) == len(answers) + 1


def test_a_signal_sees_only_the_examples_id_input_fields_and_line() -> None:
    from evals.analyse.signals import WithoutReference
    from evals.types import Sample

    blind = WithoutReference(Sample("ex1", {"question": "q"}, {"labels": ["l1"]}, 3, ("check",), "pass"))
    assert (blind.id, blind.fields, blind.line) == ("ex1", {"question": "q"}, 3)
    for hidden in ("reference", "checks", "human", "anything_else"):
        with pytest.raises(NeedsReference, match=f"read the example's '{hidden}'"):
            getattr(blind, hidden)
