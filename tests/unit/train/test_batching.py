"""The training batch stream (harness/train/batching.py): the default order is the one run ids were
published with, `start` resumes bit for bit under every switch, length grouping keeps each epoch's
items and cuts padding, and a packed row's layout and counts."""

from __future__ import annotations

import random
from itertools import islice

import pytest
import torch

from harness.core.errors import HarnessError
from harness.models import classifier
from harness.train.batching import batch_counts, batch_stream, pack, padding_metric, without_kv_cache
from harness.train.encoding import IGNORE, collate

FLAGS = [dict(group_by_length=g, packing=p) for g in (False, True) for p in (False, True)]
FLAG_IDS = ["default", "packing", "grouped", "grouped+packing"]


def _pool(n: int, seed: int = 0, longest: int = 40) -> list[tuple[list[int], list[int]]]:
    """Items whose every token is its index + 1 (so a batch shows which items it holds), of random
    lengths, the first half of each a prompt (IGNORE labels)."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        length = rng.randint(2, longest)
        ids = [i + 1] * length
        items.append((ids, [IGNORE] * (length // 2) + ids[length // 2:]))
    return items


def _items_of(batch: dict[str, torch.Tensor]) -> list[int]:
    """Indices of the items in a batch, in order (every token of item i is i + 1)."""
    if "attention_mask" in batch:
        return [int(row[0]) - 1 for row in batch["input_ids"]]
    starts = batch["position_ids"][0] == 0
    return [int(t) - 1 for t in batch["input_ids"][0][starts]]


def _padded_positions(stream, n_batches: int) -> int:
    return sum(c[2] - c[0] for c in (batch_counts(b) for b in islice(stream, n_batches)))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _published_order(n: int, batch_size: int, seed: int):
    """The stream's order as run ids were first published with it (harness/train/loop.py before
    this module): one seeded permutation per epoch, the incomplete tail dropped."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(n, generator=gen).tolist()
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start: start + batch_size]


@pytest.mark.parametrize("seed", [0, 7])
def test_default_stream_is_the_published_order(seed):
    pool = _pool(10)
    stream = batch_stream(pool, 3, 0, seed)
    for expected in islice(_published_order(10, 3, seed), 12):  # 4 epochs of 3 batches, one item dropped each
        assert _same(next(stream), collate([pool[i] for i in expected], 0))


def test_default_stream_first_batches_are_pinned():
    stream = batch_stream(_pool(10), 3, 0, 0)
    published = [[4, 1, 7], [5, 3, 9], [0, 8, 6], [3, 9, 4]]  # what the code before this module yields
    assert [_items_of(next(stream)) for _ in range(4)] == published


@pytest.mark.parametrize("flags", FLAGS, ids=FLAG_IDS)
@pytest.mark.parametrize("k", [1, 3, 7, 10])
def test_start_resumes_exactly_where_an_uninterrupted_stream_is(flags, k):
    pool = _pool(10)
    fresh = list(islice(batch_stream(pool, 3, 0, 5, **flags), k, k + 6))  # crosses epoch boundaries (3 per epoch)
    resumed = list(islice(batch_stream(pool, 3, 0, 5, start=k, **flags), 6))
    assert all(_same(a, b) for a, b in zip(fresh, resumed, strict=True))


def test_start_skips_without_building_batches():
    built = []

    def counting_collate(items, pad_id):
        built.append(len(items))
        return collate(items, pad_id)

    next(batch_stream(_pool(10), 3, 0, 0, counting_collate, start=100_000))
    assert built == [3]


def test_grouped_stream_is_seeded():
    pool = _pool(64)
    first = [_items_of(b) for b in islice(batch_stream(pool, 4, 0, 3, group_by_length=True), 40)]
    again = [_items_of(b) for b in islice(batch_stream(pool, 4, 0, 3, group_by_length=True), 40)]
    other = [_items_of(b) for b in islice(batch_stream(pool, 4, 0, 4, group_by_length=True), 40)]
    assert first == again and first != other


def test_grouping_keeps_each_epochs_items_once():
    pool, per_epoch = _pool(30), 7  # 30 items at batch 4: 7 batches, 2 items dropped per epoch
    grouped = batch_stream(pool, 4, 0, 1, group_by_length=True)
    plain = batch_stream(pool, 4, 0, 1)
    for _ in range(3):
        seen = [i for b in islice(grouped, per_epoch) for i in _items_of(b)]
        assert len(seen) == len(set(seen)) == 28
        assert sorted(seen) == sorted(i for b in islice(plain, per_epoch) for i in _items_of(b))


def test_grouping_cuts_padding():
    pool = _pool(400, longest=200)
    random_order = _padded_positions(batch_stream(pool, 8, 0, 0), 100)
    grouped = _padded_positions(batch_stream(pool, 8, 0, 0, group_by_length=True), 100)
    assert grouped < 0.2 * random_order


def test_grouped_batches_are_not_longest_first():
    """The micro-batches of an epoch are shuffled after grouping: lengths do not fall steadily."""
    pool = _pool(400, longest=200)
    widths = [b["input_ids"].shape[1] for b in islice(batch_stream(pool, 8, 0, 0, group_by_length=True), 50)]
    assert widths != sorted(widths, reverse=True) and widths != sorted(widths)


def test_packed_row_layout():
    items = [([11, 12, 13], [IGNORE, 12, 13]), ([21, 22], [21, 22]), ([31, 32, 33, 34], [IGNORE, IGNORE, 33, 34])]
    batch = pack(items, pad_id=0)
    assert set(batch) == {"input_ids", "labels", "position_ids"}  # no attention_mask: positions say where items start
    assert batch["input_ids"].tolist() == [[11, 12, 13, 21, 22, 31, 32, 33, 34]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1, 2, 3]]
    # each item's first label is IGNORE: no item is predicted from the one before it
    assert batch["labels"].tolist() == [[IGNORE, 12, 13, IGNORE, 22, IGNORE, IGNORE, 33, 34]]


def test_packed_stream_holds_the_same_items_as_the_padded_one():
    pool = _pool(20)
    padded = batch_stream(pool, 4, 0, 2, group_by_length=True)
    packed = batch_stream(pool, 4, 0, 2, group_by_length=True, packing=True)
    for a, b in islice(zip(padded, packed), 15):
        assert _items_of(a) == _items_of(b)
        tokens_a, items_a, positions_a = batch_counts(a)
        assert batch_counts(b) == (tokens_a, items_a, tokens_a) and positions_a >= tokens_a


def test_counts_and_padding_fraction():
    items = [([1, 2, 3, 4], [1, 2, 3, 4]), ([5], [5])]
    assert batch_counts(collate(items, 0)) == (5, 2, 8)
    assert batch_counts(pack(items, 0)) == (5, 2, 5)
    (row,) = padding_metric(5, 8)
    assert (row.task, row.metric, row.version) == ("cost", "padding_fraction", "cost/padding/v1")
    assert not row.higher_is_better
    assert row.value == pytest.approx(3 / 8)
    assert padding_metric(5, 5)[0].value == 0.0 and padding_metric(0, 0) == []


def test_packing_refuses_classification_batches_and_a_pool_below_one_batch():
    examples = [classifier.Example([1, 2], None, 0), classifier.Example([3], None, 1)]
    with pytest.raises(HarnessError, match=r"^train.packing=true .*set train.packing=false$"):
        batch_stream(examples, 2, 0, 0, classifier.collate, packing=True)
    with pytest.raises(HarnessError, match="lower train.batch_size"):
        batch_stream(_pool(3), 4, 0, 0)


def test_without_kv_cache_restores_the_config():
    class Config:
        use_cache = True

    class Model(torch.nn.Module):
        config = Config()

    model = Model()
    with without_kv_cache(model):
        assert model.config.use_cache is False
    assert model.config.use_cache is True
    with without_kv_cache(model, enabled=False):
        assert model.config.use_cache is True
