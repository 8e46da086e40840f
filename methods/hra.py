"""HRA: Bridging The Gap between Low-rank and Orthogonal Adaptation via Householder Reflection
Adaptation (Yuan, Liu, Zhong & Yang, 2024), arXiv:2405.17484.

What trains: per targeted linear layer, r vectors u_1..u_r (in_features each); the weight becomes
W H_1 ... H_r with Householder reflections H_i = I - 2 u_i u_i^T / |u_i|^2, an orthogonal map that
is also a rank-r change of W. Init: the vectors come in identical pairs, and a reflection applied
twice is the identity, so the model starts exactly at the base (hence r must be even).
Frozen: every base weight. Delegates to `peft` (HRAConfig).
"""

from __future__ import annotations

from dataclasses import dataclass

from peft import HRAConfig as PeftHRAConfig

from methods._core.base import BuildContext, MethodConfig, SizeKnob
from methods._core.peft_backed import PeftMethod
from methods._core.registry import register
from methods.lora import ALL_LINEAR


@dataclass
class HRAConfig(MethodConfig):
    """
    Attributes:
        r: Householder reflections per layer (even).
        gram_schmidt: orthogonalise the u_i (Gram-Schmidt) in every forward pass, the paper's
            strict-orthogonality variant; off keeps them free, with no regulariser.
        target_modules: suffixes of the linear layers that get reflections.
    """

    lr: float = 1e-5
    r: int = 8
    gram_schmidt: bool = False
    target_modules: tuple[str, ...] = ALL_LINEAR

    def validate(self) -> None:
        self.require(self.r >= 2 and self.r % 2 == 0, "r", self.r,
                     "must be even and >= 2 (pairs of equal reflections make the start equal the base)")
        self.require(len(self.target_modules) > 0, "target_modules", self.target_modules, "name at least one module")


@register
class HRA(PeftMethod):
    name = "hra"
    size_knob = SizeKnob("r", low=2, high="hidden_size", step=2)  # r must be even
    config_class = HRAConfig
    family = "orthogonal"
    paper = (
        "Bridging The Gap between Low-rank and Orthogonal Adaptation via Householder Reflection Adaptation "
        "(2024), arXiv:2405.17484"
    )
    mergeable = True

    def peft_config(self, context: BuildContext) -> PeftHRAConfig:
        c = self.config
        return PeftHRAConfig(r=c.r, apply_GS=c.gram_schmidt, target_modules=list(c.target_modules), task_type="CAUSAL_LM")
