"""The training batch stream: which items form each micro-batch, in which order, and how a
micro-batch is laid out as tensors.

Every epoch draws one seeded permutation of the pool (torch.Generator seeded with the data seed)
and cuts it into micro-batches of `batch_size`, dropping the incomplete tail; so the data order
depends only on the data seed. Two switches cut padding, the share of positions that hold no token:

* `group_by_length` (train.group_by_length): the epoch keeps the same items (the same permutation,
  the same dropped tail), but within each stretch of `batch_size * GROUP_CHUNK_BATCHES` items they
  are sorted by length before the cut, so a micro-batch holds items of similar length; the
  micro-batches of the epoch are then shuffled by a second seeded generator, so long and short
  ones alternate through training instead of running longest first.
* `packing` (train.packing): a micro-batch holds the same items as without it (the loss, a mean
  over the micro-batch's target tokens, is the same number), laid out as one row with no padding
  at all. One row, not several rows of the longest item's width: flash-attention finds packed
  sequences from position_ids only in a batch of one row (transformers'
  modeling_flash_attention_utils._is_packed_sequence), so a single row is correct under every
  attention implementation. `position_ids` restart at 0 for each item; transformers builds the
  block-diagonal causal mask from them when no attention_mask is given
  (masking_utils.find_packed_sequence_indices, SDPA and eager) or runs varlen flash-attention.
  It skips that detection when a KV cache is in use, and a causal LM's config asks for one by
  default even in training, so training on packed rows runs under `without_kv_cache`. The first
  label of every item is IGNORE: no item's first token is predicted from the item before it.
"""

from __future__ import annotations

import contextlib
from itertools import islice
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from harness.core.errors import HarnessError
from harness.core.metrics import Metric
from harness.models.loading import ENCODER
from harness.train.encoding import IGNORE, collate
from methods._core.base import Method

GROUP_CHUNK_BATCHES = 50  # micro-batches per stretch sorted by length: wide enough to find similar lengths
GROUP_ORDER_SALT = 0x5EED  # seeds the micro-batch shuffle apart from the item permutation
PADDING_VERSION = "cost/padding/v1"

Collate = Callable[[Sequence[Any], int], dict[str, torch.Tensor]]


def batch_stream(
    encoded: Sequence[Any], batch_size: int, pad_id: int, seed: int, collate_fn: Collate = collate, *,
    start: int = 0, group_by_length: bool = False, packing: bool = False, rank: int = 0, world_size: int = 1,
) -> Iterator[dict[str, torch.Tensor]]:
    """Endless micro-batches of `encoded` items ((ids, labels) pairs unless `collate_fn` batches
    another kind whose first field is the token ids). `start` micro-batches are skipped without
    being built: the stream then goes on exactly as an uninterrupted one would from there.
    Over `world_size` ranks the stream cuts global micro-batches of `batch_size * world_size` items,
    the same ones a single process with that batch size would train on, and `rank` takes its
    slice of each: the global data order does not depend on how many ranks share it."""
    if packing and collate_fn is not collate:
        raise HarnessError("train.packing=true packs (ids, labels) items of a causal LM only; set train.packing=false")
    if len(encoded) < batch_size * world_size:  # no micro-batch would ever come: fail instead of waiting forever
        raise HarnessError(f"the training pool ({len(encoded)} items) is smaller than one batch ({batch_size} x "
                           f"{world_size} processes); lower train.batch_size")
    lengths = [len(item[0]) for item in encoded] if group_by_length else None
    layout = pack if packing else collate_fn
    indices = islice(index_batches(len(encoded), batch_size * world_size, seed, lengths), start, None)
    return (layout([encoded[i] for i in batch[rank * batch_size : (rank + 1) * batch_size]], pad_id) for batch in indices)


def index_batches(n: int, batch_size: int, seed: int, lengths: Sequence[int] | None = None) -> Iterator[list[int]]:
    """Endless micro-batches as lists of item indices; grouped by length when `lengths` is given."""
    items = torch.Generator().manual_seed(seed)
    order_of_batches = torch.Generator().manual_seed(seed ^ GROUP_ORDER_SALT)
    while True:
        order = torch.randperm(n, generator=items).tolist()
        kept = order[: n - n % batch_size]
        if lengths is not None:
            kept = _grouped(kept, batch_size, lengths, order_of_batches)
        for first in range(0, len(kept), batch_size):
            yield kept[first : first + batch_size]


def _grouped(order: list[int], batch_size: int, lengths: Sequence[int], gen: torch.Generator) -> list[int]:
    """`order` (a whole number of micro-batches) sorted by length within stretches, cut into
    micro-batches, and those shuffled; flattened back to one list."""
    chunk = batch_size * GROUP_CHUNK_BATCHES
    batches: list[list[int]] = []
    for first in range(0, len(order), chunk):
        stretch = sorted(order[first : first + chunk], key=lambda i: -lengths[i])  # stable: ties keep their order
        batches += [stretch[b : b + batch_size] for b in range(0, len(stretch), batch_size)]
    return [i for b in torch.randperm(len(batches), generator=gen).tolist() for i in batches[b]]


def pack(encoded: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """One row holding every (ids, labels) item one after the other, with positions restarting at 0
    per item and each item's first label IGNORE; no attention_mask (see the module docstring).
    `pad_id` is unused: a packed row has no padding."""
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for item_ids, item_labels in encoded:
        ids += item_ids
        labels += [IGNORE] + list(item_labels[1:])
        positions += range(len(item_ids))
    return {name: torch.tensor([values], dtype=torch.long)
            for name, values in (("input_ids", ids), ("labels", labels), ("position_ids", positions))}


@contextlib.contextmanager
def without_kv_cache(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """While inside, the model's forward builds no KV cache (config.use_cache off), so transformers
    keeps the items of a packed row apart; restored on exit. Nothing changes when not `enabled`."""
    config = getattr(model, "config", None)
    if not enabled or config is None or not getattr(config, "use_cache", False):
        yield
        return
    config.use_cache = False
    try:
        yield
    finally:
        config.use_cache = True


def check_packing(packing: bool, method: Method, model_kind: str, model_name: str) -> None:
    """HarnessError when `train.packing` is on for a run it cannot serve: an encoder's
    classification batches, or a method that puts virtual tokens before every sequence."""
    if not packing:
        return
    if model_kind == ENCODER:
        raise HarnessError(f"train.packing=true needs a causal LM; {model_name} is an encoder (one label per item): "
                           "set train.packing=false")
    if not method.supports_packing:
        raise HarnessError(f"train.packing=true cannot train {method.name}: its virtual tokens would precede only the "
                           "first item of a packed row; set train.packing=false")


def batch_counts(batch: dict[str, torch.Tensor]) -> tuple[int, int, int]:
    """(real tokens, items, positions) of a micro-batch; positions minus tokens is padding."""
    mask = batch.get("attention_mask")
    if mask is None:  # a packed row: every position is a token, every item starts at position 0
        positions = int(batch["input_ids"].numel())
        return positions, int((batch["position_ids"] == 0).sum()), positions
    return int(mask.sum()), int(mask.shape[0]), int(mask.numel())


def padding_metric(tokens: int, positions: int) -> list[Metric]:
    """cost/padding/v1: the share of the training batches' positions that held padding; none
    when no batch was seen."""
    if positions <= 0:
        return []
    return [Metric("cost", "padding_fraction", 1.0 - tokens / positions, None, positions, False, PADDING_VERSION)]
