"""Every method under both base-weight dtypes (model.dtype fp32 and bf16, harness/models/precision.py),
on a real (random-init) 2-layer Llama: what it trains is fp32 while the frozen base keeps the
run's dtype, it starts where the base model is, it trains (finite, falling loss), and merging keeps
its function; in bf16 at the tolerance bf16 allows. QLoRA needs a GPU (its own test says so)."""

from __future__ import annotations


import pytest
import torch

import methods
from harness.budget.spec import Budget
from harness.models.precision import Precision
from harness.train.loop import StepOptions, train
from harness.train.ready import ready_to_train
from methods._core.base import BuildContext
from tests.unit.methods.test_methods_native import LR as NATIVE_LR
from tests.unit.methods.test_methods_native import SMALL as NATIVE_SMALL
from tests.unit.methods.test_methods_native import STEPS
from tests.unit.methods.test_methods_peft import LR as PEFT_LR
from tests.unit.methods.test_methods_peft import SMALL as PEFT_SMALL
from tests.unit.methods.test_methods_peft import _batches

SMALL = {**PEFT_SMALL, **NATIVE_SMALL, "lora": {"r": 4}, "dora": {"r": 4}, "pissa": {"r": 4}, "ia3": {},
         "full": {}, "prompt_tuning": {"num_virtual_tokens": 4}}
# LoRA+ trains B 16x faster: at 1e-2 its adapter outgrows the base weights within 8 steps, and bf16's
# rounding of that large sum (merged vs unmerged) exceeds the tolerance; 1e-3 still moves it visibly.
LR = {**PEFT_LR, **NATIVE_LR, "full": 1e-3, "prompt_tuning": 5e-2, "lora_plus": 1e-3}
NAMES = sorted(set(methods.names()) - {"qlora", "base"})  # base trains nothing (tests/e2e/test_base_rows.py)
# One or two methods per family (and each kind of init) in the fast target; the rest in the slow one.
FAST = {"lora", "pissa", "dora", "ia3", "series_adapter", "oft", "prompt_tuning", "full", "lisa", "bitfit", "mezo",
        "fourierft", "sorsa", "corda"}


def by_speed(names) -> list:
    return [name if name in FAST else pytest.param(name, marks=pytest.mark.slow) for name in names]
# Methods whose output at init is not the base model's: new virtual tokens, or a random start.
MOVED_AT_INIT = {"vblora", "prefix_tuning", "p_tuning", "prompt_tuning"}
# Adapter tensors a method keeps frozen on purpose: fp32 like the rest of the adapter, not base weights.
FROZEN_ADAPTER = {"lora_fa": "lora_A"}
CPU = torch.device("cpu")
# Logit agreement, relative to the largest logit: fp32 rounding, or bf16's 8-bit mantissa through 2 layers.
TOLERANCE = {"fp32": 1e-5, "bf16": 3e-2}


def _applied(bases, name: str, dtype: str):
    loaded, model = bases(dtype)
    method = methods.build({"name": name, **SMALL[name]})
    if method.needs_calibration:
        method.calibrate(model, _batches())
    torch.manual_seed(0)
    model = method.apply(model, BuildContext(loaded.tokenizer, loaded.tokenizer_path))
    ready_to_train(model, method, gradient_checkpointing=False)
    return method, model


def _ids():
    return torch.randint(0, 500, (2, 12), generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def _logits(model, precision: Precision) -> torch.Tensor:
    model.eval()
    with precision.autocast():
        return model(input_ids=_ids()).logits.float()


def _close(a: torch.Tensor, b: torch.Tensor, dtype: str) -> None:
    scale = max(float(a.abs().max()), 1e-6)
    assert float((a - b).abs().max()) <= TOLERANCE[dtype] * scale


def test_base_weights_load_in_the_run_dtype(bases):
    loaded, model = bases("bf16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert loaded.identity["dtype"] == "bf16" and "dtype" not in bases("fp32")[0].identity


@pytest.mark.parametrize("dtype", list(TOLERANCE))
@pytest.mark.parametrize("name", by_speed(NAMES))
def test_method_invariants_hold_in_both_precisions(bases, name, dtype):
    precision = Precision.of(dtype, CPU)
    method, model = _applied(bases, name, dtype)
    trained = {id(p) for p in method.trainable_parameters(model)}
    assert trained and all(p.dtype == torch.float32 for p in method.trainable_parameters(model))
    frozen = {p.dtype for n, p in model.named_parameters()
              if id(p) not in trained and p.is_floating_point() and not (FROZEN_ADAPTER.get(name, "@") in n)}
    assert frozen <= {precision.base}  # the base stays in the run's dtype (empty for full fine-tuning)

    if name not in MOVED_AT_INIT:  # starts at the base model, in this precision
        _close(_logits(model, precision), _logits(bases(dtype)[1], precision), dtype)

    batch = next(_batches())
    losses: list[float] = []
    train(model, method, iter(lambda: batch, None), StepOptions(grad_accum=1, warmup_ratio=0.0, grad_clip=1.0, precision='auto'), LR.get(name, 1e-2), Budget("t", max_steps=STEPS.get(name, 8)), CPU, 24.0,
          on_step=lambda _s, loss, _lr: losses.append(loss), precision=precision)
    assert all(map(torch.isfinite, torch.tensor(losses))) and losses[-1] < losses[0]
    assert all(p.dtype == torch.float32 for p in method.trainable_parameters(model))

    if method.mergeable:
        before = _logits(model, precision)
        method.merge(model)
        _close(_logits(model, precision), before, dtype)


@pytest.mark.parametrize("name", ["pissa", "olora", "sorsa", "corda"])
def test_svd_inits_in_bf16_match_the_fp32_init_rounded(bases, name):
    """SVD inits compute in fp32 and cast: the bf16 run starts where the fp32 run starts, to bf16 rounding."""
    out = {dtype: _logits(_applied(bases, name, dtype)[1], Precision.of(dtype, CPU)) for dtype in TOLERANCE}
    _close(out["bf16"], out["fp32"], "bf16")
