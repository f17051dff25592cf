"""The local provider on every device this machine has (the CPU; a CUDA GPU when present): batched decoding
equals transformers' own greedy generate there, every tensor of a decode is made on the model's device, the
automatic dtype follows the device, a GPU asked for where there is none is a clear skip, and a model without
a chat template is refused with the reason."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from evals.errors import MissingCredentials  # noqa: E402
from evals.providers import (
    create_provider,  # noqa: E402
    local,  # noqa: E402
)
from evals.providers.local import chat_token_ids, load_model, pick_dtype, resolve_source  # noqa: E402
from evals.providers.local_decode import BatchDecoder  # noqa: E402
from evals.types import GenerateParams, Message, ModelConfig, ModelSpec  # noqa: E402
from tests.tiny_model import build_tiny_model  # noqa: E402

SYSTEM = "You review resumes. Reply with one JSON object and nothing else."
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU"))]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


def _prompts(tokenizer):
    questions = ["q", "the quick brown fox", "labels l0 l1 l2 and more words here", "0123"]
    return [chat_token_ids(tokenizer, [Message("system", SYSTEM), Message("user", q)]) for q in questions]


def _hf_greedy(model, prompt, max_new, eos):
    ids = torch.tensor([prompt], device=model.device)
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new, do_sample=False,
                         eos_token_id=eos, pad_token_id=eos)
    new = out[0, len(prompt):].tolist()
    return new[: new.index(eos)] if eos in new else new


def _early_eos(model, tokenizer, prompts) -> int:
    """A token the first row emits early, as end of sequence: rows stop at different steps and the batch
    is compacted mid-way."""
    free = BatchDecoder(model, [-1], tokenizer.pad_token_id, tokenizer.decode).generate(prompts[:1],
                                                                                       GenerateParams(max_tokens=12))
    return free[0].token_ids[3]


@pytest.mark.parametrize("device", DEVICES)
def test_batched_decoding_on_the_device_equals_greedy_generate(tiny_dir, device) -> None:
    model, tokenizer = load_model(resolve_source(str(tiny_dir)), None, "float32", device)
    assert model.device.type == device
    prompts = _prompts(tokenizer)
    eos = _early_eos(model, tokenizer, prompts)
    decoder = BatchDecoder(model, [eos], tokenizer.pad_token_id, tokenizer.decode)
    out = decoder.generate(prompts, GenerateParams(max_tokens=12))
    again = decoder.generate(prompts[::-1], GenerateParams(max_tokens=12))  # through the cached shared prefix
    assert len(decoder._prefix) >= 16 and {g.finish_reason for g in out} == {"stop", "length"}
    for i, prompt in enumerate(prompts):
        expected = _hf_greedy(model, prompt, 12, eos)
        assert out[i].token_ids == expected and again[len(prompts) - 1 - i].token_ids == expected


@pytest.mark.parametrize("device", DEVICES)
def test_every_tensor_of_a_decode_is_made_on_the_models_device(tiny_dir, device) -> None:
    """With torch's default device set to `meta` (tensors without data), any tensor the decoder made without
    naming a device would be a meta tensor, and reading it or mixing it with real ones fails."""
    model, tokenizer = load_model(resolve_source(str(tiny_dir)), None, "float32", device)
    prompts = _prompts(tokenizer)
    eos = _early_eos(model, tokenizer, prompts)
    greedy, sampled = GenerateParams(max_tokens=12), GenerateParams(max_tokens=12, temperature=1.0, top_p=0.9, seed=3)
    expected = [BatchDecoder(model, [eos], tokenizer.pad_token_id, tokenizer.decode).generate(prompts, p)
                for p in (greedy, sampled)]
    decoder = BatchDecoder(model, [eos], tokenizer.pad_token_id, tokenizer.decode)
    torch.set_default_device("meta")
    try:
        got = [decoder.generate(prompts, p) for p in (greedy, sampled)]
        got.append(decoder.generate(prompts[::-1], greedy))  # the cached prefix, reused
    finally:
        torch.set_default_device(None)
    assert [g.token_ids for g in got[0]] == [g.token_ids for g in expected[0]]
    assert [g.token_ids for g in got[1]] == [g.token_ids for g in expected[1]]
    assert [g.token_ids for g in got[2]] == [g.token_ids for g in expected[0]][::-1]
    assert {g.finish_reason for g in got[0]} == {"stop", "length"}


def test_auto_dtype_follows_the_device(monkeypatch) -> None:
    monkeypatch.setattr(local, "cpu_has_bf16", lambda: False)
    assert pick_dtype("auto", "cpu") == torch.float32
    monkeypatch.setattr(local, "cpu_has_bf16", lambda: True)
    assert pick_dtype("auto", "cpu") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert pick_dtype("auto", "cuda:1") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # e.g. a T4 or V100
    assert pick_dtype("auto", "cuda") == torch.float16
    assert pick_dtype("auto", "cuda", training=True) == torch.float32  # float16 training would need loss scaling
    assert pick_dtype("float32", "cuda") == torch.float32


async def test_the_device_option_places_the_model(tiny_dir) -> None:
    provider = create_provider(ModelConfig(spec=ModelSpec("local", str(tiny_dir)), max_tokens=4,
                                           options={"dtype": "float32", "device": "cpu"}))
    completion = await provider.generate([Message("user", "hello")], GenerateParams(max_tokens=4))
    assert completion.error is None and provider._decoder.model.device.type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_a_gpu_asked_for_where_there_is_none_skips_the_model_with_the_reason(tiny_dir) -> None:
    with pytest.raises(MissingCredentials, match="'cuda' asked for, but torch sees no CUDA GPU here"):
        create_provider(ModelConfig(spec=ModelSpec("local", str(tiny_dir)), options={"device": "cuda"}))


def test_a_model_without_a_chat_template_is_refused_with_the_reason(tmp_path) -> None:
    from evals.errors import EvalsError

    folder = build_tiny_model(tmp_path / "plain")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(EvalsError, match="has no chat template"):
        local.load_tokenizer(resolve_source(str(folder)))
