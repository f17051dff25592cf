"""Text, structure, label and overlap metrics on hand-checked cases; ROUGE/BLEU/chrF against the libraries."""

from __future__ import annotations

import json

import pytest

from evals.analyse.aggregate import OTHER, aggregate_scores, classification
from evals.errors import EvalsError
from evals.metrics import metrics
from evals.types import Completion, Sample, Score, ScoreContext


def ctx(answer, reference) -> ScoreContext:
    text = answer if isinstance(answer, str) else json.dumps(answer)
    return ScoreContext(sample=Sample("x", {}, reference), completion=Completion(text=text))


async def score(name: str, answer, reference, **kwargs) -> Score:
    return await metrics.create(name, **kwargs)(ctx(answer, reference))


# --- text ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "reference", "kwargs", "expected"),
    [
        ("Paris", "Paris", {}, 1.0),
        ("  paris \n", "Paris", {}, 1.0),  # case and surrounding whitespace ignored by default
        ("paris", "Paris", {"ignore_case": False}, 0.0),
        ("Paris.", "Paris", {}, 0.0),  # punctuation counts unless ignored
        ("Paris.", "Paris", {"ignore_punctuation": True}, 1.0),
        ("New   York", "New York", {}, 1.0),
        ("New   York", "New York", {"normalize_whitespace": False}, 0.0),
        ('{"city": "PARIS"}', {"city": "Paris"}, {"field": "city"}, 1.0),
        ('{"city": "Lyon"}', {"city": "Paris"}, {"field": "city"}, 0.0),
        ("Paris", {"city": "Paris"}, {"field": "city"}, 0.0),  # not JSON
    ],
)
async def test_exact_match(answer, reference, kwargs, expected) -> None:
    assert (await score("exact_match", answer, reference, **kwargs)).value == expected


async def test_includes_the_reference_or_given_texts() -> None:
    assert (await score("includes", "The capital is Paris, of course.", "paris")).value == 1.0
    assert (await score("includes", "The capital is Paris.", "paris", ignore_case=False)).value == 0.0
    both = await score("includes", "refund in 5 days", "x", text=["refund", "5 days"])
    assert both.value == 1.0
    missing = await score("includes", "refund soon", "x", text=["refund", "5 days"])
    assert missing.value == 0.0 and missing.details["missing"] == ["5 days"]
    nested = await score("includes", '{"a": {"b": "total due 12.50 USD"}}', {"a": {"b": "12.50"}}, field="a.b")
    assert nested.value == 1.0


async def test_regex_with_flags_and_a_bad_pattern_fails_at_build() -> None:
    found = await score("regex", "Order #A-1234 shipped", "", pattern=r"#[A-Z]-\d{4}")
    assert found.value == 1.0 and found.details["match"] == "#A-1234"
    assert (await score("regex", "ORDER shipped", "", pattern=r"^order", flags="")).value == 0.0
    assert (await score("regex", "ORDER shipped", "", pattern=r"^order", flags="i")).value == 1.0
    with pytest.raises(EvalsError, match="regex"):
        metrics.create("regex", pattern="(unclosed")
    with pytest.raises(EvalsError, match="flag"):
        metrics.create("regex", pattern="a", flags="q")


# --- structure -----------------------------------------------------------------------------------

SCHEMA = {"type": "object", "required": ["total", "vendor"],
          "properties": {"total": {"type": "number"}, "vendor": {"type": "string"}},
          "additionalProperties": False}


async def test_json_schema_lists_every_violation() -> None:
    ok = await score("json_schema", {"total": 12.5, "vendor": "Acme"}, {}, schema=SCHEMA)
    assert ok.value == 1.0 and ok.details["errors"] == []
    bad = await score("json_schema", {"total": "12.5", "extra": 1}, {}, schema=SCHEMA)
    assert bad.value == 0.0 and bad.details["n_errors"] == 3
    for expected in ("'12.5' is not of type 'number'", "'vendor' is a required property", "'extra'"):
        assert expected in bad.explanation
    not_json = await score("json_schema", "total: 12", {}, schema=SCHEMA)
    assert not_json.value == 0.0 and "not JSON" in not_json.explanation


INVOICE = {"vendor": {"name": "Acme GmbH", "vat_id": "DE123"}, "total": 119.0, "currency": "EUR",
           "date": "2024-03-01", "po": None}


async def test_json_fields_default_is_every_leaf_with_equal_weight() -> None:
    answer = {"vendor": {"name": "ACME  gmbh", "vat_id": "DE999"}, "total": "119.00", "currency": "EUR",
              "date": "2024-03-02"}  # name matches (case, spaces); vat_id, date wrong; po missing = null
    result = await score("json_fields", answer, INVOICE)
    assert set(result.details["fields"]) == {"vendor.name", "vendor.vat_id", "total", "currency", "date", "po"}
    assert result.value == pytest.approx(4 / 6)
    assert set(result.details["mismatches"]) == {"vendor.vat_id", "date"}
    assert result.details["mismatches"]["date"] == {"answer": "2024-03-02", "reference": "2024-03-01"}


async def test_json_fields_weights_and_numeric_tolerance() -> None:
    answer = {"vendor": {"name": "Acme GmbH"}, "total": 119.4, "currency": "USD"}
    weights = {"total": 3, "currency": 1, "vendor.name": 1}
    exact = await score("json_fields", answer, INVOICE, fields=weights)
    assert exact.value == pytest.approx(1 / 5)  # only vendor.name matches
    tolerant = await score("json_fields", answer, INVOICE, fields=weights, numeric_tolerance=0.5)
    assert tolerant.value == pytest.approx(4 / 5)
    listed = await score("json_fields", answer, INVOICE, fields=["currency", "vendor.name"])
    assert listed.value == 0.5
    assert (await score("json_fields", "[1, 2]", INVOICE)).value == 0.0
    with pytest.raises(EvalsError, match="weights"):
        metrics.create("json_fields", fields={"total": -1})


# --- sets and labels -----------------------------------------------------------------------------


async def test_set_f1_details_carry_precision_and_recall() -> None:
    result = await score("set_f1", {"tags": ["a", "b", "c"]}, {"tags": ["a", "d"]}, field="tags")
    assert result.details["precision"] == pytest.approx(1 / 3) and result.details["recall"] == 0.5
    assert result.value == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("answer", "labels", "predicted", "valid", "expected"),
    [
        ("positive", None, "positive", True, 1.0),
        (" Positive. ", None, "positive", True, 1.0),
        ("negative", None, "negative", True, 0.0),
        ("The sentiment is Positive.", ["positive", "negative", "neutral"], "positive", True, 1.0),
        ("positive or negative", ["positive", "negative"], "positive or negative", False, 0.0),
        ("great", ["positive", "negative"], "great", False, 0.0),
    ],
)
async def test_label_per_example(answer, labels, predicted, valid, expected) -> None:
    result = await score("label", answer, "positive", labels=labels)
    assert (result.value, result.details["predicted"], result.details["true"], result.details["valid"]) == (
        expected, predicted, "positive", valid)


def test_classification_accuracy_macro_f1_and_confusion_match_hand_computation() -> None:
    # true:  a a a b b c ; pred: a a b b c c
    pairs = [("a", "a"), ("a", "a"), ("a", "b"), ("b", "b"), ("b", "c"), ("c", "c")]
    c = classification(pairs)
    assert c.accuracy == pytest.approx(4 / 6)
    # F1 a: P=2/2 R=2/3 -> 0.8; b: P=1/2 R=1/2 -> 0.5; c: P=1/2 R=1/1 -> 2/3
    assert c.macro_f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert c.labels == ["a", "b", "c"] and c.confusion == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_predictions_outside_the_declared_labels_are_one_other_column() -> None:
    scores = [
        {"value": 1.0, "details": {"predicted": "pos", "true": "pos", "labels": ["pos", "neg", "neu"]}},
        {"value": 0.0, "details": {"predicted": "dunno", "true": "neg", "valid": False, "labels": ["pos", "neg", "neu"]}},
        {"value": 1.0, "details": {"predicted": "neg", "true": "neg", "labels": ["pos", "neg", "neu"]}},
        {"value": None, "error": "judge down"},
    ]
    agg = aggregate_scores(scores)
    assert agg.n == 3 and agg.errors == 1 and agg.mean == pytest.approx(2 / 3) and agg.rate_ci is not None
    c = agg.classification
    assert c.labels == ["pos", "neg", "neu"] and c.columns == ["pos", "neg", "neu", OTHER]
    assert c.confusion == [[1, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0]]
    # "neu" never occurs: left out of the average. pos F1 1, neg P=1 R=1/2 -> 2/3
    assert c.macro_f1 == pytest.approx((1 + 2 / 3) / 2)


# --- overlap: equal to the reference libraries on the same strings -------------------------------

PAIRS = [
    ("The cat sat on the mat.", "A cat was sitting on the mat."),
    ("Release 2.1 fixes the login crash and adds dark mode.", "Version 2.1 adds dark mode and fixes a crash at login."),
    ("completely unrelated words here", "The quarterly report is due on Friday."),
    ("", "Something."),
]


@pytest.mark.parametrize(("answer", "reference"), PAIRS)
async def test_rouge_l_equals_rouge_score(answer, reference) -> None:
    from rouge_score import rouge_scorer

    for stem in (True, False):
        expected = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stem).score(reference, answer)["rougeL"]
        got = await score("rouge_l", answer, reference, use_stemmer=stem)
        assert got.value == expected.fmeasure and got.details["recall"] == expected.recall


@pytest.mark.parametrize(("answer", "reference"), PAIRS)
async def test_bleu_and_chrf_equal_sacrebleu(answer, reference) -> None:
    import sacrebleu

    assert (await score("bleu", answer, reference)).value == sacrebleu.sentence_bleu(answer, [reference]).score / 100
    assert (await score("chrf", answer, reference)).value == sacrebleu.sentence_chrf(answer, [reference]).score / 100
    chrf_pp = sacrebleu.sentence_chrf(answer, [reference], word_order=2).score / 100
    assert (await score("chrf", answer, reference, word_order=2)).value == chrf_pp


async def test_overlap_hand_checked_values_and_several_references() -> None:
    assert (await score("rouge_l", "the cat sat", "the cat sat")).value == 1.0
    # LCS("a b c d", "a c e") = "a c": P = 2/4, R = 2/3 -> F = 4/7
    assert (await score("rouge_l", "a b c d", "a c e", use_stemmer=False)).value == pytest.approx(4 / 7)
    assert (await score("bleu", "the cat sat on the mat", "the cat sat on the mat")).value == pytest.approx(1.0)
    best = await score("rouge_l", "the cat sat", ["a dog ran", "the cat sat"])
    assert best.value == 1.0
    summary = await score("rouge_l", '{"summary": "dark mode added"}', {"summary": "dark mode added"},
                          field="summary")
    assert summary.value == 1.0


def test_label_metric_runs_show_accuracy_macro_f1_and_the_confusion_matrix(make_task, tmp_path) -> None:
    from typer.testing import CliRunner

    from evals.cli import app

    rows = [{"id": f"s{i}", "question": f"q{i}", "reference": true} for i, true in enumerate(
        ["positive", "positive", "negative", "negative", "neutral", "positive"])]
    answers = ["Positive", "negative", "negative", "The answer is negative.", "no idea", "positive"]
    folder = make_task(rows=rows, models=[{"spec": "fake:scripted", "options": {"responses": answers}}],
                       metrics=[{"name": "label", "id": "sentiment", "labels": ["positive", "negative", "neutral"]}],
                       **{"pass": {"sentiment": 1}})
    store = str(tmp_path / "s.db")
    run = CliRunner().invoke(app, ["run", str(folder), "--store", store, "--no-progress", "--json"])
    assert run.exit_code == 0, run.output
    [summary] = json.loads(run.stdout)
    c = summary["classification"]["sentiment"]
    assert c["accuracy"] == pytest.approx(4 / 6) and summary["metrics"]["sentiment"] == pytest.approx(4 / 6)
    # positive: P 2/2 R 2/3 -> 0.8; negative: P 2/3 R 1 -> 0.8; neutral: P 0 R 0 -> 0 (predicted "(other)")
    assert c["macro_f1"] == pytest.approx((0.8 + 0.8 + 0) / 3)
    assert c["columns"] == ["positive", "negative", "neutral", OTHER]
    assert c["confusion"] == [[2, 1, 0, 0], [0, 2, 0, 0], [0, 0, 0, 1]]
    shown = CliRunner().invoke(app, ["show", summary["run_id"], "--store", store])
    assert shown.exit_code == 0
    assert "sentiment: accuracy 0.67, macro-F1 0.53 (n=6)" in shown.stdout and "(other)" in shown.stdout
