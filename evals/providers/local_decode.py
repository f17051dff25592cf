"""Batched decoding for local causal LMs, tuned for CPUs.

Three things make a batch cheap here, measured against `model.generate` on a 2-core machine:
- a shared prompt prefix (the system prompt, few-shot turns) is run through the model once; its
  keys and values are kept once, not once per row, and every row of every later batch that starts
  with it attends to that single copy (cascade attention: the softmax spans prefix and own tokens);
- each row's own key/value cache is preallocated (`StaticCache`), so no step copies it to grow it;
- rows that finished are dropped from the batch, so the rest do not pay for them.

Each row's output comes with its own timings, offsets from the batch's start: when its first token
was picked (end of prefill) and when it stopped (EOS, stop string or length).

Per row the model sees `[shared prefix | own prompt suffix | generated]`; suffixes are left-padded
to one width, the padding is masked out and RoPE positions skip it.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from evals.types import GenerateParams

ATTENTION = "evals_shared_prefix"
MIN_PREFIX = 16  # shorter shared prefixes are not worth a cache of their own
COMPACT_FRACTION = 0.25  # drop finished rows once this share of the batch is done
ROW_CHUNK = 8  # rows per attention block in prefill, to bound the score matrices' memory

_shared = threading.local()  # the prefix keys/values the running decode attends to, per layer


@dataclass(frozen=True)
class Generated:
    token_ids: list[int]
    finish_reason: str  # "stop" or "length"
    first_token_s: float = 0.0  # seconds from the batch's start to this row's first token (end of prefill)
    finished_s: float = 0.0  # seconds from the batch's start to this row's last step
    logprob_sum: float = 0.0  # of the kept tokens, under the model's own (untempered) distribution

    @property
    def mean_logprob(self) -> float | None:
        """The model's confidence in its answer: mean log-probability per answer token (None for no token)."""
        return self.logprob_sum / len(self.token_ids) if self.token_ids else None


def shared_prefix_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **_):
    """Attention over [shared prefix keys (one copy) | this row's keys], one softmax across both.

    query [B, Hq, q, d]; key/value [B, Hkv, L, d]; attention_mask bool [B, 1, q, L] or None (causal).
    Returns [B, q, Hq, d] as transformers' attention functions do."""
    prefix = getattr(_shared, "kv", None)
    batch, heads, q_len, dim = query.shape
    kv_heads, length = key.shape[1], key.shape[2]
    if attention_mask is None:  # plain causal over the keys, the queries being the last q_len of them
        slots = torch.arange(length, device=query.device)
        attention_mask = (slots[None, :] <= slots[length - q_len :, None])[None, None]
    if q_len > 1:
        return _prefill_attention(query, key, value, attention_mask.bool(), prefix, module.layer_idx, scaling)
    # One new token per row: the query heads sharing a key/value head are stacked, and for the shared
    # prefix the rows too, so each product is one plain batched matmul with no broadcast copies.
    groups = heads // kv_heads
    q = query.reshape(batch, kv_heads, groups, dim) * (scaling or dim**-0.5)
    own = (q @ key.transpose(-1, -2)).masked_fill(~attention_mask.bool().view(-1, 1, 1, length), float("-inf"))
    if prefix is None:
        out = torch.softmax(own, dim=-1) @ value
    else:
        pk, pv = prefix[module.layer_idx]  # [Hkv, P, d]
        n = pk.shape[1]
        stacked = q.transpose(0, 1).reshape(kv_heads, batch * groups, dim)
        shared = (stacked @ pk.transpose(-1, -2)).view(kv_heads, batch, groups, n).transpose(0, 1)
        probs = torch.softmax(torch.cat([shared, own], dim=-1), dim=-1)
        p_shared = probs[..., :n].transpose(0, 1).reshape(kv_heads, batch * groups, n)
        out = (p_shared @ pv).view(kv_heads, batch, groups, dim).transpose(0, 1) + probs[..., n:] @ value
    return out.reshape(batch, 1, heads, dim), None


def _prefill_attention(query, key, value, mask, prefix, layer_idx, scaling):
    """Many queries per row (a prompt): torch's fused attention over [shared prefix | own keys], a few
    rows at a time so the prefix copy made for them stays small."""
    batch, _, q_len, _ = query.shape
    out = []
    for r in range(0, batch, ROW_CHUNK):
        q, k, v = query[r : r + ROW_CHUNK], key[r : r + ROW_CHUNK], value[r : r + ROW_CHUNK]
        m = mask[r : r + ROW_CHUNK] if mask.shape[0] > 1 else mask.expand(q.shape[0], -1, -1, -1)
        if prefix is not None:
            pk, pv = prefix[layer_idx]
            rows = q.shape[0]
            k = torch.cat([pk.expand(rows, -1, -1, -1), k], dim=2)
            v = torch.cat([pv.expand(rows, -1, -1, -1), v], dim=2)
            m = torch.cat([m.new_ones(rows, 1, q_len, pk.shape[1]), m], dim=-1)
        out.append(torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=scaling,
                                                                    enable_gqa=True))
    return torch.cat(out).transpose(1, 2).contiguous(), None


def _register_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION, shared_prefix_attention)


def _common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    first, n = seqs[0], min(len(s) for s in seqs)
    for i in range(n):
        if any(s[i] != first[i] for s in seqs):
            return i
    return n


class BatchDecoder:
    """Generates continuations of token-id prompts in batches, reusing a cached shared prefix."""

    def __init__(self, model, eos_ids: Sequence[int], pad_id: int, decode: Callable[[list[int]], str]):
        _register_attention()
        model.set_attn_implementation(ATTENTION)
        self.model = model
        self.eos_ids = torch.tensor(sorted(set(eos_ids)), dtype=torch.long, device=model.device)
        self.pad_id = pad_id
        self.decode = decode  # token ids -> text, for stop strings
        self._prefix: tuple[int, ...] = ()
        self._prefix_kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._last_prompt: Sequence[int] = ()
        self._cache_name = cache_keyword(model)

    def _shared_prefix(self, prompts: Sequence[Sequence[int]]) -> int:
        """Length of the cached prefix to use for these prompts, refreshing the cache when it pays."""
        shortest = min(len(p) for p in prompts)
        n = min(_common_prefix_len([*prompts, self._last_prompt] if self._last_prompt else prompts), shortest - 1)
        self._last_prompt = prompts[0]
        cached = len(self._prefix)
        if cached and cached <= shortest - 1 and all(tuple(p[:cached]) == self._prefix for p in prompts):
            if n - cached < MIN_PREFIX:
                return cached
        if n < MIN_PREFIX:
            return 0
        _shared.kv = None
        out = self.model(input_ids=torch.tensor([prompts[0][:n]], device=self.model.device), use_cache=True)
        self._prefix = tuple(prompts[0][:n])
        self._prefix_kv = [(layer.keys[0], layer.values[0]) for layer in getattr(out, self._cache_name).layers]
        return n

    @torch.inference_mode()
    def generate(self, prompts: Sequence[Sequence[int]], params: GenerateParams,
                 start: float | None = None) -> list[Generated]:
        """One continuation per prompt, in order. Its times count from `start` (a `time.perf_counter()`
        reading, e.g. taken when the batch was handed over; default: now)."""
        from transformers import StaticCache

        start = time.perf_counter() if start is None else start
        device = self.model.device
        batch = len(prompts)
        prefix = self._shared_prefix(prompts)
        _shared.kv = self._prefix_kv if prefix else None
        suffixes = [list(p[prefix:]) for p in prompts]
        width = max(len(s) for s in suffixes)
        with torch.device(device):  # the cache's own counters too
            cache = StaticCache(config=self.model.config, max_cache_len=width + params.max_tokens)

        valid = torch.zeros(batch, width + params.max_tokens, dtype=torch.bool, device=device)  # real-token slots
        ids = torch.full((batch, width), self.pad_id, dtype=torch.long, device=device)
        positions = torch.full((batch, width), prefix, dtype=torch.long, device=device)
        for row, s in enumerate(suffixes):
            pad = width - len(s)
            ids[row, pad:] = torch.tensor(s, device=device)
            valid[row, pad:width] = True
            positions[row, pad:] = torch.arange(prefix, prefix + len(s), device=device)
        causal = torch.ones(width, valid.shape[1], dtype=torch.bool, device=device).tril()
        logits = self._step(ids, valid[:, None, None, :] & causal[None, None], positions, cache)
        next_pos = positions[:, -1] + 1

        generator = torch.Generator(device=device).manual_seed(params.seed) if params.seed is not None else None
        outputs: list[list[int]] = [[] for _ in range(batch)]
        logprobs = [0.0] * batch
        reasons = ["length"] * batch
        now = time.perf_counter() - start
        first = [now] * batch  # stays at the end of prefill only when max_tokens is 0
        finished: list[float | None] = [None] * batch
        rows = torch.arange(batch, device="cpu")  # original index of each live row (bookkeeping, on the CPU)
        live = torch.ones(batch, dtype=torch.bool, device="cpu")
        for t in range(params.max_tokens):
            tokens = _pick(logits, params, generator)
            chosen = torch.log_softmax(logits, dim=-1).gather(1, tokens[:, None]).squeeze(1)
            picked, eos = tokens.tolist(), torch.isin(tokens, self.eos_ids).tolist()  # waits for the step
            now = time.perf_counter() - start
            if t == 0:
                first = [now] * batch
            for r, tok, stop, lp in zip(rows.tolist(), picked, eos, chosen.tolist()):
                if not live[r]:
                    continue
                if not stop:
                    outputs[r].append(tok)
                    logprobs[r] += lp
                    stop = bool(params.stop) and any(s in self.decode(outputs[r][-16:]) for s in params.stop)
                if stop:
                    live[r], reasons[r], finished[r] = False, "stop", now
            alive = live[rows]
            if not alive.any() or t == params.max_tokens - 1:
                break
            if (~alive).sum() >= max(1, int(COMPACT_FRACTION * len(rows))):
                keep = alive.nonzero().squeeze(1)
                here = keep.to(device)
                for layer in cache.layers:
                    layer.keys, layer.values = layer.keys[here], layer.values[here]
                    layer.batch_size = len(keep)
                rows, tokens, valid, next_pos = rows[keep], tokens[here], valid[here], next_pos[here]
            valid[:, width + t] = True
            logits = self._step(tokens[:, None], valid[:, None, None, :], next_pos[:, None], cache)
            next_pos = next_pos + 1
        _shared.kv = None
        return [Generated(out, reason, first_token_s=f, finished_s=now if end is None else end, logprob_sum=lp)
                for out, reason, f, end, lp in zip(outputs, reasons, first, finished, logprobs)]

    def _step(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache) -> torch.Tensor:
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1,
                         **{self._cache_name: cache})
        return out.logits[:, -1, :].float()


def cache_keyword(model) -> str:
    """The name the model's forward takes (and returns) its key/value cache under: `cache` in newer
    transformers, whose old name `past_key_values` still works but warns on every call; else that old name."""
    try:
        return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    except (TypeError, ValueError):
        return "past_key_values"


def _pick(logits: torch.Tensor, params: GenerateParams, generator: torch.Generator | None) -> torch.Tensor:
    """Greedy at temperature 0; otherwise sample from the temperature-scaled, top-p-truncated distribution."""
    if params.temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p is not None and params.top_p < 1:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs > params.top_p
        sorted_probs[outside] = 0
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)
