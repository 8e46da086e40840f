"""Full fine-tuning: every parameter of the base model trains. The reference point that every
PEFT method is compared with. Implemented here (no wrapping needed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from harness.models.loading import CAUSAL, ENCODER
from methods._core.base import BuildContext, Method, MethodConfig
from methods._core.registry import register


@dataclass
class FullConfig(MethodConfig):
    lr: float = 2e-5  # common full-FT lr for 0.1B-7B causal LMs (e.g. PiSSA paper's full-FT baseline)


@register
class FullFineTuning(Method):
    name = "full"
    config_class = FullConfig
    family = "full"
    paper = "Full fine-tuning (baseline)"
    backend = "native"
    mergeable = True  # trivially: there is nothing to merge
    model_kinds = (CAUSAL, ENCODER)  # on an encoder the new head trains with everything else

    def apply(self, model: nn.Module, context: BuildContext) -> nn.Module:
        for p in model.parameters():
            p.requires_grad_(True)
        return model

    def save(self, model: nn.Module, directory: Path) -> int:
        # Writing every full-FT checkpoint would fill the disk in a sweep; the bytes a safetensors
        # checkpoint of the trained weights takes are known without writing it.
        seen, total = set(), 0
        for p in model.parameters():  # parameters() already skips tied duplicates
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel() * p.element_size()
        return total
