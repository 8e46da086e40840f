"""Shared plumbing for the methods implemented here (backend "native"): finding the decoder layers
and the targeted linear layers, swapping modules, saving trained tensors, and the column-block
layer (and base class) that PaCA and S2FT share.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from harness.core.errors import HarnessError
from methods._core.base import Method, directory_bytes
from methods._core.peft_backed import check_targets


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's stack of transformer blocks (the ModuleList with one entry per hidden layer)."""
    n_layers = model.config.num_hidden_layers
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers:
            return module
    raise HarnessError(f"found no list of {n_layers} decoder layers in {type(model).__name__}; this method needs one")


def layer_linears(model: nn.Module, targets: tuple[str, ...], option: str = "target_modules"
                  ) -> list[tuple[int, nn.Module, str, nn.Linear]]:
    """(layer index, decoder layer, name inside the layer, module) for every targeted linear layer."""
    check_targets(model, targets, option)
    return [(i, layer, name, module)
            for i, layer in enumerate(decoder_layers(model))
            for name, module in layer.named_modules()
            if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in targets]


def swap(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, new)


def freeze(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def trainable_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def save_tensors(tensors: Mapping[str, torch.Tensor], directory: Path) -> int:
    """Write `tensors` as one safetensors file in `directory`; return the folder's bytes."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(directory / "trained.safetensors"))
    return directory_bytes(directory)


def merge_wrappers(model: nn.Module, wrapper: type[nn.Module]) -> None:
    """Replace every `wrapper` module by the plain layer its `merged()` folds it into."""
    for name, module in list(model.named_modules()):
        if isinstance(module, wrapper):
            swap(model, name, module.merged())


class ColumnBlockLinear(nn.Module):
    """A frozen linear layer whose selected input columns train as one dense block.

    y = x W_rest^T + scale * x[..., columns] B^T, where W_rest is W with the selected columns
    zeroed and B starts at W[:, columns] / scale: the output equals the base layer's, and
    `merged()` writes scale * B back into those columns, which is exactly the weight trained in
    place. Keeping the block apart from W means the optimizer holds state for the block only and
    backward keeps just the selected input activations for its gradient.
    """

    def __init__(self, base: nn.Linear, columns: torch.Tensor, scale: float = 1.0):
        super().__init__()
        self.base, self.scale = base, scale
        self.register_buffer("columns", columns.to(base.weight.device))
        with torch.no_grad():
            self.block = nn.Parameter(base.weight[:, self.columns] / scale)
            base.weight[:, self.columns] = 0
        base.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * F.linear(x.index_select(-1, self.columns), self.block)

    def merged(self) -> nn.Linear:
        with torch.no_grad():
            self.base.weight[:, self.columns] = (self.block * self.scale).to(self.base.weight.dtype)
        return self.base


class ColumnBlockMethod(Method):
    """Base of the methods that train column blocks of frozen linear layers (PaCA, S2FT)."""

    family = "selective"
    backend = "native"
    mergeable = True

    def merge(self, model: nn.Module) -> None:
        merge_wrappers(model, ColumnBlockLinear)

    def save(self, model: nn.Module, directory: Path) -> int:
        # The column indices go with the blocks: they say where each block belongs.
        columns = {f"{name}.columns": m.columns for name, m in model.named_modules() if isinstance(m, ColumnBlockLinear)}
        return save_tensors({**trainable_tensors(model), **columns}, directory)
