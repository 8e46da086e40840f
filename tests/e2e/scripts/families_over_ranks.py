"""Run by torchrun from tests/e2e/test_distributed.py: one method of each family trains a few steps
over the ranks (each rank its share of every global micro-batch of real GSM8K items), replicated
(ddp) or sharded (fsdp); rank 0 saves each method's loss curve, its trainable state after training
(under fsdp: gathered from the shards into rank 0's unsharded model) and, under ddp, whether every
rank ended with the same trainable state. Under fsdp only rank 0 loads the weights (the others build
the model on the meta device and get rank 0's state once sharded), as runs do.

    torchrun --nproc_per_node 2 tests/e2e/scripts/families_over_ranks.py OUT.pt DATA_DIR ddp|fsdp lora ia3 ...
"""

from __future__ import annotations

import sys

import torch

from harness.distributed.parallel import Parallel
from harness.distributed.world import World
from tests.e2e.distributed_case import META_STARTS, STEPS, train_case

world = World.from_env()
world.join(torch.device("cpu"))
out, data_dir, strategy, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
found = {}
for name in names:
    losses, state = train_case(name, data_dir, Parallel(world, strategy, from_main=strategy == "fsdp"), world)
    same = True
    if strategy == "ddp":  # under fsdp the other ranks hold shards only
        fingerprints = world.gather([float(v.double().sum()) for v in state.values()])
        same = all(f == fingerprints[0] for f in fingerprints)
    found[name] = {"losses": losses, "state": state, "same_on_every_rank": same, "steps": STEPS,
                   "meta_start_by_rank": world.gather(META_STARTS[-1])}
if world.main:
    torch.save(found, out)
