"""Run by torchrun from tests/e2e/test_distributed.py: one method of each family trains a few steps
over the ranks (DDP, each rank its share of every global micro-batch of real GSM8K items); rank 0
writes each method's loss curve and whether every rank ended with the same trainable state.

    torchrun --nproc_per_node 2 tests/e2e/scripts/ddp_families.py OUT.json DATA_DIR lora ia3 ...
"""

from __future__ import annotations

import json
import sys

import torch

from harness.distributed.parallel import Parallel
from harness.distributed.world import World
from tests.e2e.distributed_case import STEPS, train_case

world = World.from_env()
world.join(torch.device("cpu"))
out, data_dir, names = sys.argv[1], sys.argv[2], sys.argv[3:]
found = {}
for name in names:
    losses, state = train_case(name, data_dir, Parallel(world, "ddp"), world)
    fingerprints = world.gather([float(v.double().sum()) for v in state.values()])
    found[name] = {"losses": losses, "same_on_every_rank": all(f == fingerprints[0] for f in fingerprints),
                   "steps": STEPS}
if world.main:
    with open(out, "w") as f:
        json.dump(found, f)
