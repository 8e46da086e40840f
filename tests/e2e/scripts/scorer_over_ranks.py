"""Run by torchrun from tests/e2e/test_distributed.py: the evaluation scorer over the ranks
(harness/scoring/scorer.py). Each rank records which items it was handed; rank 0 saves those shares
and the gathered results of generation, choice log-likelihoods and cross-entropy on tiny-random-llama.

    torchrun --nproc_per_node 2 tests/e2e/scripts/scorer_over_ranks.py OUT.pt
"""

from __future__ import annotations

import sys

import torch

from harness.distributed.world import World
from tests.e2e.distributed_case import scorer_case

world = World.from_env()
world.join(torch.device("cpu"))
handed: list[int] = []
tens = world.across(list(range(7)), lambda mine: (handed.extend(mine), [10 * x for x in mine])[1])
found = {"shares": world.gather(handed), "tens": tens, **scorer_case(world)}
if world.main:
    torch.save(found, sys.argv[1])
