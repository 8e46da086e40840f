"""Batched greedy (or beam-search) generation with stop strings.

Decoder-only models go through our own loop, which (1) drops every finished row from the batch (and
from the KV cache) at once, where `transformers.generate` keeps computing finished rows until the
longest one ends, and (2) drafts tokens by prompt lookup and verifies them in the same forward pass,
so a row that repeats its prompt or itself advances several tokens per pass (transformers offers
prompt lookup for batch size 1 only). Both keep the greedy output unchanged. Prompt-learning PEFT
models (prompt tuning, prefix tuning) prepend virtual tokens inside their own `generate`, so they
use it. Both paths decode greedily and cut the text at the first stop string. `num_beams` > 1
(LLM-Adapters' evaluation uses 4 beams) goes through `transformers.generate`'s beam search, without
sampling, and cuts the text the same way.
"""

from __future__ import annotations

import functools
from typing import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

STOP_WINDOW_TOKENS = 12  # stop strings are looked for in the text of the last tokens only
LOOKUP_TOKENS = 4  # draft tokens per row and step (prompt lookup); 2.8 tokens/step on SmolLM2's GSM8K outputs
LOOKUP_NGRAM = 3  # longest tail n-gram looked up


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
def generate_answers(
    model: nn.Module,
    tok: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    max_new_tokens: int,
    stop: Sequence[str],
    batch_size: int,
    device: torch.device,
    desc: str = "generate",
    num_beams: int = 1,
) -> list[str]:
    """Greedy (`num_beams` 1) or beam-search continuations of `prompts`, each cut at its first stop string."""
    model.eval()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths share a batch
    outputs: list[str] = [""] * len(prompts)
    if num_beams > 1 or uses_prompt_learning(model):
        decode = functools.partial(_generate_hf, num_beams=num_beams)
    else:
        decode = _generate_dropping_finished
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


def _generate_hf(model, tok, input_ids, attention_mask, max_new_tokens, stop, num_beams: int = 1) -> list[list[int]]:
    gen = model.generate(
        input_ids=input_ids, attention_mask=attention_mask, do_sample=False, max_new_tokens=max_new_tokens,
        stop_strings=list(stop) or None, tokenizer=tok, pad_token_id=tok.pad_token_id, num_beams=num_beams,
    )
    return gen[:, input_ids.shape[1] :].tolist()


class _NgramIndex:
    """Where each n-gram (n = LOOKUP_NGRAM .. 1) of a token sequence last occurred with a known next
    token, so a draft is a dictionary lookup, not a scan of the sequence."""

    def __init__(self, tokens: list[int]):
        self.tokens: list[int] = []
        self.after: dict[tuple[int, ...], int] = {}  # n-gram -> index of the token that followed it
        self.extend(tokens)

    def extend(self, new: list[int]) -> None:
        for token in new:
            end = len(self.tokens)  # n-grams ending here now have a next token: `token`
            for n in range(1, LOOKUP_NGRAM + 1):
                if end >= n:
                    self.after[tuple(self.tokens[end - n : end])] = end
            self.tokens.append(token)

    def draft(self, k: int) -> list[int]:
        """The k tokens that followed the latest earlier occurrence of the longest matching tail."""
        for n in range(LOOKUP_NGRAM, 0, -1):
            at = self.after.get(tuple(self.tokens[-n:])) if len(self.tokens) > n else None
            if at is not None:
                return self.tokens[at : at + k]
        return []


def _generate_dropping_finished(model, tok, input_ids, attention_mask, max_new_tokens, stop) -> list[list[int]]:
    """Greedy decoding with prompt-lookup drafts (Saxena, 2023): each step feeds every row's newest
    token plus up to LOOKUP_TOKENS tokens copied from where the row's last n-gram occurred before
    (in its prompt or its own output), and keeps the drafts the model's argmax confirms plus one
    token of its own. The kept tokens are the greedy ones; a step costs little more than a one-token
    step where decoding is bound by reading the weights (CPU, small batches). Rejected drafts stay
    in the KV cache, hidden by the attention mask. Finished rows leave the batch."""
    eos = eos_ids(model, tok)
    generated: list[list[int]] = [[] for _ in range(input_ids.shape[0])]
    seen = [_NgramIndex(row[m.bool()].tolist()) for row, m in zip(input_ids, attention_mask)]
    active = torch.arange(input_ids.shape[0])  # batch row -> index into `generated`
    mask = attention_mask
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: real tokens count from 0
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    cache, last_pos = out.cache, positions[:, -1:]  # position of each row's last fed token
    predicted = out.logits.argmax(-1)  # [rows, fed]: the greedy token after each fed token
    drafts: list[list[int]] = [[] for _ in generated]
    fed = 0  # mask columns of the last step's inputs (none for the prompt: all of it counts)
    while True:
        keep, confirmed, newest = [], [], []
        for row, (i, greedy) in enumerate(zip(active.tolist(), predicted.tolist())):
            accepted = 0  # leading drafts the model agrees with
            while accepted < len(drafts[row]) and drafts[row][accepted] == greedy[accepted]:
                accepted += 1
            new = greedy[: accepted + 1]
            finished = False
            for token in new:
                generated[i].append(token)
                tail = tok.decode(generated[i][-STOP_WINDOW_TOKENS:])
                finished = token in eos or any(s in tail for s in stop) or len(generated[i]) == max_new_tokens
                if finished:
                    break
            if not finished:
                keep.append(row)
                seen[i].extend(new)
                confirmed.append(accepted + 1)  # the fed token and the accepted drafts are now real context
                newest.append(new[-1])
        if not keep:
            break
        if len(keep) < len(active):
            rows = torch.tensor(keep, device=mask.device)
            cache.batch_select_indices(rows)
            active, mask, last_pos = active[keep], mask[rows], last_pos[rows]
        if fed:  # hide the rejected drafts from every later step
            right = torch.tensor([[1] * c + [0] * (fed - c) for c in confirmed], dtype=mask.dtype, device=mask.device)
            mask = torch.cat([mask[:, :-fed], right], dim=1)
            last_pos = last_pos + right.sum(1, keepdim=True)
        drafts = [seen[i].draft(min(LOOKUP_TOKENS, max_new_tokens - len(generated[i]) - 1)) for i in active.tolist()]
        fed = 1 + max(map(len, drafts))
        ids = torch.full((len(keep), fed), tok.pad_token_id, dtype=torch.long)
        fresh = torch.zeros((len(keep), fed), dtype=mask.dtype)
        for row, (token, draft) in enumerate(zip(newest, drafts)):
            ids[row, : 1 + len(draft)] = torch.tensor([token, *draft])
            fresh[row, : 1 + len(draft)] = 1
        mask = torch.cat([mask, fresh.to(mask.device)], dim=1)
        steps = torch.arange(1, fed + 1, device=mask.device)
        out = model(input_ids=ids.to(mask.device), attention_mask=mask, position_ids=last_pos + steps,
                    cache=cache, use_cache=True)
        cache, predicted = out.cache, out.logits.argmax(-1)
    return generated
