"""Batched greedy generation with stop strings, delegated to `transformers.generate`."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = min((text.find(s) for s in stop if s in text), default=len(text))
    return text[:cut]


@torch.no_grad()
def greedy_generate(
    model: nn.Module,
    tok: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    max_new_tokens: int,
    stop: Sequence[str],
    batch_size: int,
    device: torch.device,
    desc: str = "generate",
) -> list[str]:
    """Greedy continuations of `prompts`, each cut at its first stop string."""
    model.eval()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths share a batch
    outputs: list[str] = [""] * len(prompts)
    old_side = tok.padding_side
    tok.padding_side = "left"  # generation continues from the right end of every row
    try:
        for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False):
            idx = order[start : start + batch_size]
            enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True).to(device)
            gen = model.generate(
                **enc,
                do_sample=False,
                max_new_tokens=max_new_tokens,
                stop_strings=list(stop) or None,
                tokenizer=tok,
                pad_token_id=tok.pad_token_id,
            )
            new = gen[:, enc["input_ids"].shape[1] :]
            for row, i in enumerate(idx):
                outputs[i] = cut_at_stop(tok.decode(new[row], skip_special_tokens=True), stop)
    finally:
        tok.padding_side = old_side
    return outputs
