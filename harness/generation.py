"""Batched greedy generation with stop strings.

Decoder-only models go through our own loop, which drops every finished row from the batch (and
from the KV cache) at once: `transformers.generate` keeps computing finished rows until the
longest one ends, which on CPU costs about twice the work on GSM8K-length outputs. Prompt-learning
PEFT models (prompt tuning, prefix tuning) prepend virtual tokens inside their own `generate`, so
they use it. Both paths decode greedily and cut the text at the first stop string.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

STOP_WINDOW_TOKENS = 12  # stop strings are looked for in the text of the last tokens only


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = min((text.find(s) for s in stop if s in text), default=len(text))
    return text[:cut]


def eos_ids(model: nn.Module, tok: PreTrainedTokenizerBase) -> set[int]:
    ids = {tok.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
    return {i for i in ids if i is not None}


def uses_prompt_learning(model: nn.Module) -> bool:
    config = getattr(model, "active_peft_config", None)
    return bool(getattr(config, "is_prompt_learning", False))


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
    decode = _generate_hf if uses_prompt_learning(model) else _generate_dropping_finished
    old_side = tok.padding_side
    tok.padding_side = "left"  # generation continues from the right end of every row
    try:
        for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False):
            idx = order[start : start + batch_size]
            enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True).to(device)
            new_tokens = decode(model, tok, enc["input_ids"], enc["attention_mask"], max_new_tokens, stop)
            for row, i in enumerate(idx):
                outputs[i] = cut_at_stop(tok.decode(new_tokens[row], skip_special_tokens=True), stop)
    finally:
        tok.padding_side = old_side
    return outputs


def _generate_hf(model, tok, input_ids, attention_mask, max_new_tokens, stop) -> list[list[int]]:
    gen = model.generate(
        input_ids=input_ids, attention_mask=attention_mask, do_sample=False, max_new_tokens=max_new_tokens,
        stop_strings=list(stop) or None, tokenizer=tok, pad_token_id=tok.pad_token_id,
    )
    return gen[:, input_ids.shape[1] :].tolist()


def _generate_dropping_finished(model, tok, input_ids, attention_mask, max_new_tokens, stop) -> list[list[int]]:
    eos = eos_ids(model, tok)
    generated: list[list[int]] = [[] for _ in range(input_ids.shape[0])]
    active = torch.arange(input_ids.shape[0])  # batch row -> index into `generated`
    mask = attention_mask
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: real tokens count from 0
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    cache, last_pos = out.past_key_values, positions[:, -1]
    for step in range(max_new_tokens):
        next_tokens = out.logits[:, -1].argmax(-1)
        keep = []
        for row, (i, token) in enumerate(zip(active.tolist(), next_tokens.tolist())):
            generated[i].append(token)
            tail = tok.decode(generated[i][-STOP_WINDOW_TOKENS:])
            finished = token in eos or any(s in tail for s in stop) or step + 1 == max_new_tokens
            if not finished:
                keep.append(row)
        if not keep:
            break
        if len(keep) < len(active):
            rows = torch.tensor(keep, device=mask.device)
            cache.batch_select_indices(rows)
            active, mask, last_pos, next_tokens = active[keep], mask[rows], last_pos[rows], next_tokens[rows]
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        last_pos = last_pos + 1
        out = model(input_ids=next_tokens[:, None], attention_mask=mask, position_ids=last_pos[:, None],
                    past_key_values=cache, use_cache=True)
        cache = out.past_key_values
    return generated
