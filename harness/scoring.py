"""Teacher-forced cross-entropy of target texts: the continuous metrics (answer CE, general-text
CE for forgetting) that move even when a small model's accuracy does not."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedTokenizerBase

from harness.encoding import IGNORE, collate, encode_pair


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
    encoded = [encode_pair(tok, p, t, max_len) for p, t in pairs]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))  # less padding per batch
    out: list[tuple[float, int]] = [(0.0, 0)] * len(encoded)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = {k: v.to(device) for k, v in collate([encoded[i] for i in idx], tok.pad_token_id).items()}
        labels = batch.pop("labels")
        logits = model(**batch).logits
        # Prompt-tuning models prepend virtual tokens: keep only the positions of real tokens.
        logits = logits[:, -labels.shape[1] :, :]
        nll = F.cross_entropy(
            logits[:, :-1].transpose(1, 2).float(), labels[:, 1:], ignore_index=IGNORE, reduction="none"
        )
        counts = (labels[:, 1:] != IGNORE).sum(dim=1)
        for row, i in enumerate(idx):
            out[i] = (float(nll[row].sum()), int(counts[row]))
    return out


@torch.no_grad()
def token_log_probs(model: nn.Module, sequences: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """log p(token t+1 | tokens <= t) over the vocabulary for equal-length `sequences` [N, L]:
    returns [N, L-1, V] on CPU (the last position predicts nothing we hold)."""
    model.eval()
    out = []
    for start in range(0, sequences.shape[0], batch_size):
        batch = sequences[start : start + batch_size].to(device)
        logits = model(input_ids=batch, attention_mask=torch.ones_like(batch)).logits[:, -batch.shape[1] :, :]
        out.append(F.log_softmax(logits[:, :-1].float(), dim=-1).cpu())
    return torch.cat(out)


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
