"""Loss on the answer tokens of a batch, computing the prompt prefix the batch shares only once.

A task's chats usually start with the same system prompt and few-shot turns (for resume-feedback
about 1,050 of 1,400 tokens). The batch's longest common prompt prefix runs through the model once,
its keys and values serve every row, and each row then processes only its own suffix. The forward
pass is the same as running every full row; backward sums the rows' gradients into the one prefix
computation, which is the same gradient too. (With LoRA dropout on, the rows of a batch share one
dropout mask over the prefix; at the default dropout 0 it is exact.) Rows are right-padded and the
logits are computed only where an answer token is predicted, so padding and prompt tokens cost no
vocabulary projection.

To bound memory, `accumulate_gradients` runs the rows in micro-batches, each forward and backward on
its own, and the prefix once for all of them: its keys and values are detached, the micro-batches'
gradients collect on them, and one last backward carries the sum through the prefix. The caches
below are never written by a layer, so gradient checkpointing may recompute a layer and read the
same states.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import DynamicCache  # training only: this module is imported when a fine-tune starts

from evals.providers.local_decode import cache_keyword
from finetune.data import Example


@dataclass(frozen=True)
class BatchLoss:
    total: object  # summed cross-entropy over answer tokens (a torch scalar; a float from accumulate_gradients)
    answer_tokens: int
    tokens: int  # prompt + answer tokens of the rows (padding excluded)


def shared_prefix_len(batch: Sequence[Example]) -> int:
    """Longest common prompt prefix, leaving each row at least its last prompt token (which predicts
    the first answer token)."""
    first = batch[0].prompt
    n = min(len(e.prompt) for e in batch) - 1
    for e in batch[1:]:
        k = 0
        p = e.prompt
        while k < n and p[k] == first[k]:
            k += 1
        n = k
    return max(n, 0)


def batch_loss(model, batch: Sequence[Example], pad_id: int) -> BatchLoss:
    """Summed answer-token cross-entropy of `batch` under `model` (a causal LM, peft-wrapped or not),
    with the graph kept for a backward by the caller."""
    n_shared = shared_prefix_len(batch)
    states = _prefix_states(model, batch[0].prompt[:n_shared]) if n_shared else []
    return _rows_loss(model, batch, pad_id, n_shared, states)


def accumulate_gradients(model, batch: Sequence[Example], pad_id: int, *, micro_batch: int,
                         divisor: int) -> BatchLoss:
    """Backward of (summed answer-token loss of `batch`) / `divisor`, `micro_batch` rows at a time: the same
    gradients as `batch_loss(...).total / divisor` at once, with the memory of `micro_batch` rows."""
    import torch

    n_shared = shared_prefix_len(batch)
    states = _prefix_states(model, batch[0].prompt[:n_shared]) if n_shared else []
    leaves = [t.detach().requires_grad_(t.requires_grad) for t in states]
    total, answer_tokens = 0.0, 0
    for i in range(0, len(batch), micro_batch):
        r = _rows_loss(model, batch[i:i + micro_batch], pad_id, n_shared, leaves)
        if r.total.requires_grad:
            (r.total / divisor).backward()
        total += r.total.item()
        answer_tokens += r.answer_tokens
    carried = [(t, leaf.grad) for t, leaf in zip(states, leaves) if leaf.grad is not None]
    if carried:
        torch.autograd.backward([t for t, _ in carried], [g for _, g in carried])
    return BatchLoss(total, answer_tokens, sum(len(e) for e in batch))


def _prefix_states(model, prefix: Sequence[int]) -> list:
    """The prefix's keys and values, layer by layer ([k0, v0, k1, v1, ...], one row each)."""
    import torch

    core, head = _core_and_head(model)
    recorder = _Recorder(config=core.config)
    core(input_ids=torch.tensor([list(prefix)], device=head.weight.device), **{cache_keyword(core): recorder},
         use_cache=True)
    return [t for i in sorted(recorder.states) for t in recorder.states[i]]


def _rows_loss(model, batch: Sequence[Example], pad_id: int, n_shared: int, states: Sequence) -> BatchLoss:
    import torch
    import torch.nn.functional as F

    core, head = _core_and_head(model)
    device = head.weight.device
    rows = [e.prompt[n_shared:] + e.answer[:-1] for e in batch]
    width = max(len(r) for r in rows)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), n_shared + width), dtype=torch.long)
    mask[:, :n_shared] = 1
    where_rows, where_cols, targets = [], [], []
    for r, (e, row) in enumerate(zip(batch, rows)):
        ids[r, :len(row)] = torch.tensor(row)
        mask[r, n_shared:n_shared + len(row)] = 1
        first = len(e.prompt) - n_shared - 1  # this position predicts the first answer token
        where_rows += [r] * len(e.answer)
        where_cols += range(first, first + len(e.answer))
        targets += e.answer

    cache = _ReadOnlyPrefix.of(states, len(batch), core.config) if n_shared else None
    positions = torch.arange(n_shared, n_shared + width, device=device).expand(len(batch), -1)
    hidden = core(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions,
                  **{cache_keyword(core): cache}, use_cache=cache is not None).last_hidden_state
    picked = hidden[torch.tensor(where_rows, device=device), torch.tensor(where_cols, device=device)]
    logits = head(picked).float()
    total = F.cross_entropy(logits, torch.tensor(targets, device=device), reduction="sum")
    return BatchLoss(total, len(targets), sum(len(e) for e in batch))


def _core_and_head(model):
    """The transformer body and the output projection of a causal LM, under any peft wrapper."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.get_decoder(), inner.get_output_embeddings()


class _Recorder(DynamicCache):
    """Passes each layer's keys and values through and keeps the first ones it sees (a checkpointed
    layer's recompute passes through again and changes nothing)."""

    def __init__(self, config):
        super().__init__(config=config)
        self.states: dict[int, tuple] = {}

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        self.states.setdefault(layer_idx, (key_states, value_states))
        return key_states, value_states


class _ReadOnlyPrefix(DynamicCache):
    """The shared prefix's keys and values for `rows` rows: each layer attends to them and its own
    tokens, and nothing is stored, so a layer run twice (checkpointing) sees the same thing."""

    @classmethod
    def of(cls, states: Sequence, rows: int, config) -> _ReadOnlyPrefix:
        cache = cls(config=config)
        for layer, k, v in zip(cache.layers, states[0::2], states[1::2], strict=True):
            layer.lazy_initialization(k, v)
            layer.keys, layer.values = k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)
        return cache

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        import torch

        layer = self.layers[layer_idx]
        return torch.cat([layer.keys, key_states], dim=-2), torch.cat([layer.values, value_states], dim=-2)


def enable_checkpointing(model) -> None:
    """Gradient checkpointing: each layer keeps only its input and is recomputed in backward. The layers
    may keep the caches above (transformers drops a cache under checkpointing unless told it is only read)."""
    import warnings

    from transformers.modeling_layers import GradientCheckpointingLayer

    with warnings.catch_warnings():  # transformers renames the method (and peft calls the old name) in v6
        warnings.simplefilter("ignore", FutureWarning)
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    for layer in model.modules():
        if isinstance(layer, GradientCheckpointingLayer):
            layer._can_checkpoint_with_cache = True
