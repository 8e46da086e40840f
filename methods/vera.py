"""VeRA: Vector-based Random Matrix Adaptation (Kopiczko, Blankevoort & Asano, 2023),
arXiv:2310.11454.

What trains: per targeted linear layer, two scaling vectors around one pair of frozen random
low-rank matrices shared by all layers: delta W = diag(b) B diag(d) A, with b of size out and d of
size r (A: r x in, B: out x r, sliced from the shared pair). A layer trains out + r numbers.
Init: b zero (so the model starts exactly at the base), d = `d_initial`; A and B Kaiming-uniform
from the run's seed. Frozen: every base weight and the shared A, B.
Delegates to `peft` (VeraConfig).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from peft import VeraConfig as PeftVeraConfig

from methods._core.base import BuildContext, MethodConfig, SizeKnob
from methods._core.peft_backed import PeftMethod
from methods._core.registry import register
from methods.lora import ALL_LINEAR


@dataclass
class VeRAConfig(MethodConfig):
    """
    Attributes:
        r: rank of the shared random matrices (much larger than LoRA's: only r numbers per layer train).
        d_initial: initial value of every entry of d (small values train more stably).
        dropout: dropout on the adapter input.
        target_modules: suffixes of the linear layers that get scaling vectors.
    """

    lr: float = 4e-3
    r: int = 256
    d_initial: float = 0.1
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ALL_LINEAR

    def validate(self) -> None:
        self.require(self.r >= 1, "r", self.r, "the rank must be >= 1")
        self.require(self.d_initial > 0, "d_initial", self.d_initial,
                     "must be > 0 (with b = 0 too, nothing would get a gradient)")
        self.require(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "must be in [0, 1)")
        self.require(len(self.target_modules) > 0, "target_modules", self.target_modules, "name at least one module")


@register
class VeRA(PeftMethod):
    name = "vera"
    size_knob = SizeKnob("r")
    config_class = VeRAConfig
    family = "lora"
    paper = "VeRA: Vector-based Random Matrix Adaptation (2023), arXiv:2310.11454"
    mergeable = True

    def peft_config(self, context: BuildContext) -> PeftVeraConfig:
        c = self.config
        return PeftVeraConfig(
            r=c.r,
            d_initial=c.d_initial,
            vera_dropout=c.dropout,
            target_modules=list(c.target_modules),
            # peft draws the shared random matrices from its own key: tie it to the run's seed
            # (set just before `apply`) so that seeds vary the whole init, as for other methods.
            projection_prng_key=torch.initial_seed(),
            task_type="CAUSAL_LM",
        )
