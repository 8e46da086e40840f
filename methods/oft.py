"""OFT: Controlling Text-to-Image Diffusion by Orthogonal Finetuning (Qiu et al., 2023),
arXiv:2306.07280; with the Cayley-Neumann parameterisation of Orthogonal Finetuning Made Scalable
(Qiu et al., 2025), arXiv:2506.19847, which is what makes OFT practical for LLMs.

What trains: per targeted linear layer, a block-diagonal orthogonal matrix R that rotates the
layer's input (W' = W R): in / block_size blocks, each the Cayley transform of a skew-symmetric
block_size x block_size matrix, stored as its block_size * (block_size - 1) / 2 free entries.
Rotations keep the angles between neurons (the "hyperspherical energy") of the pretrained layer.
Init: zero skew matrices, R = I, so the model starts exactly at the base. Frozen: every base weight.
Delegates to `peft` (OFTConfig).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from peft import OFTConfig as PeftOFTConfig
from torch import nn

from harness.core.errors import HarnessError
from methods._core.base import BuildContext, MethodConfig
from methods._core.peft_backed import PeftMethod
from methods._core.registry import register
from methods.lora import ALL_LINEAR


def require_divisible(model: nn.Module, targets: Sequence[str], size: int, what: str,
                      sides: Sequence[str] = ("in_features",)) -> None:
    """One-line error when `size` does not divide a side of a targeted linear layer. Block-structured
    methods (OFT, BOFT, MiSS's bat mode, VB-LoRA) need it; peft would otherwise silently change the
    block size or fail deep inside with a traceback."""
    bad = sorted({
        f"{name.rsplit('.', 1)[-1]}.{side}={getattr(module, side)}"
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in targets
        for side in sides
        if getattr(module, side) % size
    })
    if bad:
        raise HarnessError(f"{what} does not divide {', '.join(bad)}; choose a divisor of every targeted layer's size")


@dataclass
class OFTConfig(MethodConfig):
    """
    Attributes:
        block_size: side of each orthogonal block; must divide every target's in_features.
        cayley_neumann: approximate the Cayley transform's inverse with a Neumann series (fast,
            the OFTv2 recipe) instead of an exact matrix inverse.
        target_modules: suffixes of the linear layers whose input is rotated.
    """

    lr: float = 8e-4
    block_size: int = 32
    cayley_neumann: bool = True
    target_modules: tuple[str, ...] = ALL_LINEAR

    def validate(self) -> None:
        self.require(self.block_size >= 2, "block_size", self.block_size, "must be >= 2 (a 1x1 rotation is the identity)")
        self.require(len(self.target_modules) > 0, "target_modules", self.target_modules, "name at least one module")


@register
class OFT(PeftMethod):
    name = "oft"
    config_class = OFTConfig
    family = "orthogonal"
    paper = "Controlling Text-to-Image Diffusion by Orthogonal Finetuning (2023), arXiv:2306.07280"
    mergeable = True

    def apply(self, model: nn.Module, context: BuildContext) -> nn.Module:
        c = self.config
        require_divisible(model, c.target_modules, c.block_size, f"method.block_size={c.block_size}")
        return super().apply(model, context)

    def peft_config(self, context: BuildContext) -> PeftOFTConfig:
        c = self.config
        return PeftOFTConfig(
            r=0,  # peft takes either the block count or the block size; the size is what the paper fixes
            oft_block_size=c.block_size,
            use_cayley_neumann=c.cayley_neumann,
            target_modules=list(c.target_modules),
            task_type="CAUSAL_LM",
        )
