"""PiSSA: Principal Singular Values and Singular Vectors Adaptation of Large Language Models
(Meng, Wang & Zhang, 2024), arXiv:2404.02948.

What trains: a LoRA-shaped pair initialised from the top-r singular triplets of each targeted
weight (A = sqrt(S_r) V_r^T, B = U_r sqrt(S_r)); the base weight is replaced by the residual
W - B @ A, so the model starts exactly at the base while the principal part trains.
Frozen: the residual weights. Delegates to `peft` (LoraConfig(init_lora_weights="pissa")).
"""

from __future__ import annotations

from dataclasses import dataclass

from methods._core.registry import register
from methods.lora import LoRA, LoRAConfig


@dataclass
class PiSSAConfig(LoRAConfig):
    """
    Attributes:
        alpha: the paper uses alpha = r (scale 1), so the adapter holds the principal part unscaled.
        svd_niter: 0 for an exact SVD; k > 0 for peft's fast randomized SVD with k subspace iterations
            (the paper's `pissa_niter_k`, much faster on large models).
    """

    lr: float = 2e-5  # PiSSA paper, Sec. 5: lr 2e-5 for both LoRA and PiSSA
    alpha: float | None = None  # None: alpha = r, as in the paper
    svd_niter: int = 0

    def validate(self) -> None:
        super().validate()
        self.require(self.svd_niter >= 0, "svd_niter", self.svd_niter, "must be >= 0 (0 = exact SVD)")


@register
class PiSSA(LoRA):
    name = "pissa"
    rewrites_base = True
    config_class = PiSSAConfig
    paper = (
        "PiSSA: Principal Singular Values and Singular Vectors Adaptation of Large Language Models "
        "(2024), arXiv:2404.02948"
    )

    def lora_alpha(self) -> float:
        return self.config.r if self.config.alpha is None else self.config.alpha

    @property
    def init_lora_weights(self) -> str:  # type: ignore[override]
        return f"pissa_niter_{self.config.svd_niter}" if self.config.svd_niter else "pissa"
