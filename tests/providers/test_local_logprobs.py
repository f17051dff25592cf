"""The local provider's confidence signal: each answer's mean token log-probability, from the batched decoder,
equals the one a plain forward pass over prompt + answer gives (rows stopping at different steps included)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from evals.providers.local import chat_token_ids, load_model, resolve_source
from evals.providers.local_decode import BatchDecoder
from evals.types import GenerateParams, Message
from tests.tiny_model import build_tiny_model

SYSTEM = "You review resumes. Reply with one JSON object and nothing else."


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple:
    return load_model(resolve_source(str(build_tiny_model(tmp_path_factory.mktemp("tiny")))), None, "float32")


def forward_mean_logprob(model, prompt: list[int], answer: list[int]) -> float:
    ids = torch.tensor([prompt + answer], device=model.device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    steps = torch.log_softmax(logits[len(prompt) - 1 : -1], dim=-1)
    return float(steps.gather(1, torch.tensor(answer, device=model.device)[:, None]).mean())


def test_mean_logprob_equals_a_forward_pass_over_the_answer(tiny) -> None:
    model, tokenizer = tiny
    prompts = [chat_token_ids(tokenizer, [Message("system", SYSTEM), Message("user", q)])
               for q in ("q", "the quick brown fox", "labels l0 l1 l2 and more words here", "0123")]
    probe = BatchDecoder(model, [-1], tokenizer.pad_token_id, tokenizer.decode).generate(prompts[:1], GenerateParams(
        max_tokens=10))[0]
    eos = probe.token_ids[2]  # a token the first row emits early: rows stop at different steps
    out = BatchDecoder(model, [eos], tokenizer.pad_token_id, tokenizer.decode).generate(prompts, GenerateParams(
        max_tokens=10))
    assert len({len(g.token_ids) for g in out}) > 1
    for prompt, g in zip(prompts, out, strict=True):
        assert g.mean_logprob is not None and g.mean_logprob < 0
        assert g.mean_logprob == pytest.approx(forward_mean_logprob(model, prompt, g.token_ids), abs=1e-4)
