"""Turn (prompt, target) text pairs into token ids with the target's positions marked.

`separate` (the default, `train.encoding`): prompt and target are encoded separately and
concatenated, as lm-eval does for log-likelihoods, so the boundary never depends on how the
tokenizer merges across it; the prompt is cut from the left so the target survives. `joint`
(alpaca-lora's and LLM-Adapters' `tokenize`): prompt + target is encoded as one text and cut from
the right at `max_len`, and the prompt's own encoding says how many leading tokens are the prompt's.
The labels mark the target's tokens only, unless `loss_on_prompt` (`train.loss_on_prompt`,
alpaca-lora's and LLM-Adapters' `train_on_inputs`): then every token is a label, the prompt's too.
"""

from __future__ import annotations

from typing import Sequence

import torch
from transformers import PreTrainedTokenizerBase

IGNORE = -100
ENCODINGS = ("separate", "joint")


def encode_pair(tok: PreTrainedTokenizerBase, prompt: str, target: str, max_len: int,
                loss_on_prompt: bool = False) -> tuple[list[int], list[int]]:
    """Input ids and labels (IGNORE on the prompt unless `loss_on_prompt`); truncated from the left
    of the prompt so the target survives whenever it fits."""
    return _join(tok(prompt, add_special_tokens=True)["input_ids"], tok(target, add_special_tokens=False)["input_ids"],
                 max_len, loss_on_prompt)


def encode_pairs(tok: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]], max_len: int,
                 loss_on_prompt: bool = False) -> list[tuple[list[int], list[int]]]:
    """`encode_pair` over many pairs, with two batched tokenizer calls (the fast tokenizers encode a
    list in parallel: a GSM8K training pool takes about a second instead of ten)."""
    if not pairs:
        return []
    prompts = tok([p for p, _ in pairs], add_special_tokens=True)["input_ids"]
    targets = tok([t for _, t in pairs], add_special_tokens=False)["input_ids"]
    return [_join(p, t, max_len, loss_on_prompt) for p, t in zip(prompts, targets)]


def encode_joint(tok: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]], max_len: int,
                 loss_on_prompt: bool = False) -> list[tuple[list[int], list[int]]]:
    """Each pair as one text (prompt + target), cut from the right at `max_len`, EOS appended when it
    is shorter (and does not end in EOS already); labels IGNORE on the prompt's leading tokens unless
    `loss_on_prompt`. The training text as alpaca-lora and LLM-Adapters build it (`tokenize`,
    `generate_and_tokenize_prompt`)."""
    if not pairs:
        return []
    full = tok([p + t for p, t in pairs], add_special_tokens=True)["input_ids"]
    prompt_lens = [0] * len(pairs) if loss_on_prompt else [
        len(ids) for ids in tok([p for p, _ in pairs], add_special_tokens=True)["input_ids"]]
    out = []
    for ids, n_prompt in zip(full, prompt_lens):
        ids = ids[:max_len]
        if len(ids) < max_len and (not ids or ids[-1] != tok.eos_token_id):
            ids = ids + [tok.eos_token_id]
        n_prompt = min(n_prompt, max_len)
        out.append((ids, [IGNORE] * n_prompt + ids[n_prompt:]))
    return out


def _join(p: list[int], t: list[int], max_len: int, loss_on_prompt: bool) -> tuple[list[int], list[int]]:
    t = t[:max_len]
    p = p[max(0, len(p) + len(t) - max_len):]
    return p + t, (p if loss_on_prompt else [IGNORE] * len(p)) + t


def collate(encoded: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch of (ids, labels)."""
    width = max(len(ids) for ids, _ in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, (i, l) in enumerate(encoded):
        ids[row, : len(i)] = torch.tensor(i)
        labels[row, : len(l)] = torch.tensor(l)
        mask[row, : len(i)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}
