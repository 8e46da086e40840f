"""BOFT: Parameter-Efficient Orthogonal Finetuning via Butterfly Factorization (Liu et al., 2023),
arXiv:2311.06243.

What trains: per targeted linear layer, an orthogonal matrix that rotates the layer's input, built
as a product of `n_butterfly_factor` sparse butterfly factors, each block-diagonal (in / block_size
blocks of block_size x block_size, Cayley-parameterised) after a fixed permutation; the product
is dense while costing far fewer parameters than one dense rotation. Plus a learned scale per
output neuron. peft stores every block in full (the Cayley map uses its skew part), so a layer
trains n_butterfly_factor * in * block_size + out numbers. Init: zero blocks (R = I) and unit
scales, so the model starts exactly at the base. Frozen: every base weight.
peft multiplies the factors with a CUDA extension, so n_butterfly_factor > 1 needs a CUDA GPU;
elsewhere `apply` refuses instead of letting peft silently train n_butterfly_factor = 1.
Delegates to `peft` (BOFTConfig).
"""

from __future__ import annotations

from dataclasses import dataclass

from peft import BOFTConfig as PeftBOFTConfig
from peft.tuners.boft.layer import get_fbd_cuda
from torch import nn

from harness.core.errors import HarnessError
from methods._core.base import BuildContext, MethodConfig
from methods._core.peft_backed import PeftMethod
from methods._core.registry import register
from methods.lora import ALL_LINEAR
from methods.oft import require_divisible


@dataclass
class BOFTConfig(MethodConfig):
    """
    Attributes:
        block_size: side of each orthogonal block (even when n_butterfly_factor > 1).
        n_butterfly_factor: butterfly factors m; 1 is plain block-diagonal OFT. Every target's
            in_features must be divisible by block_size * 2 ** (m - 1).
        dropout: multiplicative dropout on the blocks (a dropped block acts as the identity).
        target_modules: suffixes of the linear layers whose input is rotated.
    """

    lr: float = 8e-4
    block_size: int = 8
    n_butterfly_factor: int = 2
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ALL_LINEAR

    def validate(self) -> None:
        self.require(self.block_size >= 2, "block_size", self.block_size, "must be >= 2 (a 1x1 rotation is the identity)")
        self.require(self.n_butterfly_factor >= 1, "n_butterfly_factor", self.n_butterfly_factor, "must be >= 1")
        self.require(self.n_butterfly_factor == 1 or self.block_size % 2 == 0, "block_size", self.block_size,
                     "must be even when n_butterfly_factor > 1")
        self.require(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "must be in [0, 1)")
        self.require(len(self.target_modules) > 0, "target_modules", self.target_modules, "name at least one module")


@register
class BOFT(PeftMethod):
    name = "boft"
    config_class = BOFTConfig
    family = "orthogonal"
    paper = "Parameter-Efficient Orthogonal Finetuning via Butterfly Factorization (2023), arXiv:2311.06243"
    mergeable = True

    def apply(self, model: nn.Module, context: BuildContext) -> nn.Module:
        c = self.config
        device = next(model.parameters()).device
        # peft multiplies butterfly factors with a CUDA extension it compiles on first use; when that
        # is impossible it silently trains m = 1 (plain block-diagonal OFT) instead: refuse that.
        if c.n_butterfly_factor > 1 and (device.type != "cuda" or get_fbd_cuda() is None):
            raise HarnessError(
                f"method.n_butterfly_factor={c.n_butterfly_factor} needs peft's BOFT CUDA extension (a CUDA GPU with "
                f"nvcc and ninja; this run has device {device.type}); without it peft would silently train "
                "n_butterfly_factor=1: set method.n_butterfly_factor=1 to run that on purpose"
            )
        span = c.block_size * 2 ** (c.n_butterfly_factor - 1)
        require_divisible(model, c.target_modules, span,
                          f"method.block_size * 2**(method.n_butterfly_factor - 1) = {span}")
        return super().apply(model, context)

    def peft_config(self, context: BuildContext) -> PeftBOFTConfig:
        c = self.config
        return PeftBOFTConfig(
            boft_block_size=c.block_size,
            boft_block_num=0,  # peft takes either the size or the count; the size is what the paper fixes
            boft_n_butterfly_factor=c.n_butterfly_factor,
            boft_dropout=c.dropout,
            target_modules=list(c.target_modules),
            task_type="CAUSAL_LM",
        )
