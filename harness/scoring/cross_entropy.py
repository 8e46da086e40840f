"""Teacher-forced cross-entropy of target texts: the continuous metrics (answer CE, general-text
CE for forgetting) that move even when a small model's accuracy does not."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedTokenizerBase

from harness.train.encoding import IGNORE, collate, encode_pairs


@torch.no_grad()
def target_cross_entropy(
    model: nn.Module,
    tok: PreTrainedTokenizerBase,
    pairs: Sequence[tuple[str, str]],
    batch_size: int,
    max_len: int,
    device: torch.device,
) -> list[tuple[float, int]]:
    """Per pair: (summed negative log-likelihood of the target tokens in nats, number of tokens)."""
    model.eval()
    encoded = encode_pairs(tok, pairs, max_len)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))  # less padding per batch
    out: list[tuple[float, int]] = [(0.0, 0)] * len(encoded)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = {k: v.to(device) for k, v in collate([encoded[i] for i in idx], tok.pad_token_id).items()}
        labels = batch.pop("labels")
        # The vocabulary projection is the costliest layer on small models: compute logits only
        # from the first position that predicts a target token of any row.
        first = max(int((labels != IGNORE).float().argmax(dim=1).min()) - 1, 0)
        keep = labels.shape[1] - first
        logits = model(**batch, logits_to_keep=keep).logits[:, -keep:, :]
        predicting, targets = logits[:, :-1], labels[:, first + 1 :]  # position j predicts token j+1
        mask = targets != IGNORE
        nll = torch.zeros(targets.shape, device=logits.device)
        nll[mask] = F.cross_entropy(predicting[mask].float(), targets[mask], reduction="none")
        for row, i in enumerate(idx):
            out[i] = (float(nll[row].sum()), int(mask[row].sum()))
    return out


@torch.no_grad()
def continuation_log_probs(model: nn.Module, sequence: torch.Tensor, n_last: int, device: torch.device) -> torch.Tensor:
    """Next-token log-probabilities over the vocabulary at the positions that predict the last
    `n_last` tokens of `sequence` (1-D, no padding): [n_last, V] on CPU."""
    model.eval()
    ids = sequence[None].to(device)
    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), logits_to_keep=n_last + 1).logits
    return F.log_softmax(logits[0, -(n_last + 1) : -1].float(), dim=-1).cpu()


@torch.no_grad()
def chunk_cross_entropy(model: nn.Module, chunks: torch.Tensor, batch_size: int, device: torch.device) -> list[float]:
    """Mean next-token cross-entropy (nats/token) of each equal-length chunk of token ids [N, L]."""
    model.eval()
    out: list[float] = []
    for start in range(0, chunks.shape[0], batch_size):
        batch = chunks[start : start + batch_size].to(device)
        logits = model(input_ids=batch, attention_mask=torch.ones_like(batch)).logits[:, -batch.shape[1] :, :]
        nll = F.cross_entropy(logits[:, :-1].transpose(1, 2).float(), batch[:, 1:], reduction="none")
        out.extend(nll.mean(dim=1).tolist())
    return out
