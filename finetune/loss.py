"""Loss on the answer tokens of a batch, computing the prompt prefix the batch shares only once.

A task's chats usually start with the same system prompt and few-shot turns (for resume-feedback
about 1,050 of 1,400 tokens). The batch's longest common prompt prefix runs through the model once,
its keys and values are repeated across the rows, and each row then processes only its own
suffix. The forward pass is the same as running every full row; backward sums the rows'
gradients into the one prefix computation, which is the same gradient too. (With LoRA dropout on,
the rows of a batch share one dropout mask over the prefix; at the default dropout 0 it is exact.) Rows are right-padded
and the logits are computed only where an answer token is predicted, so padding and prompt tokens
cost no vocabulary projection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evals.providers.local_decode import cache_keyword
from finetune.data import Example


@dataclass(frozen=True)
class BatchLoss:
    total: object  # summed cross-entropy over answer tokens (a torch scalar)
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
    """Summed answer-token cross-entropy of `batch` under `model` (a causal LM, peft-wrapped or not)."""
    import torch
    import torch.nn.functional as F

    core, head = _core_and_head(model)
    device = head.weight.device
    n_shared = shared_prefix_len(batch)
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

    cache = None
    if n_shared:
        prefix = torch.tensor([batch[0].prompt[:n_shared]], device=device)
        cache = getattr(core(input_ids=prefix, use_cache=True), cache_keyword(core))
        cache.batch_repeat_interleave(len(batch))
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
