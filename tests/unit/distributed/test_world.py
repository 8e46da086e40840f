"""Who is who in a run over several processes (harness/distributed/): a plain launch is a world of
one that never touches torch.distributed; a task of a multi-task Slurm job (mocked: no cluster
here) gets the torchrun variables from Slurm's; the target count a rank's loss share divides by
is the one the model's loss averages over."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from harness.core.errors import RunFailed
from harness.distributed.parallel import Parallel, target_count
from harness.distributed.world import World, export_slurm_world
from harness.train.encoding import IGNORE

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE")


@pytest.fixture
def clean_env(monkeypatch):
    for name in TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch
    for name in TORCHRUN_VARIABLES:  # export_slurm_world writes os.environ directly
        os.environ.pop(name, None)


def test_a_plain_launch_is_a_world_of_one_that_needs_no_process_group(clean_env):
    world = World.from_env()
    assert (world.rank, world.size, world.distributed, world.main) == (0, 1, False, True)
    assert world.join(torch.device("cpu")) == torch.device("cpu") and not torch.distributed.is_initialized()
    assert world.sum(2.5) == 2.5 and world.gather("x") == ["x"] and world.from_main(3) == 3


def test_a_task_of_a_multi_task_slurm_job_becomes_a_rank(clean_env):
    for name, value in {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "16", "SLURM_PROCID": "9", "SLURM_LOCALID": "1",
                        "SLURM_NODEID": "1", "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "gpu[07-08]"}.items():
        clean_env.setenv(name, value)
    export_slurm_world()
    world = World.from_env()
    assert (world.rank, world.size, world.local_rank) == (9, 16, 1)
    assert os.environ["MASTER_ADDR"] == "gpu07" and 20000 <= int(os.environ["MASTER_PORT"]) <= 60000


def test_outside_a_multi_task_slurm_job_nothing_is_set(clean_env):
    clean_env.setenv("SLURM_JOB_ID", "4242")
    clean_env.setenv("SLURM_NTASKS", "1")  # an array task of the one-process launcher (+launcher=slurm)
    export_slurm_world()
    assert "RANK" not in os.environ and World.from_env().size == 1


def test_target_count_is_what_the_loss_averages_over():
    labels = torch.tensor([[5, IGNORE, 7, 8], [IGNORE, IGNORE, 3, IGNORE]])
    batch = {"labels": labels}
    assert target_count(batch) == 3  # label 0 of a row is predicted by nothing
    assert target_count(batch, prefixed=True) == 4  # virtual tokens before the row predict it
    assert target_count({"labels": torch.tensor([0, 1, 1])}) == 3  # classification: one per item


def test_one_process_shares_the_whole_loss():
    parallel = Parallel()
    assert parallel.gradient_scale == 1.0 and parallel.counts((3, 2, 8, 5)) == (3, 2, 8, 5)


def test_sigterm_fails_the_run_inside_the_block_and_cannot_cut_the_failed_row_short():
    """The launcher's SIGTERM may come while training (an exception: the run fails) or after a
    collective already failed on the dead rank, while rank 0 writes the failed row (ignored)."""
    before = signal.getsignal(signal.SIGTERM)
    world = World(rank=0, size=2)
    try:
        with pytest.raises(RunFailed, match=r"^stopped by the launcher \(SIGTERM\)"):
            with world.sigterm_fails_the_run():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler raises at the next bytecode
        try:  # a collective failed first, then the launcher's SIGTERM came while rank 0 writes the row
            with world.sigterm_fails_the_run():
                raise ValueError("connection closed by peer")
        except ValueError:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
            written = True
        assert written
    finally:
        signal.signal(signal.SIGTERM, before)
