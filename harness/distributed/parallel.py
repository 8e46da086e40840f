"""How a training step spreads over the ranks of one run: each rank trains on its share of every
global micro-batch (harness/train/batching.py), and the step equals one process's step on the whole
global micro-batch.

* Strategy (`train.strategy`): `ddp` replicates the model and averages gradients
  (DistributedDataParallel). `fsdp` shards parameters, gradients and optimizer state over the ranks
  (FSDP2's `fully_shard`, harness/distributed/sharded.py) and averages gradients too. `auto` is
  FSDP for full fine-tuning and for a base too large for one device, else DDP. A world of one has
  no strategy (`none`).
* Loss: one process's loss is the mean over the micro-batch's target tokens. Split over ranks, each
  rank sums its own targets' losses and divides by the target count of the whole global
  micro-batch (summed over ranks first), so the ranks' shares add up to that same mean however
  unevenly targets fall; DDP and FSDP average gradients, so each rank backpropagates world x its share. A
  classification micro-batch has one target per item and equal items per rank: a rank's mean over
  its items, divided by the world size, is its share.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from harness.core.errors import HarnessError
from harness.core.metrics import Metric
from harness.distributed import sharded
from harness.distributed.world import World
from harness.train.encoding import IGNORE
from methods._core.base import Method

STRATEGIES = ("auto", "ddp", "fsdp")


def resolve_strategy(name: str, method: Method, world: World, too_large: str | None = None) -> str:
    """`train.strategy` as this run applies it; HarnessError for a method that cannot run over ranks.
    `auto`: FSDP for full fine-tuning (weights, gradients and optimizer state sharded: the one method
    whose state grows with the model) and for a base too large for one device (`too_large` says why,
    harness/models/size.py), DDP for the methods that train a small part of a base that fits."""
    if not world.distributed:
        return "none"
    if name == "none":
        raise HarnessError(f"train.strategy=none is one process, and this run has {world.size}: "
                           "use train.strategy=auto (or ddp)")
    if method.distributed_refusal:
        raise HarnessError(f"method {method.name} cannot train over {world.size} processes: "
                           f"{method.distributed_refusal}; launch it as one process (python -m harness ...)")
    sized = name == "auto" and method.family != "full" and too_large is not None
    if name == "auto":
        name = "fsdp" if method.family == "full" or too_large else "ddp"
    if name == "fsdp":
        if type(method).regularization is not Method.regularization:
            if sized:
                raise HarnessError(f"{too_large}, so train.strategy=auto shards it, and method {method.name} cannot be "
                                   "sharded (its regularization reads the weights outside the forward pass); use "
                                   "devices with more memory, or model.load_in_8bit=true")
            raise HarnessError(f"train.strategy=fsdp cannot shard method {method.name}: its regularization term reads "
                               "the trained weights outside the model's forward pass, where each rank holds only its "
                               "shard of them; use train.strategy=ddp (or auto)")
        return "fsdp"
    return "ddp"


def evaluation_world(world: World, strategy: str, shard: bool) -> World:
    """The ranks that evaluate a run: all of them under ddp with eval.shard_over_ranks (each holds the
    whole trained model and scores its share of the items), else rank 0 alone (under fsdp only rank 0
    gathers the whole model)."""
    return world if strategy == "ddp" and shard else World()


class Parallel:
    """The ranks' side of a training step; a world of one is the plain single-process step."""

    def __init__(self, world: World = World(), strategy: str = "none", from_main: bool = False):
        self.world, self.strategy = world, strategy
        self.from_main = from_main  # fsdp: only rank 0 holds the weights (sharded.rank0_loads_only)
        self.forward: nn.Module | None = None
        self.skeleton: sharded.Skeleton | None = None  # fsdp: rank 0's unsharded copy-to-be, for evaluation
        self.device = torch.device("cpu")

    def wrap(self, model: nn.Module, device: torch.device) -> None:
        """Prepare `model` (trainable parameters in place, on `device`) for this strategy: under
        fsdp, shard it in place (rank 0 first keeps its skeleton)."""
        self.device = device
        if self.strategy == "ddp":
            ids = [device.index] if device.type == "cuda" else None
            self.forward = DistributedDataParallel(model, device_ids=ids)
        elif self.strategy == "fsdp":
            self.skeleton = sharded.Skeleton(model) if self.world.main else None
            (sharded.shard_from_main if self.from_main else sharded.shard)(model, device, self.world)
            self.forward = model
        else:
            self.forward = model

    def unwrapped(self, model: nn.Module) -> nn.Module:
        """The model after training as rank 0 evaluates and saves it. Under fsdp every rank must call
        this: the ranks gather the whole model, and rank 0 gets it as a plain module (the other ranks
        keep `model`, sharded, and use it no more); otherwise `model` itself."""
        if self.strategy != "fsdp":
            return model
        plain = sharded.unshard_to_main(model, self.skeleton, self.device)
        self.skeleton = None
        return plain if plain is not None else model

    def refuse_sharded_best_in_checkpoints(self) -> None:
        """Under fsdp the state train.select_best keeps is each rank's own shards, which an in-run
        checkpoint (rank 0's) cannot carry: HarnessError before training starts."""
        if self.strategy == "fsdp":
            raise HarnessError("train.select_best with in-run checkpoints (train.checkpoint_every / "
                               "train.checkpoint_minutes) is not built for train.strategy=fsdp: drop one of the three")

    def counts(self, local: tuple[int, ...]) -> tuple[int, ...]:
        """Counts of the global micro-batch: `local` summed over the ranks in one collective."""
        if not self.world.distributed:
            return local
        total = torch.tensor(local, dtype=torch.float64)
        torch.distributed.all_reduce(total)
        return tuple(int(v) for v in total.tolist())

    def share(self, model: nn.Module, batch: dict[str, torch.Tensor], global_targets: int) -> torch.Tensor:
        """This rank's share of the global micro-batch's loss (the loss itself in a world of one)."""
        forward = self.forward or model
        if not self.world.distributed:
            return forward(**batch).loss
        if batch["labels"].dim() == 1:  # classification: one target per item, equal items per rank
            return forward(**batch).loss / self.world.size
        return forward(**batch, num_items_in_batch=torch.tensor(max(global_targets, 1))).loss

    def total(self, share: torch.Tensor) -> torch.Tensor:
        """The ranks' shares of a loss added up: the global micro-batch's loss, on every rank."""
        whole = share.clone()
        torch.distributed.all_reduce(whole)
        return whole

    @property
    def gradient_scale(self) -> float:
        """DDP and FSDP average gradients over ranks; backpropagating world x a share makes that
        average the gradient of the global loss."""
        return float(self.world.size) if self.strategy in ("ddp", "fsdp") else 1.0


def target_count(batch: dict[str, Any], prefixed: bool = False) -> int:
    """The targets a causal LM's loss averages over, or the items of a classification batch. The loss
    predicts label t from position t - 1, so a row's first label is no target, unless the model
    puts virtual tokens before the row (`prefixed`: prompt tuning, P-tuning), which then predict it."""
    labels = batch["labels"]
    if labels.dim() == 1:
        return int(labels.numel())
    return int((labels[..., 0 if prefixed else 1 :] != IGNORE).sum())


def labels_prefixed(model: nn.Module) -> bool:
    """Whether a PEFT prompt-learning method prepends virtual tokens to the inputs (and so to the
    labels); prefix tuning puts them in the key/value cache instead."""
    config = getattr(model, "active_peft_config", None)
    return bool(getattr(config, "is_prompt_learning", False)) and getattr(config, "peft_type", None) != "PREFIX_TUNING"


def rank_peak_metrics(peaks: list[int]) -> list[Metric]:
    """cost/peak_mem_rank/v1: each rank's peak memory, in a run over several processes (the runs
    row's peak_mem_bytes is their maximum)."""
    if len(peaks) < 2:
        return []
    return [Metric("cost", f"peak_mem_bytes_rank{rank}", float(peak), None, 1, False, "cost/peak_mem_rank/v1")
            for rank, peak in enumerate(peaks)]
