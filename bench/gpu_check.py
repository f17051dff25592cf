"""A GPU check that fits a short lease: under 4 minutes on one GPU, nothing downloaded.

Builds Llama models with random weights straight on the GPU, one with SmolLM2-135M-Instruct's
configuration (the embedded default) and one with Llama-3.2-1B's (about 1.2B parameters), and for each
measures, in this one run:
- batched decode tokens/s through the `local:` provider's decoder (cached shared prefix, preallocated
  key/value cache) at batch 1, 16 and 64: 128 new tokens a row after a 256-token shared prefix and 32
  tokens of its own;
- LoRA training tokens/s of `evals finetune`'s own optimiser step (finetune.trainer.TrainingStep: the
  shared-prefix loss, micro-batches and gradient checkpointing as the trainer's memory plan chooses them, the
  clipped AdamW update on its schedule) with its default settings (rank 16 on every linear layer), on a batch of
  8 rows of 768 prompt + 256 answer tokens, and the peak GPU memory of those steps beside the plan's estimate.
Then it checks, on the 135M model, that a fixed batch's loss on the GPU equals the CPU's (float32 to 1e-4,
bfloat16 or float16 within their tolerance, 2%), and that batched greedy decoding on the GPU gives the
tokens transformers' own `generate` gives there. Exit 0 when every check holds, 1 when one fails, 2 when
there is no CUDA GPU.

    .venv/bin/python bench/gpu_check.py            # one CUDA GPU
    .venv/bin/python bench/gpu_check.py --smoke    # a tiny model on this CPU: checks the script, not a GPU
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BUDGET_S = 240.0


@dataclass(frozen=True)
class Shape:
    """What is measured: model configuration, decode and training workloads."""

    name: str
    config: dict
    batches: tuple[int, ...] = (1, 16, 64)
    prefix: int = 256  # shared prompt tokens (system prompt, few-shot turns)
    own: int = 32  # each row's own prompt tokens
    new: int = 128  # tokens generated a row
    train_rows: int = 8
    train_prompt: int = 768
    train_answer: int = 256
    train_steps: int = 4


SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0,
                    rms_norm_eps=1e-5, tie_word_embeddings=True)
LLAMA_1B = dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192, rope_theta=500000.0,
                rms_norm_eps=1e-5, tie_word_embeddings=True)
TINY = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True)
SHAPES = [Shape("smollm2-135m config", SMOLLM2_135M), Shape("llama-3.2-1b config", LLAMA_1B)]
SMOKE = [Shape("tiny config", TINY, batches=(1, 4, 8), prefix=32, own=8, new=8, train_rows=4, train_prompt=48,
               train_answer=16, train_steps=2)]


def build(config: dict, device: str, dtype, seed: int = 0):
    """A random-weight LlamaForCausalLM made on `device` (no copy through the CPU for a GPU)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    with torch.device(device):
        model = LlamaForCausalLM(LlamaConfig(**config, initializer_range=0.02))
    return model.to(dtype).eval()


def token_rows(vocab: int, n: int, shared: int, own: int, seed: int = 0) -> list[list[int]]:
    """n prompts sharing their first `shared` tokens, each with `own` more."""
    import torch

    g = torch.Generator().manual_seed(seed)
    prefix = torch.randint(10, vocab, (shared,), generator=g).tolist()
    return [prefix + torch.randint(10, vocab, (own,), generator=g).tolist() for _ in range(n)]


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def decode_rates(shape: Shape, device: str, dtype) -> dict[int, float]:
    """Generated tokens/s of the batched decoder at each batch size (no end of sequence: every row runs to `new`)."""
    from evals.providers.local_decode import BatchDecoder
    from evals.types import GenerateParams

    model = build(shape.config, device, dtype)
    decoder = BatchDecoder(model, [-1], 0, lambda ids: "")
    prompts = token_rows(shape.config["vocab_size"], max(shape.batches), shape.prefix, shape.own)
    decoder.generate(prompts[:2], GenerateParams(max_tokens=4))  # warm-up: kernels, and the shared prefix cached
    rates = {}
    for b in shape.batches:
        decoder.generate(prompts[:b], GenerateParams(max_tokens=2))  # this batch size's first call, off the clock
        synchronize(device)
        start = time.perf_counter()
        out = decoder.generate(prompts[:b], GenerateParams(max_tokens=shape.new))
        synchronize(device)
        rates[b] = sum(len(g.token_ids) for g in out) / (time.perf_counter() - start)
    del decoder, model
    return rates


def examples(shape: Shape, n: int, prompt: int, answer: int, seed: int = 1):
    from finetune.data import Example

    rows = token_rows(shape.config["vocab_size"], n, prompt // 2, prompt - prompt // 2 + answer, seed)
    return [Example(str(i), tuple(r[:prompt]), tuple(r[prompt:])) for i, r in enumerate(rows)]


def train_rate(shape: Shape, device: str, dtype):
    """(prompt + answer tokens/s of the fine-tune's optimiser step, peak GPU bytes during those steps (None on a
    CPU), the memory plan the trainer made for them)."""
    import torch

    from finetune.config import FinetuneConfig
    from finetune.trainer import TrainingStep, add_lora, plan_memory_use

    config = FinetuneConfig(batch_size=shape.train_rows)
    model = add_lora(build(shape.config, device, dtype), config)
    batch = examples(shape, shape.train_rows, shape.train_prompt, shape.train_answer)
    plan = plan_memory_use(model, batch, config, device=device, force=True)
    step = TrainingStep.of(model, config, total_steps=1 + shape.train_steps, pad_id=0, micro_batch=plan.micro_batch)
    step([batch])  # warm-up
    gpu = device.startswith("cuda")
    if gpu:
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(shape.train_steps):
        step([batch])
    synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) if gpu else None
    del model, step
    return shape.train_steps * sum(len(e) for e in batch) / seconds, peak, plan


def loss_check(shape: Shape, device: str, dtype) -> list[tuple[str, float, float, float, bool]]:
    """(what, CPU float32 loss, device loss, relative difference, within tolerance) on one fixed batch."""
    import torch

    from finetune.loss import batch_loss

    batch = examples(shape, 4, 128, 32, seed=2)

    def loss(model) -> float:
        with torch.no_grad():
            r = batch_loss(model, batch, 0)
        return float(r.total) / r.answer_tokens

    reference = loss(build(shape.config, "cpu", torch.float32))
    out = []
    for what, dt, tol in (("float32", torch.float32, 1e-4), (str(dtype).removeprefix("torch."), dtype, 2e-2)):
        got = loss(build(shape.config, device, dt))
        rel = abs(got - reference) / abs(reference)
        out.append((what, reference, got, rel, rel <= tol))
    return out


def decode_check(shape: Shape, device: str) -> tuple[bool, str]:
    """Batched greedy decoding on the device against transformers' generate there, float32, row by row."""
    import torch

    from evals.providers.local_decode import BatchDecoder
    from evals.types import GenerateParams

    prompts = token_rows(shape.config["vocab_size"], 3, shape.prefix, shape.own, seed=3)
    reference = build(shape.config, device, torch.float32)
    expected = []
    for p in prompts:
        ids = torch.tensor([p], device=device)
        out = reference.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=16, do_sample=False,
                                 eos_token_id=None, pad_token_id=0)
        expected.append(out[0, len(p):].tolist())
    model = build(shape.config, device, torch.float32)
    got = [g.token_ids for g in BatchDecoder(model, [-1], 0, lambda ids: "").generate(prompts, GenerateParams(
        max_tokens=16))]
    for row, (a, b) in enumerate(zip(got, expected)):
        if a != b:
            first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            return False, f"row {row} differs from token {first}: {a[first:first + 4]} vs {b[first:first + 4]}"
    return True, f"{len(prompts)} rows x 16 tokens equal"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny model on this CPU: checks the script, not a GPU")
    args = parser.parse_args()
    import torch

    from evals.providers.local import pick_dtype

    if args.smoke:
        device, shapes = "cpu", SMOKE
        print("smoke run: a tiny random model on the CPU; these figures say nothing about a GPU")
    elif not torch.cuda.is_available():
        print(f"bench/gpu_check.py needs a CUDA GPU, and torch {torch.__version__} sees none here "
              "(torch.cuda.is_available() is False). Run it on a machine with one, or add --smoke to check the "
              "script itself on this CPU.", file=sys.stderr)
        return 2
    else:
        device, shapes = "cuda", SHAPES
        props = torch.cuda.get_device_properties(0)
        print(f"GPU: {props.name} ({props.total_memory / 2**30:.0f} GiB), torch {torch.__version__}, "
              f"CUDA {torch.version.cuda}")
    dtype = pick_dtype("auto", device)
    started = time.perf_counter()
    print(f"dtype {str(dtype).removeprefix('torch.')}; random weights, nothing downloaded")
    print(f"{'model':<22} {'params':>8}  decode tokens/s at batch " + " / ".join(map(str, shapes[0].batches))
          + "  |  LoRA train tokens/s (the trainer's step)  peak GPU memory")
    for shape in shapes:
        params = sum(p.numel() for p in build(shape.config, "meta", dtype).parameters())
        rates = decode_rates(shape, device, dtype)
        train, peak, plan = train_rate(shape, device, dtype)
        memory = f"{peak / 2**30:.2f} GiB (estimated {plan.estimate / 2**30:.2f})" if peak is not None else "- (CPU)"
        print(f"{shape.name:<22} {params / 1e6:>7.0f}M  " + " / ".join(f"{r:,.0f}" for r in rates.values())
              + f"  ({rates[shape.batches[-1]] / rates[shape.batches[0]]:.1f}x batch {shape.batches[0]})"
              + f"  |  {train:,.0f} (micro-batches of {plan.micro_batch}, checkpointing "
              + f"{'on' if plan.checkpointing else 'off'})  {memory}", flush=True)
    ok = True
    for what, cpu, got, rel, good in loss_check(shapes[0], device, dtype):
        ok &= good
        print(f"loss check ({shapes[0].name}, fixed batch of 4): CPU float32 {cpu:.5f}, {device} {what} {got:.5f}, "
              f"relative difference {rel:.1e}: {'ok' if good else 'FAILED'}")
    good, detail = decode_check(shapes[0], device)
    ok &= good
    print(f"decode check: batched greedy on {device} against transformers' generate: {detail}: "
          f"{'ok' if good else 'FAILED'}")
    elapsed = time.perf_counter() - started
    print(f"total {elapsed:.0f} s" + (f" (over the {BUDGET_S:.0f} s budget)" if elapsed > BUDGET_S else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
