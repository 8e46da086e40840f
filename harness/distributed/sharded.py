"""`train.strategy=fsdp`: one run's model sharded over the ranks with torch's FSDP2 (`fully_shard`).
Only glue lives here; the sharding, the collectives and the state dicts are torch's.

* What is sharded: each transformer block (the classes the transformers model names in
  `_no_split_modules`, e.g. LlamaDecoderLayer) is one FSDP unit, and the root (the model as the
  method returns it: embeddings, final norm, head, a PEFT wrapper's own parameters such as prompt
  embeddings) is the last. FSDP2 shards parameter by parameter (dim 0 over the ranks), so frozen
  base weights and trainable adapter weights live side by side in one unit; frozen ones get no
  gradient and no optimizer state. A block's weights are gathered for its forward and backward
  and freed again after.
* Gradients: FSDP2 reduce-scatters them as an average over the ranks, as DDP all-reduces them, so
  the loss shares of harness/distributed/parallel.py apply unchanged.
* State: in-run checkpoints and the model evaluated after training hold full (unsharded) tensors,
  gathered to rank 0 on the CPU (`full_trainable_state`, `full_optimizer_state`) and scattered back
  into the shards of every rank on resume (`load_full_trainable_state`, `load_full_optimizer_state`).
* Loading: only rank 0 reads the base weights (`rank0_loads_only`): the other ranks build the
  model from its config on the meta device and apply the method alike; after sharding they
  allocate their shards and rank 0 broadcasts its whole state into them (`shard_from_main`), so a
  13B base is held whole by one process, not by every rank. Methods with a calibration pass
  (CorDA, LoRA-GA) run it on every rank's whole model, so there every rank loads it.
* Evaluation runs on rank 0 alone, on a plain model: before sharding rank 0 keeps a skeleton of the
  model, its parameters on the meta device (`Skeleton`); after training every rank takes part in
  gathering the full state, which rank 0 loads into the skeleton. The sharded model is not used
  after that, so evaluation issues no collective.
"""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard

from harness.core.errors import RunFailed
from harness.distributed.world import World
from harness.models.spec import CAUSAL, ModelSpec

_GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
_GATHER_ALL = StateDictOptions(full_state_dict=True, cpu_offload=True)
_SCATTER = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=False)


def blocks(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks of the transformers model inside `model`: modules of the classes it
    names in `_no_split_modules`, the outermost ones where they nest; none when it names none."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    found = [m for m in model.modules() if type(m).__name__ in names]
    return [m for m in found if not any(m is not o and _contains(o, m) for o in found)]


def _contains(outer: nn.Module, inner: nn.Module) -> bool:
    return any(m is inner for m in outer.modules())


def shard(model: nn.Module, device: torch.device, world: World) -> None:
    """Shard `model` in place over the ranks: each block, then the root."""
    if any(not p.is_floating_point() for p in model.parameters()):
        raise RunFailed("train.strategy=fsdp shards floating-point weights only, and this model has quantized ones "
                        "(model.load_in_8bit): use train.strategy=ddp, or drop the quantization")
    mesh = init_device_mesh(device.type, (world.size,))
    for block in blocks(model):
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)


def rank0_loads_only(strategy: str, model: ModelSpec, needs_calibration: bool) -> bool:
    """Whether only rank 0 reads the base weights: under fsdp, for a causal LM in floating point whose
    method needs no calibration pass (its other ranks build the model on the meta device, and
    `shard_from_main` gives them rank 0's weights once sharded)."""
    return strategy == "fsdp" and model.model_kind == CAUSAL and not model.load_in_8bit and not needs_calibration


def shard_from_main(model: nn.Module, device: torch.device, world: World) -> None:
    """Shard `model` as `shard` does, where only rank 0 holds weights (the others built it on the meta
    device, the method applied alike): the others allocate their shards, rank 0 broadcasts its whole
    state into every rank's shards, and its buffers whole (those outside the state dict, such as
    rotary frequencies, included). Every rank then holds exactly what `shard` would have given it."""
    full = _unaliased_state(model) if world.main else {}  # rank 0's whole tensors, before sharding replaces them
    shard(model, device, world)
    if not world.main:
        model.to_empty(device=device)
    set_model_state_dict(model, full, options=_SCATTER)
    del full
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def _unaliased_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict, each tensor under one name only: a module registered twice (PEFT's prompt
    learning keeps the input embeddings as `word_embeddings` too) would be loaded twice, once
    into a tensor already sharded."""
    state, seen = {}, set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) not in seen:
            seen.add(id(tensor))
            state[name] = tensor.detach()
    return state


def is_sharded(model: nn.Module) -> bool:
    return isinstance(model, FSDPModule)


def full_trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters, whole, on rank 0's CPU (empty on the other ranks); every rank calls it."""
    trainable = trainable_shapes(model)  # torch keeps the frozen names tied to a trainable weight (the LM head)
    return {name: t for name, t in get_model_state_dict(model, options=_GATHER).items() if name in trainable}


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer's state keyed by parameter name, whole, on rank 0's CPU (empty elsewhere); every rank calls it."""
    return get_optimizer_state_dict(model, optimizer, options=_GATHER)


def load_full_trainable_state(model: nn.Module, state: dict[str, torch.Tensor], world: World) -> None:
    """Rank 0's whole trainable parameters (`state`; other ranks' is ignored) into every rank's shards."""
    set_model_state_dict(model, state if world.main else {}, options=_SCATTER)


def load_full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict, world: World) -> None:
    set_optimizer_state_dict(model, optimizer, state if world.main else {}, options=_SCATTER)


def trainable_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """The whole shape of every trainable parameter, by the name its full state dict gives it
    (tied weights under each of their names)."""
    return {name: tuple(p.shape) for name, p in model.named_parameters(remove_duplicate=False) if p.requires_grad}


class Skeleton:
    """A copy of the model without its parameters' memory (they sit on the meta device), made on
    rank 0 before sharding; `fill` gives it the whole trained state gathered from the shards.
    Buffers are copied whole: the ones outside the state dict (rotary frequencies) are not gathered."""

    def __init__(self, model: nn.Module):
        memo: dict[int, object] = {}
        for param in model.parameters():
            memo[id(param)] = nn.Parameter(torch.empty_like(param, device="meta"), requires_grad=param.requires_grad)
        self.model = copy.deepcopy(model, memo)
        names: dict[int, list[str]] = {}
        for name, param in self.model.named_parameters(remove_duplicate=False):
            names.setdefault(id(param), []).append(name)
        self.tied = [group for group in names.values() if len(group) > 1]  # e.g. embeddings and LM head

    def fill(self, state: dict[str, torch.Tensor], device: torch.device) -> nn.Module:
        """The skeleton holding `state` (the full state dict of the sharded model), on `device`."""
        self.model.load_state_dict(state, assign=True)  # one new parameter per name: tie them again
        for first, *others in self.tied:
            param = self.model.get_parameter(first)
            for name in others:
                owner, _, leaf = name.rpartition(".")
                setattr(self.model.get_submodule(owner), leaf, param)
        return self.model.to(device)


def unshard_to_main(model: nn.Module, skeleton: Skeleton | None, device: torch.device) -> nn.Module | None:
    """Every rank: gather the whole model; rank 0 (the one holding `skeleton`) gets it as a plain
    module on `device`, the others None."""
    state = get_model_state_dict(model, options=_GATHER_ALL)
    return skeleton.fill(state, device) if skeleton is not None else None
