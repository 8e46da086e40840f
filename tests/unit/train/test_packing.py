"""Packing on tiny-random-llama: a packed micro-batch gives the loss and the gradients of the padded
one (the base model and LoRA, items of different lengths, fp32); the training loop counts real
tokens and items either way; the runs packing cannot serve are refused in the preflight."""

from __future__ import annotations

import pytest
import torch

import methods
from harness.budget.spec import Budget
from harness.cli import preflight
from harness.core.errors import HarnessError
from harness.train.batching import batch_stream, pack, without_kv_cache
from harness.train.encoding import IGNORE, collate
from harness.train.loop import StepOptions, train
from methods._core.base import BuildContext

CPU = torch.device("cpu")
TRAIN_CFG = StepOptions(grad_accum=2, warmup_ratio=0.0, grad_clip=1.0, precision='fp32')


def _items(lengths_and_targets, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """(ids, labels) items of the given (length, target tokens): the prompt's labels IGNORE."""
    gen = torch.Generator().manual_seed(seed)
    items = []
    for length, target in lengths_and_targets:
        ids = torch.randint(5, 1000, (length,), generator=gen).tolist()
        items.append((ids, [IGNORE] * (length - target) + ids[length - target:]))
    return items


def _trainable(loaded, which: str) -> torch.nn.Module:
    """The base model with every weight trainable, or LoRA on it with B moved off its zero init
    (so that A's gradient is not zero on both sides)."""
    if which == "base":
        return loaded.model.requires_grad_(True)
    method = methods.build({"name": "lora", "r": 4})
    torch.manual_seed(0)
    model = method.apply(loaded.model, BuildContext(loaded.tokenizer, loaded.tokenizer_path))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    return model


def _loss_and_grads(model, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.train()
    model.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("which", ["base", "lora"])
def test_packed_batch_has_the_padded_loss_and_gradients(tiny_model, which):
    model = _trainable(tiny_model(), which)
    items = _items([(9, 4), (23, 7), (5, 2), (14, 14), (17, 3)])
    padded_loss, padded_grads = _loss_and_grads(model, collate(items, pad_id=0))
    with without_kv_cache(model):
        packed_loss, packed_grads = _loss_and_grads(model, pack(items, pad_id=0))
    torch.testing.assert_close(packed_loss, padded_loss, atol=1e-5, rtol=1e-5)
    assert packed_grads.keys() == padded_grads.keys() and len(packed_grads) > 0
    for name, grad in padded_grads.items():
        assert grad.abs().max() > 0, name
        torch.testing.assert_close(packed_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_a_kv_cache_lets_packed_items_see_each_other(tiny_model):
    """Why training on packed rows runs under without_kv_cache: with the config's use_cache on,
    transformers builds a cache in training too and then skips finding the packed items."""
    model = tiny_model().model
    items = _items([(9, 4), (23, 7), (5, 2)])
    padded, _ = _loss_and_grads(model, collate(items, pad_id=0))
    assert model.config.use_cache
    leaked, _ = _loss_and_grads(model, pack(items, pad_id=0))
    assert abs(float(leaked - padded)) > 1e-3


def test_training_loop_counts_tokens_and_items_the_same_packed(tiny_model):
    pool = _items([(4 + (7 * i) % 19, 3) for i in range(12)], seed=1)
    results = {}
    for packing in (False, True):
        method = methods.build({"name": "lora", "r": 2})
        torch.manual_seed(0)
        loaded = tiny_model()
        model = method.apply(loaded.model, BuildContext(loaded.tokenizer, loaded.tokenizer_path))
        with without_kv_cache(model, packing):
            results[packing] = train(model, method, batch_stream(pool, 3, 0, 0, packing=packing), TRAIN_CFG, 1e-3,
                                     Budget("x", max_steps=2), CPU, 60.0)
    padded, packed = results[False], results[True]
    assert (packed.tokens, packed.sequences) == (padded.tokens, padded.sequences) and packed.sequences == 12
    assert packed.positions == packed.tokens < padded.positions
    for (step, a), (_, b) in zip(padded.losses, packed.losses, strict=True):
        assert a == pytest.approx(b, abs=1e-5), step


@pytest.mark.parametrize("method", ["prompt_tuning", "p_tuning", "prefix_tuning"])
def test_packing_refuses_virtual_token_methods_in_the_preflight(method):
    with pytest.raises(HarnessError) as refused:
        preflight.check(["model=tiny-random-llama", "budget=smoke", f"method={method}", "train.packing=true"])
    message = str(refused.value)
    assert message.startswith(f"train.packing=true cannot train {method}") and "\n" not in message
    assert message.endswith("set train.packing=false")


def test_packing_refuses_an_encoder_in_the_preflight(test_data):
    with pytest.raises(HarnessError) as refused:
        preflight.check(["model=all-minilm-l6-v2", "task=glue_sst2", "budget=smoke", "train.packing=true",
                         f"data.dir={test_data}"])
    message = str(refused.value)
    assert message.startswith("train.packing=true needs a causal LM; all-minilm-l6-v2 is an encoder")
    assert "\n" not in message and message.endswith("set train.packing=false")
