"""FourierFT: Parameter-Efficient Fine-Tuning with Discrete Fourier Transform (Gao et al., 2024),
arXiv:2405.03003.

What trains: per targeted linear layer, `n_frequency` spectral coefficients at random but fixed
positions of the weight's 2-D frequency grid (drawn from a fixed seed);
delta W = scaling * Re(IDFT2(sparse spectrum)), so a layer trains n_frequency numbers whatever
its size. Init: zero coefficients, so the model starts exactly at the base and every run of the
benchmark starts from the same function (peft's other choice, a Gaussian spectrum, does not).
Frozen: every base weight. Delegates to `peft` (FourierFTConfig).
"""

from __future__ import annotations

from dataclasses import dataclass

from peft import FourierFTConfig as PeftFourierFTConfig

from methods._core.base import BuildContext, MethodConfig, SizeKnob
from methods._core.peft_backed import PeftMethod
from methods._core.registry import register


@dataclass
class FourierFTConfig(MethodConfig):
    """
    Attributes:
        n_frequency: trainable spectral coefficients per layer (at most in * out of the smallest target).
        scaling: multiplier of the recovered delta W (plays the role of LoRA's alpha).
        target_modules: suffixes of the linear layers that get an update.
    """

    lr: float = 5e-2
    n_frequency: int = 1000
    scaling: float = 300.0
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")

    def validate(self) -> None:
        self.require(self.n_frequency >= 1, "n_frequency", self.n_frequency, "must be >= 1")
        self.require(self.scaling > 0, "scaling", self.scaling, "must be > 0")
        self.require(len(self.target_modules) > 0, "target_modules", self.target_modules, "name at least one module")


@register
class FourierFT(PeftMethod):
    name = "fourierft"
    size_knob = SizeKnob("n_frequency")
    config_class = FourierFTConfig
    family = "spectral"
    paper = "Parameter-Efficient Fine-Tuning with Discrete Fourier Transform (2024), arXiv:2405.03003"
    mergeable = True

    def peft_config(self, context: BuildContext) -> PeftFourierFTConfig:
        c = self.config
        return PeftFourierFTConfig(
            n_frequency=c.n_frequency,
            scaling=c.scaling,
            init_weights=True,  # zero spectrum, see the module docstring
            target_modules=list(c.target_modules),
            task_type="CAUSAL_LM",
        )
