"""HFT: Half Fine-Tuning for Large Language Models (Hui et al., 2024), arXiv:2404.18466.

What trains: half of the parameter blocks of every decoder layer, chosen per layer and per
category, as in the paper's category-level selection: 2 of the 4 attention projections, half of
the FFN projections and 1 of the 2 norms. A category with an odd number of blocks (Llama's 3 FFN
projections) trains the larger half in odd layers and the smaller half in even ones, so half of
that category trains across the model. The chosen blocks train in place from their pretrained
values; everything else, embeddings and LM head included, is frozen. The choice draws from the
global RNG, which the harness seeds with the run seed before `apply`. Trainable count: the sizes
of the chosen blocks. Implemented here (backend "native"); nothing to merge.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from harness.core.errors import HarnessError
from methods._core.base import BuildContext, Method, MethodConfig
from methods._core.native import decoder_layers, freeze, save_tensors, trainable_tensors
from methods._core.registry import register


@dataclass
class HFTConfig(MethodConfig):
    """
    Attributes:
        categories: groups of block names (space-separated, relative to a decoder layer); half of
            each group trains in every layer.
    """

    lr: float = 2e-5
    categories: tuple[str, ...] = (
        "self_attn.q_proj self_attn.k_proj self_attn.v_proj self_attn.o_proj",
        "mlp.gate_proj mlp.up_proj mlp.down_proj",
        "input_layernorm post_attention_layernorm",
    )

    def validate(self) -> None:
        self.require(len(self.categories) > 0, "categories", self.categories, "name at least one group of blocks")
        small = [c for c in self.categories if len(c.split()) < 2]
        self.require(not small, "categories", self.categories, "every group needs at least 2 blocks to halve")


def trained_half(n_blocks: int, layer_index: int) -> int:
    """Blocks of an n-block category that train in this layer; odd n alternates up and down."""
    return n_blocks // 2 + (n_blocks % 2) * (layer_index % 2)


@register
class HFT(Method):
    name = "hft"
    config_class = HFTConfig
    family = "selective"
    paper = "HFT: Half Fine-Tuning for Large Language Models (2024), arXiv:2404.18466"
    backend = "native"
    mergeable = True  # trains in place: nothing to fold

    def __init__(self, config: HFTConfig):
        super().__init__(config)
        self.chosen: list[list[str]] = []  # per decoder layer, the names of the blocks that train

    def apply(self, model: nn.Module, context: BuildContext) -> nn.Module:
        freeze(model)
        self.chosen = []
        for i, layer in enumerate(decoder_layers(model)):
            blocks = dict(layer.named_modules())
            chosen = []
            for category in self.config.categories:
                names = category.split()
                missing = [n for n in names if n not in blocks]
                if missing:
                    raise HarnessError(
                        f"method.categories: {', '.join(missing)} name no block of the decoder layers"
                    )
                order = torch.randperm(len(names))[: trained_half(len(names), i)]
                chosen += [names[j] for j in order.tolist()]
            for name in chosen:
                blocks[name].requires_grad_(True)
            self.chosen.append(sorted(chosen))
        return model

    def save(self, model: nn.Module, directory: Path) -> int:
        return save_tensors(trainable_tensors(model), directory)
