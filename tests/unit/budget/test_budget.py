from __future__ import annotations

import pytest

from harness.budget.spec import Budget
from harness.core.errors import HarnessError


def test_first_limit_wins():
    b = Budget("x", max_steps=10, max_tokens=1000, max_time_s=5.0)
    assert b.stop_reason(3, 100, 1.0) is None
    assert b.stop_reason(10, 100, 1.0) == "max_steps"
    assert b.stop_reason(3, 1000, 1.0) == "max_tokens"
    assert b.stop_reason(3, 100, 5.0) == "max_time_s"


def test_planned_steps():
    assert Budget("x", max_steps=50).planned_steps(500) == 50
    assert Budget("x", max_tokens=10_000).planned_steps(500) == 20
    assert Budget("x", max_steps=50, max_tokens=10_000).planned_steps(500) == 20
    assert Budget("x", max_time_s=60).planned_steps(500) is None


@pytest.mark.parametrize("kwargs,needle", [
    ({}, "sets no compute limit"),
    ({"epochs": 0}, "epochs=0 is impossible"),
    ({"max_steps": 5, "max_memory_gib": -1}, "max_memory_gib=-1 is impossible"),
    ({"max_steps": 0}, "max_steps=0 is impossible"),
    ({"max_tokens": -5}, "max_tokens=-5 is impossible"),
    ({"max_time_s": 0}, "max_time_s=0 is impossible"),
])
def test_impossible_budgets(kwargs, needle):
    with pytest.raises(HarnessError, match=needle):
        Budget("x", **kwargs).validate()


def test_epochs_become_steps_for_the_pool():
    b = Budget("x", epochs=1.5).for_pool(n_examples=10, batch_size=4, grad_accum=1)
    assert b.epoch_steps == 3  # 2 full micro-batches per epoch (the partial one is dropped) x 1.5
    assert Budget("x", epochs=1).for_pool(10, 2, 2).epoch_steps == 3  # ceil(5 micro-batches / 2)
    assert b.stop_reason(2, 0, 0.0) is None and b.stop_reason(3, 0, 0.0) == "epochs"
    assert b.planned_steps(100) == 3
    assert Budget("x", max_steps=2, epochs=1).for_pool(10, 4, 1).planned_steps(100) == 2
    with pytest.raises(HarnessError, match="smaller than one batch"):
        Budget("x", epochs=1).for_pool(3, 4, 1)


def test_memory_cap_in_bytes():
    assert Budget("x", max_steps=1, max_memory_gib=1.5).max_memory_bytes == 3 * 2**29
    assert Budget("x", max_steps=1).max_memory_bytes is None


def test_training_stops_after_the_epochs(tiny_model):
    """A real loop on tiny-random-llama: 1.5 epochs of a 10-sequence pool at batch 4 is 3 steps."""
    import torch

    import methods
    from harness.train.batching import batch_stream
    from harness.train.loop import StepOptions, train
    from methods._core.base import BuildContext

    loaded = tiny_model()
    method = methods.build({"name": "lora", "r": 2})
    model = method.apply(loaded.model, BuildContext(loaded.tokenizer, loaded.tokenizer_path))
    torch.manual_seed(0)
    pool = [(ids, ids) for ids in torch.randint(5, 1000, (10, 12)).tolist()]
    budget = Budget("x", epochs=1.5).for_pool(len(pool), 4, 1)
    cfg = StepOptions(grad_accum=1, warmup_ratio=0.0, grad_clip=1.0, precision='fp32')
    result = train(model, method, batch_stream(pool, 4, 0, seed=0), cfg, 1e-3, budget, torch.device("cpu"), 48.0)
    assert (result.steps, result.stop_reason, result.sequences) == (3, "epochs", 12)
    assert result.optimizer_bytes > 0
