"""AdaLoRA: Adaptive Budget Allocation for Parameter-Efficient Fine-Tuning (Zhang et al., 2023),
arXiv:2303.10512.

What trains: per targeted linear layer an SVD-shaped update delta W = P diag(E) Q scaled by
alpha / (current rank), with P: out x init_r, Q: init_r x in, E: init_r singular values. During
training the singular values of the least important triplets (by a smoothed |weight x gradient|
score) are pruned until the average rank is `r`, moving rank to the layers that need it; an
orthogonality penalty on P and Q is added to the loss. Init: E zero, P and Q Gaussian, so the
model starts exactly at the base. Frozen: every base weight.
Delegates to `peft` (AdaLoraConfig, and its update_and_allocate after every optimizer step).

Schedule: `total_step` must be known when the adapter is built, and a method cannot see the run's
budget; it is a config field whose default equals the default budget (steps50). The phases are
fractions of it: no pruning in the first `warmup_fraction`, the rank pattern frozen in the last
`final_fraction`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from peft import AdaLoraConfig as PeftAdaLoraConfig
from torch import nn

from methods._core.base import BuildContext
from methods._core.peft_backed import PeftMethod
from methods._core.registry import register
from methods.lora import LoRAConfig


@dataclass
class AdaLoRAConfig(LoRAConfig):
    """
    Attributes:
        r: target average rank after pruning (peft's target_r).
        init_r: rank every layer starts with.
        alpha: scaling numerator; the update is scaled by alpha / (current rank).
        total_step: optimizer steps of the run; set it to the budget's max_steps.
        warmup_fraction: share of total_step trained before any pruning (peft's tinit).
        final_fraction: share of total_step at the end trained with the final rank pattern (tfinal).
        delta_t: steps between two reallocations.
        beta1: EMA coefficient of the importance (sensitivity) score.
        beta2: EMA coefficient of its uncertainty.
        orth_reg_weight: weight of the orthogonality penalty on P and Q.
    """

    lr: float = 1e-3
    r: int = 8
    init_r: int = 12
    alpha: float = 32.0
    total_step: int = 50
    warmup_fraction: float = 0.1
    final_fraction: float = 0.3
    delta_t: int = 1
    beta1: float = 0.85
    beta2: float = 0.85
    orth_reg_weight: float = 0.1

    def validate(self) -> None:
        super().validate()
        self.require(self.init_r >= self.r, "init_r", self.init_r, f"must be >= the target rank r={self.r}")
        self.require(self.total_step >= 1, "total_step", self.total_step, "must be >= 1")
        self.require(0.0 <= self.warmup_fraction < 1.0, "warmup_fraction", self.warmup_fraction, "must be in [0, 1)")
        self.require(0.0 <= self.final_fraction < 1.0, "final_fraction", self.final_fraction, "must be in [0, 1)")
        self.require(self.tinit < self.total_step - self.tfinal, "final_fraction", self.final_fraction,
                     "warmup_fraction + final_fraction leave no pruning phase; lower them or raise total_step")
        self.require(self.delta_t >= 1, "delta_t", self.delta_t, "must be >= 1")
        self.require(0.0 <= self.beta1 < 1.0, "beta1", self.beta1, "must be in [0, 1)")
        self.require(0.0 <= self.beta2 < 1.0, "beta2", self.beta2, "must be in [0, 1)")
        self.require(self.orth_reg_weight >= 0, "orth_reg_weight", self.orth_reg_weight, "must be >= 0")

    @property
    def tinit(self) -> int:
        return int(self.warmup_fraction * self.total_step)

    @property
    def tfinal(self) -> int:
        return int(self.final_fraction * self.total_step)


@register
class AdaLoRA(PeftMethod):
    name = "adalora"
    distributed_refusal = ("PEFT adds its orthogonality penalty inside the model's loss, so each process would add it "
                           "once and the ranks together would count it once per process")
    config_class = AdaLoRAConfig
    family = "lora"
    paper = "AdaLoRA: Adaptive Budget Allocation for Parameter-Efficient Fine-Tuning (2023), arXiv:2303.10512"
    mergeable = True

    def peft_config(self, context: BuildContext) -> PeftAdaLoraConfig:
        c = self.config
        return PeftAdaLoraConfig(
            target_r=c.r,
            init_r=c.init_r,
            lora_alpha=c.alpha,
            lora_dropout=c.dropout,
            target_modules=list(c.target_modules),
            total_step=c.total_step,
            tinit=c.tinit,
            tfinal=c.tfinal,
            deltaT=c.delta_t,
            beta1=c.beta1,
            beta2=c.beta2,
            orth_reg_weight=c.orth_reg_weight,
            task_type="CAUSAL_LM",
        )

    def __init__(self, config: AdaLoRAConfig):
        super().__init__(config)
        self.allocations = 0  # calls of peft's update_and_allocate so far: its global_step

    def build_optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        optimizer = super().build_optimizer(model, lr)
        # Reallocation scores each triplet by |weight x gradient|, so it has to run between
        # optimizer.step() and zero_grad(); `on_step` comes before the next forward, when the
        # gradients are already gone. A step post-hook is exactly that moment.
        self.allocations = 0  # a new optimizer is a new training
        optimizer.register_step_post_hook(lambda *_: self._allocate(model))
        return optimizer

    def _allocate(self, model: nn.Module) -> None:
        model.base_model.update_and_allocate(self.allocations)
        self.allocations += 1

    def checkpoint_state(self, model: nn.Module) -> dict[str, Any]:
        # The allocator's smoothed importance scores and the rank pattern it settled on so far.
        allocator = model.base_model.rankallocator
        return {"allocations": self.allocations, "ipt": allocator.ipt, "exp_avg_ipt": allocator.exp_avg_ipt,
                "exp_avg_unc": allocator.exp_avg_unc, "rank_pattern": allocator.peft_config.rank_pattern}

    def restore_state(self, model: nn.Module, state: dict[str, Any]) -> None:
        self.allocations = state["allocations"]
        allocator = model.base_model.rankallocator
        device = next(p.device for p in model.parameters() if p.requires_grad)
        for name in ("ipt", "exp_avg_ipt", "exp_avg_unc"):
            setattr(allocator, name, {k: v.to(device) for k, v in state[name].items()})
        allocator.peft_config.rank_pattern = state["rank_pattern"]
