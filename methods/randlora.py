"""RandLoRA: Full-rank parameter-efficient fine-tuning of large models (Albert et al., 2025),
arXiv:2502.00987.

What trains: per targeted linear layer, the coefficients of a full-rank update built from
n = ceil(min(in, out) / r) frozen random rank-r bases shared by all layers:
delta W = (alpha / r) * sum_i B_i diag(lambda_i) A_i diag(gamma_i), with lambda: r x n and
gamma: n x min(in, out) trained, so a layer trains n * (r + min(in, out)) numbers while the update
can reach full rank. Init: lambda zero (so the model starts exactly at the base), gamma constant;
the bases are Kaiming-uniform from the run's seed. Frozen: every base weight and the bases.
Delegates to `peft` (RandLoraConfig).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from peft import RandLoraConfig as PeftRandLoraConfig

from methods._core.base import BuildContext, MethodConfig
from methods._core.peft_backed import PeftMethod
from methods._core.registry import register
from methods.lora import ALL_LINEAR


@dataclass
class RandLoRAConfig(MethodConfig):
    """
    Attributes:
        r: rank of each random basis; a smaller r means more bases and more trainable numbers.
        alpha: scaling numerator; the update is scaled by alpha / r (the paper uses about 20 * r).
        sparse: ternary sparse bases (entries -1, 0, 1 with probabilities 1/6, 2/3, 1/6).
        dropout: dropout on the adapter input.
        target_modules: suffixes of the linear layers that get an update.
    """

    lr: float = 1e-4
    r: int = 32
    alpha: float = 640.0
    sparse: bool = False
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ALL_LINEAR

    def validate(self) -> None:
        self.require(self.r >= 1, "r", self.r, "the rank must be >= 1")
        self.require(self.alpha > 0, "alpha", self.alpha, "must be > 0")
        self.require(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "must be in [0, 1)")
        self.require(len(self.target_modules) > 0, "target_modules", self.target_modules, "name at least one module")


@register
class RandLoRA(PeftMethod):
    name = "randlora"
    config_class = RandLoRAConfig
    family = "lora"
    paper = "RandLoRA: Full-rank parameter-efficient fine-tuning of large models (2025), arXiv:2502.00987"
    mergeable = True

    def peft_config(self, context: BuildContext) -> PeftRandLoraConfig:
        c = self.config
        return PeftRandLoraConfig(
            r=c.r,
            randlora_alpha=c.alpha,
            sparse=c.sparse,
            randlora_dropout=c.dropout,
            target_modules=list(c.target_modules),
            # the shared bases come from peft's own key: tie it to the run's seed, as VeRA does
            projection_prng_key=torch.initial_seed(),
            task_type="CAUSAL_LM",
        )
