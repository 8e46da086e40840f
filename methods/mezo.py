"""MeZO: Fine-Tuning Language Models with Just Forward Passes (Malladi et al., 2023), arXiv:2305.17333.

Zeroth-order SGD without a backward pass. Each step draws a seed s, regenerates z ~ N(0, I) from s
to perturb the trained parameters in place (+eps z, then -2 eps z, then +eps z back), and takes
g = (L(theta + eps z) - L(theta - eps z)) / (2 eps) from the two forward passes. `training_step`
hands (s, g) to the optimizer that `build_optimizer` returns, which regenerates z from s once more
and applies theta -= lr * g * z under the harness's learning-rate schedule: no gradient buffer is
ever allocated, so training needs the memory of inference, the paper's point. What trains (`mode`): every weight
of the model ("full", the paper's main setting) or a LoRA pair on the targeted layers ("lora",
wrapped by `peft` exactly as the `lora` method does). The seeds come from a generator seeded by
`seed`. With gradient accumulation the micro-batches' projected gradients add up. Init: the
pretrained weights (LoRA: B = 0, so the model starts at the base). Implemented here (backend
"native"); saving and merging are those of the full / LoRA method it runs on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from methods._core.base import BuildContext, Method, MethodConfig
from methods._core.registry import register
from methods.full import FullConfig, FullFineTuning
from methods.lora import LoRA, LoRAConfig

MODES = ("full", "lora")


@dataclass
class MeZOConfig(MethodConfig):
    """
    Attributes:
        eps: perturbation scale of the two-point gradient estimate.
        mode: "full" perturbs and trains every weight; "lora" only the LoRA pairs on `target_modules`.
        r: LoRA rank (mode "lora").
        alpha: LoRA scaling numerator (mode "lora").
        target_modules: linear layers that get a LoRA pair (mode "lora").
        seed: seed of the generator that draws each step's perturbation seed.
    """

    lr: float = 1e-6
    eps: float = 1e-3
    mode: str = "full"
    r: int = 8
    alpha: float = 16.0
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    seed: int = 0

    def validate(self) -> None:
        self.require(self.eps > 0, "eps", self.eps, "must be > 0")
        self.require(self.mode in MODES, "mode", self.mode, f"choose one of {', '.join(MODES)}")


class ZerothOrderSGD(torch.optim.Optimizer):
    """SGD on projected gradients given as (seed, scalar) pairs: the update is -lr * (g * z(seed) +
    weight_decay * theta). Pairs from accumulated micro-batches add up; weight decay applies once."""

    def __init__(self, params: list[nn.Parameter], lr: float, weight_decay: float):
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})
        self.pending: list[tuple[int, float]] = []

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            params, lr = group["params"], group["lr"]
            if group["weight_decay"]:
                for p in params:
                    p.mul_(1 - lr * group["weight_decay"])
            for seed, projected in self.pending:
                for p, z in zip(params, directions(params, seed)):
                    p.add_(z, alpha=-lr * projected)
        self.pending.clear()


def directions(params: list[nn.Parameter], seed: int) -> Iterator[torch.Tensor]:
    """z for each parameter, the same every time for the same seed (one generator per device)."""
    generators: dict[torch.device, torch.Generator] = {}
    for p in params:
        if p.device not in generators:
            generators[p.device] = torch.Generator(device=p.device).manual_seed(seed)
        yield torch.randn(p.shape, generator=generators[p.device], device=p.device, dtype=p.dtype)


@register
class MeZO(Method):
    name = "mezo"
    config_class = MeZOConfig
    family = "optimizer"
    paper = "Fine-Tuning Language Models with Just Forward Passes (2023), arXiv:2305.17333"
    backend = "native"
    mergeable = True  # full: nothing to fold; lora: peft folds the pairs
    gradient_checkpointing_refusal = "it computes no gradients (two forward passes per step), so there are no activations to save"
    distributed_refusal = ("its step is two perturbed forward passes and a seeded update, not a gradient the ranks "
                           "could average")

    def __init__(self, config: MeZOConfig):
        super().__init__(config)
        c = config
        self.underlying: Method = (
            LoRA(LoRAConfig(lr=c.lr, r=c.r, alpha=c.alpha, target_modules=c.target_modules))
            if c.mode == "lora" else FullFineTuning(FullConfig(lr=c.lr))
        )
        self.seeds = torch.Generator().manual_seed(c.seed)

    def apply(self, model: nn.Module, context: BuildContext) -> nn.Module:
        return self.underlying.apply(model, context)

    def build_optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        params = self.trainable_parameters(model)
        self.optimizer = ZerothOrderSGD(params, lr, self.config.weight_decay)
        return self.optimizer

    @torch.no_grad()
    def training_step(self, model: nn.Module, batch: dict[str, torch.Tensor], scale: float = 1.0) -> torch.Tensor:
        params = [p for p in model.parameters() if p.requires_grad]
        seed = int(torch.randint(2**62, (1,), generator=self.seeds))
        eps = self.config.eps
        self.perturb(params, seed, eps)
        loss_plus = model(**batch).loss
        self.perturb(params, seed, -2 * eps)
        loss_minus = model(**batch).loss
        self.perturb(params, seed, eps)
        projected = scale * (loss_plus - loss_minus) / (2 * eps)  # scale: a mean over accumulated micro-batches
        self.optimizer.pending.append((seed, float(projected)))
        return scale * (loss_plus + loss_minus) / 2

    def checkpoint_state(self, model: nn.Module) -> dict[str, Any]:
        return {"seeds": self.seeds.get_state()}  # the optimizer's pending pairs are empty between steps

    def restore_state(self, model: nn.Module, state: dict[str, Any]) -> None:
        self.seeds.set_state(state["seeds"])

    @staticmethod
    @torch.no_grad()
    def perturb(params: list[nn.Parameter], seed: int, scale: float) -> None:
        for p, z in zip(params, directions(params, seed)):
            p.add_(z, alpha=scale)

    def merge(self, model: nn.Module) -> None:
        self.underlying.merge(model)

    def save(self, model: nn.Module, directory: Path) -> int:
        return self.underlying.save(model, directory)
