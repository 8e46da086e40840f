"""Log-probabilities of the next token after each context: the fast path of choice scoring when every
choice of a request is a single token (MMLU's " A".." D", GLUE's label words).

A choice that is one token after its context is scored by the log-softmax at the context's last
position alone, so one forward pass per context gives every choice's score: the same number that
the general path (and lm-eval, which runs context + choice minus its last token, i.e. the context)
computes. choice_log_likelihoods sends a request here only when each of its continuations,
tokenised the lm-eval way, is exactly one token, in length-sorted batches (contexts that share a
long prefix, such as k-shot examples, batched together).

A batch is right-padded: padding follows the real tokens, so causal attention never lets a real
token see it and no mask is needed (any attention implementation works). Tokens every context of
the batch starts with (an MMLU task description) run once and their keys/values serve every row.
Logits are computed at each row's last context position only; lm-eval computes them at every
position of every row.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

MIN_SHARED_PREFIX = 8  # tokens; a shorter common prefix saves less than its own forward pass costs
# Contexts sharing at least this many tokens (k-shot examples) are batched only with each other. A
# shorter common prefix (MMLU's 0-shot task description) is not worth it: padded rows batched from a
# few contexts span more lengths (6 MMLU subjects: 16% padding, against 2% when all are length-sorted
# together, and a batch still shares the descriptions' common words).
GROUP_PREFIX = 32


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Number of leading tokens `a` and `b` share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _shared_prefix(contexts: list[list[int]]) -> int:
    """Tokens every context of a batch starts with, each keeping at least one of its own; 0 when too
    few to be worth a separate forward pass."""
    shared = min([len(c) - 1 for c in contexts] + [common_prefix(contexts[0], c) for c in contexts[1:]])
    return shared if len(contexts) > 1 and shared >= MIN_SHARED_PREFIX else 0


@torch.no_grad()
def next_token_logprobs(model: nn.Module, contexts: list[list[int]], pad_id: int, device: torch.device) -> torch.Tensor:
    """[len(contexts), vocab] log-probabilities (float32) of the token after each context, in one batch."""
    shared = _shared_prefix(contexts)
    cache = None
    if shared:
        prefix = torch.tensor([contexts[0][:shared]], device=device)
        cache = model(input_ids=prefix, use_cache=True, logits_to_keep=1).cache
        cache.batch_repeat_interleave(len(contexts))
    rows = [c[shared:] for c in contexts]
    ids = torch.full((len(rows), max(map(len, rows))), pad_id, dtype=torch.long)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = torch.tensor(row, dtype=torch.long)
    last = torch.tensor([[len(row) - 1] for row in rows], device=device)
    logits = model(input_ids=ids.to(device), cache=cache, use_cache=cache is not None, logits_to_keep=last).logits
    if logits.shape[1] != 1:  # a model that ignores per-row logits_to_keep returns every position
        logits = logits.gather(1, last[:, :, None].expand(-1, -1, logits.shape[-1]))
    return F.log_softmax(logits[:, 0].float(), dim=-1)
