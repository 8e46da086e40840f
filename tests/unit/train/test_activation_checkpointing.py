"""train.gradient_checkpointing on every method, on a real (random-init) 2-layer Llama: with layers
recomputed in backward, the loss and the gradient of every trainable tensor equal those without;
the methods it cannot apply to are refused in one line, before anything loads."""

from __future__ import annotations

import pytest
import torch

import methods
from harness.train import activation_checkpointing
from harness.train.ready import ready_to_train
from tests.unit.methods.test_methods_precision import NAMES, SMALL, _applied, by_speed
from tests.unit.methods.test_methods_peft import _batches

REFUSED = {"mezo", "prefix_tuning"}


def _loss_and_grads(bases, name: str, checkpointing: bool) -> tuple[float, dict[str, torch.Tensor]]:
    method, model = _applied(bases, name, "fp32")
    ready_to_train(model, method, checkpointing)
    model.train()
    loss = model(**next(_batches())).loss
    loss.backward()
    return float(loss), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", by_speed(sorted(set(NAMES) - REFUSED)))
def test_checkpointed_loss_and_gradients_equal_plain_ones(bases, name):
    plain_loss, plain = _loss_and_grads(bases, name, False)
    loss, grads = _loss_and_grads(bases, name, True)
    assert plain and grads.keys() == plain.keys()
    assert loss == pytest.approx(plain_loss, abs=1e-6)
    for key, grad in grads.items():
        torch.testing.assert_close(grad, plain[key], atol=1e-6, rtol=1e-5)


def test_checkpointing_really_recomputes_layers(bases):
    """The switch is on in transformers' layers (not silently ignored)."""
    method, model = _applied(bases, "lora", "fp32")
    ready_to_train(model, method, True)
    layers = [m for m in model.modules() if getattr(m, "gradient_checkpointing", False) and "DecoderLayer" in type(m).__name__]
    assert len(layers) == 2  # both decoder layers


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_methods_it_cannot_apply_to_are_refused_in_one_line(name):
    error = activation_checkpointing.refusal(methods.build({"name": name, **SMALL[name]}))
    assert error is not None and "\n" not in str(error)
    assert f"method {name}" in str(error) and "train.gradient_checkpointing=false" in str(error)


def test_prefix_tuning_cannot_train_under_checkpointing(bases):
    """Why prefix tuning is refused: checkpointed layers drop the key/value cache its prefixes live in."""
    method, model = _applied(bases, "prefix_tuning", "fp32")
    activation_checkpointing.enable(model)
    model.train()
    with pytest.raises(RuntimeError):
        model(**next(_batches())).loss.backward()
