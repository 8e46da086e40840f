"""`train.loss_scaling=dynamic` (HF Trainer's `fp16=True`): fp16 runs scale the loss, skip the steps
whose scaled gradients overflow (and their lr-schedule step), and record how many were skipped;
runs that do not compute in fp16 are refused in one line."""

from __future__ import annotations

import functools

import pytest
import torch
from omegaconf import OmegaConf

from harness.cli import preflight
from harness.core.errors import HarnessError
from harness.models.precision import Precision
from harness.run.prepare import prepare
from harness.train import loop

FP16 = Precision(torch.float16, torch.float16, "cpu")


def test_overflowing_scaled_steps_are_skipped_with_their_schedule_step(lora_steps, monkeypatch):
    # a first scale of 2^40 makes every fp16 gradient inf: the scaler halves it after each skipped step
    monkeypatch.setattr(loop.torch.amp, "GradScaler", functools.partial(torch.amp.GradScaler, init_scale=2.0**40))
    result, lrs = lora_steps(loop.StepOptions(1, 0.0, 1.0, "fp32", loss_scaling="dynamic"), 30, precision=FP16)
    assert 0 < result.skipped_steps < 30 and result.steps == 30
    assert all(torch.isfinite(torch.tensor(loss)) for _, loss in result.losses)
    # warm-up 0, cosine over 30 steps: the schedule moved once per step that was taken
    taken = result.steps - result.skipped_steps
    assert lrs[-1] == pytest.approx(1e-3 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * taken / 30)).item()), rel=1e-5)


def test_without_scaling_no_step_is_skipped(lora_steps):
    result, _ = lora_steps(loop.StepOptions(1, 0.0, 1.0, "fp32", loss_scaling="none"), 3, precision=FP16)
    assert result.skipped_steps == 0 and result.steps == 3


@pytest.mark.parametrize("overrides, message", [
    ([], "train.loss_scaling=dynamic scales fp16 gradients, and this run computes in fp32; set train.loss_scaling=none"),
    (["model.dtype=bf16"], "this run computes in bfloat16"),
])
def test_a_run_that_does_not_compute_in_fp16_is_refused(test_data, tmp_path, overrides, message):
    cfg = preflight._compose(["model=tiny-random-llama", "budget=smoke", "forgetting.probes=[]", "forgetting.target_gain=false",
                              f"data.dir={test_data}", "data.order=[local]", f"results_dir={tmp_path}",
                              "train.loss_scaling=dynamic", *overrides])
    OmegaConf.resolve(cfg)
    with pytest.raises(HarnessError) as refused:
        prepare(cfg)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_fsdp_is_refused():
    with pytest.raises(HarnessError, match="^train.loss_scaling=dynamic does not support train.strategy=fsdp"):
        loop.check_loss_scaling("dynamic", FP16, "fsdp")
    loop.check_loss_scaling("dynamic", FP16, "ddp")
    loop.check_loss_scaling("none", Precision(torch.float32, None, "cpu"), "fsdp")
