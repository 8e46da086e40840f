"""LISA: Layerwise Importance Sampling for Memory-Efficient Large Language Model Fine-Tuning
(Pan et al., 2024), arXiv:2403.17919.

What trains: everything outside the decoder layers (embeddings, final norm, LM head) all the time,
plus `n_layers` decoder layers drawn uniformly at random and redrawn every `interval` optimizer
steps (the `on_step` hook); the other decoder layers are frozen in between. The draws come from a
generator seeded by `seed`, so a run's schedule is reproducible. Init: the pretrained weights
(nothing is added). The optimizer is handed every parameter (AdamW skips those without a
gradient) and loses the moments of a layer when it is frozen again, so optimizer state exists
only for the active layers, as in the paper. Trainable count at any time:
total - sum(decoder layers) + n_layers * (one decoder layer). Implemented here (backend "native").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.core.errors import HarnessError
from methods._core.base import BuildContext, Method, MethodConfig, SizeKnob
from methods._core.native import decoder_layers, save_tensors
from methods._core.registry import register


@dataclass
class LISAConfig(MethodConfig):
    """
    Attributes:
        n_layers: decoder layers trained at a time (the paper's gamma).
        interval: optimizer steps between two draws of the active layers (the paper's K).
        seed: seed of the layer draws.
    """

    lr: float = 1e-5
    n_layers: int = 1
    interval: int = 20
    seed: int = 0

    def validate(self) -> None:
        self.require(self.n_layers >= 1, "n_layers", self.n_layers, "train at least one decoder layer at a time")
        self.require(self.interval >= 1, "interval", self.interval, "must be >= 1 optimizer step")


@register
class LISA(Method):
    name = "lisa"
    size_knob = SizeKnob("n_layers", high="num_hidden_layers")
    config_class = LISAConfig
    family = "selective"
    paper = (
        "LISA: Layerwise Importance Sampling for Memory-Efficient Large Language Model Fine-Tuning "
        "(2024), arXiv:2403.17919"
    )
    backend = "native"
    mergeable = True  # trains in place: nothing to fold
    distributed_refusal = ("it changes which layers train every few steps, while data-parallel training fixes the "
                           "trained parameters when it starts")

    def __init__(self, config: LISAConfig):
        super().__init__(config)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.active: list[int] = []
        self.ever_active: set[int] = set()
        self.optimizer: torch.optim.Optimizer | None = None

    def apply(self, model: nn.Module, context: BuildContext) -> nn.Module:
        n_available = len(decoder_layers(model))
        if self.config.n_layers > n_available:
            raise HarnessError(
                f"method.n_layers={self.config.n_layers} is invalid for this model: it has {n_available} decoder layers"
            )
        for p in model.parameters():
            p.requires_grad_(True)
        self._draw(model)
        return model

    def trainable_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        return list(model.parameters())  # layers frozen now are drawn later

    def build_optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        # Every parameter, because layers frozen now are drawn later; AdamW skips grad-less ones.
        self.optimizer = torch.optim.AdamW(self.trainable_parameters(model), lr=lr, weight_decay=self.config.weight_decay)
        return self.optimizer

    def on_step(self, model: nn.Module, step: int) -> None:
        if step > 0 and step % self.config.interval == 0:
            self._draw(model)

    def _draw(self, model: nn.Module) -> None:
        order = torch.randperm(len(decoder_layers(model)), generator=self.generator)
        self._activate(model, sorted(order[: self.config.n_layers].tolist()))

    def _activate(self, model: nn.Module, active: list[int]) -> None:
        self.active = active
        self.ever_active.update(active)
        for i, layer in enumerate(decoder_layers(model)):
            layer.requires_grad_(i in self.active)
            if i not in self.active and self.optimizer is not None:
                for p in layer.parameters():
                    self.optimizer.state.pop(p, None)

    def checkpoint_state(self, model: nn.Module) -> dict[str, Any]:
        # Layers trained earlier and frozen now have moved from their pretrained values too.
        layers = decoder_layers(model)
        frozen = {f"{i}.{name}": p.detach() for i in sorted(set(self.ever_active) - set(self.active))
                  for name, p in layers[i].named_parameters()}
        return {"generator": self.generator.get_state(), "active": self.active,
                "ever_active": sorted(self.ever_active), "frozen_layers": frozen}

    def restore_state(self, model: nn.Module, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.ever_active = set(state["ever_active"])
        self._activate(model, list(state["active"]))
        layers = decoder_layers(model)
        with torch.no_grad():
            for key, value in state["frozen_layers"].items():
                index, name = key.split(".", 1)
                layers[int(index)].get_parameter(name).copy_(value)

    def save(self, model: nn.Module, directory: Path) -> int:
        layers = decoder_layers(model)
        in_layers = {id(p) for layer in layers for p in layer.parameters()}
        trained_layers = {id(p) for i in self.ever_active for p in layers[i].parameters()}
        tensors = {name: p for name, p in model.named_parameters()
                   if id(p) not in in_layers or id(p) in trained_layers}
        return save_tensors(tensors, directory)
