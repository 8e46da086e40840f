"""MiSS: Balancing LoRA Performance and Efficiency with Simple Shard Sharing (Kang & Yin, 2024),
arXiv:2409.15371 (first published as Bone: Block-Affine Adaptation of Large Language Models).

What trains: per targeted linear layer, one small matrix shared by all shards of the weight.
`balance` mode (default): D is r x out; the weight's input dimension is cut into r-wide shards and
D is added to every shard (W + expand(D)), a cheap high-rank update. `bat` mode (Bone's "block
affine transformation"): the weight is cut into r x r blocks and a shared (out / r) x r x r tensor
B updates each block as W_ij + W_ij B_i + B_i, letting the update interact with the weights
(both in and out features must be divisible by r). Both train r * out numbers per layer.
Init: zeros, so the model starts exactly at the base. Frozen: every base weight.
Delegates to `peft` (MissConfig; `bat` is its init_weights="bat").
"""

from __future__ import annotations

from dataclasses import dataclass

from peft import MissConfig as PeftMissConfig
from torch import nn

from methods._core.base import BuildContext, MethodConfig, SizeKnob
from methods._core.peft_backed import PeftMethod
from methods._core.registry import register
from methods.lora import ALL_LINEAR
from methods.oft import require_divisible

MODES = ("balance", "bat")


@dataclass
class MiSSConfig(MethodConfig):
    """
    Attributes:
        r: shard width (balance) or block side (bat); must be <= every target's in_features.
        mode: `balance` (MiSS's default) or `bat` (Bone's block-affine update).
        dropout: dropout on the adapter input.
        target_modules: suffixes of the linear layers that get an update.
    """

    lr: float = 2e-5
    r: int = 64
    mode: str = "balance"
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ALL_LINEAR

    def validate(self) -> None:
        self.require(self.r >= 1, "r", self.r, "must be >= 1")
        self.require(self.mode in MODES, "mode", self.mode, f"choose one of {', '.join(MODES)}")
        self.require(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "must be in [0, 1)")
        self.require(len(self.target_modules) > 0, "target_modules", self.target_modules, "name at least one module")


@register
class MiSS(PeftMethod):
    name = "miss"
    size_knob = SizeKnob("r", high="hidden_size")
    config_class = MiSSConfig
    family = "lora"
    paper = "MiSS: Balancing LoRA Performance and Efficiency with Simple Shard Sharing (2024), arXiv:2409.15371"
    mergeable = True

    def apply(self, model: nn.Module, context: BuildContext) -> nn.Module:
        c = self.config
        if c.mode == "bat":
            require_divisible(model, c.target_modules, c.r, f"method.r={c.r} (mode bat)", ("in_features", "out_features"))
        return super().apply(model, context)

    def peft_config(self, context: BuildContext) -> PeftMissConfig:
        c = self.config
        return PeftMissConfig(
            r=c.r,
            miss_dropout=c.dropout,
            init_weights="bat" if c.mode == "bat" else True,
            target_modules=list(c.target_modules),
            task_type="CAUSAL_LM",
        )
