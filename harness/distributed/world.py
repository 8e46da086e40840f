"""Which process of a run this is. torchrun and `accelerate launch` both set RANK, WORLD_SIZE and
LOCAL_RANK (and MASTER_ADDR/MASTER_PORT for the rendezvous); a plain `python -m harness` sets none
and is a world of one, which never touches torch.distributed."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.distributed as dist

from harness.core.errors import RunFailed

# Ranks other than 0 wait at a barrier while rank 0 evaluates; evaluation can take hours.
COLLECTIVE_TIMEOUT = dt.timedelta(hours=6)


def export_slurm_world() -> None:
    """Under Slurm with several tasks per job (+launcher=slurm_multinode) each task is one process
    of the run: set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT from Slurm's
    environment (submitit's helper), as torchrun would. Nothing changes outside such a job, or
    when a launcher already set them."""
    if "RANK" in os.environ or int(os.environ.get("SLURM_NTASKS", "1")) < 2 or "SLURM_JOB_ID" not in os.environ:
        return
    from submitit.helpers import TorchDistributedEnvironment

    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "World":
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that evaluates and writes rows, adapters, checkpoints and wandb."""
        return self.rank == 0

    def join(self, device: torch.device) -> torch.device:
        """Join the process group (gloo on CPU, NCCL on CUDA) once; returns this rank's device."""
        if not self.distributed:
            return device
        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT)
        return device

    @contextlib.contextmanager
    def sigterm_fails_the_run(self) -> Iterator[None]:
        """When one process of a run dies, its launcher stops the others with SIGTERM: inside this
        block that becomes an exception, so this rank's run ends as failed instead of vanishing.
        After the block SIGTERM is ignored: rank 0 is writing the failed row, which a late SIGTERM
        (after a collective already failed on the dead rank) must not cut short."""
        if not self.distributed:
            yield
            return
        signal.signal(signal.SIGTERM, _stopped)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def sum(self, value: float) -> float:
        """`value` summed over the ranks (float64 on the collective's device)."""
        if not self.distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=_collective_device())
        dist.all_reduce(tensor)
        return float(tensor.item())

    def max(self, value: float) -> float:
        if not self.distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=_collective_device())
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor.item())

    def gather(self, value: object) -> list:
        """Every rank's `value`, in rank order (on every rank)."""
        if not self.distributed:
            return [value]
        found: list = [None] * self.size
        dist.all_gather_object(found, value)
        return found

    def across(self, items: list, fn: Callable[[list], list]) -> list:
        """`fn` (a list of items to a list of results, one each) spread over the ranks: each rank runs
        it on its share (every size-th item, from its rank), and every rank gets all results back in
        item order. A world of one runs `fn(items)`."""
        if not self.distributed:
            return fn(items)
        parts = self.gather(fn(items[self.rank :: self.size]))
        return [parts[i % self.size][i // self.size] for i in range(len(items))]

    def from_main(self, value: object) -> object:
        """Rank 0's `value`, on every rank: the ranks take decisions (stop, skip) together."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def _stopped(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one exception; a second SIGTERM must not cut its handling
    raise RunFailed("stopped by the launcher (SIGTERM): another process of this run ended; its log says why")


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
