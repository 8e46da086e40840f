"""Encoder models with a classification head: text (pairs) as tokenizer inputs, their batches, and
batched prediction. The training loss is the model's own: cross-entropy over the labels, or mean
squared error when the head has one output (regression; float labels).

A pair is encoded as the tokenizer joins two segments (BERT: [CLS] a [SEP] b [SEP], with token
type ids 0 then 1), truncated longest-first to `max_len` tokens, so neither side is dropped whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from harness.core.cache import tokenized


class Example(NamedTuple):
    ids: list[int]
    type_ids: list[int] | None  # segment ids, for tokenizers that give them
    label: int | float


def tokenize(tok: PreTrainedTokenizerBase, texts: Sequence[Sequence[str]], max_len: int) -> list[tuple[list[int], list[int]]]:
    """(input ids, segment ids) per item; `texts` holds one or two segments per item (the same count
    for all). Segment ids are all 0 where the tokenizer has none."""
    if not texts:
        return []
    first = [t[0] for t in texts]
    second = [t[1] for t in texts] if len(texts[0]) > 1 else None
    enc = tok(first, second, truncation=True, max_length=max_len)
    types = enc.get("token_type_ids") or [[0] * len(ids) for ids in enc["input_ids"]]
    return list(zip(enc["input_ids"], types))


def encode(tok: PreTrainedTokenizerBase, texts: Sequence[Sequence[str]], labels: Sequence[int | float], max_len: int,
           cache_root: Path | None = None) -> list[Example]:
    """One Example per item; with `cache_root`, the tokenization is cached there across runs
    (harness.core.cache: a GLUE training pool takes seconds to tokenize)."""
    texts = [tuple(t) for t in texts]
    if cache_root is None:
        encoded = tokenize(tok, texts, max_len)
    else:
        encoded = tokenized(cache_root, tok, texts, {"max_len": max_len, "segments": "classifier"},
                            lambda items: tokenize(tok, items, max_len))
    with_types = "token_type_ids" in tok.model_input_names
    return [Example(ids, types if with_types else None, y) for (ids, types), y in zip(encoded, labels)]


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; labels are a long tensor of classes, or float targets for regression."""
    width = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        ids[row, : len(e.ids)] = torch.tensor(e.ids)
        mask[row, : len(e.ids)] = 1
    batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([e.label for e in examples])}
    if examples[0].type_ids is not None:
        types = torch.zeros((len(examples), width), dtype=torch.long)
        for row, e in enumerate(examples):
            types[row, : len(e.type_ids)] = torch.tensor(e.type_ids)
        batch["token_type_ids"] = types
    return batch


@torch.no_grad()
def predict(model: nn.Module, tok: PreTrainedTokenizerBase, texts: Sequence[Sequence[str]], batch_size: int,
            max_len: int, device: torch.device) -> torch.Tensor:
    """The head's outputs (items x labels, in the order of `texts`), in eval mode, `batch_size`
    items per forward pass. Batches hold items of similar length, so little compute goes to padding."""
    model.eval()
    examples = encode(tok, texts, [0] * len(texts), max_len)
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].ids))
    outputs = []
    for start in range(0, len(order), batch_size):
        batch = collate([examples[i] for i in order[start: start + batch_size]], tok.pad_token_id)
        del batch["labels"]
        outputs.append(model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu())
    if not outputs:
        return torch.zeros(0, 0)
    stacked = torch.cat(outputs)
    result = torch.empty_like(stacked)
    result[torch.tensor(order)] = stacked
    return result
