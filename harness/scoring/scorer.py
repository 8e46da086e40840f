"""The model work of an evaluation, one entry point per kind (generation, choice log-likelihoods,
answer cross-entropy), on one model, and spread over the ranks of a run when its `world` has
several: each rank scores its share of the items (every size-th, from its rank) and every rank gets
all results back in item order, so the task computes its metrics from the same lists as one process
would. Items are independent of each other, so a share's results are the whole run's results for
those items; only which items share a batch changes (see docs/distributed.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from harness.distributed.world import World
from harness.scoring.cross_entropy import target_cross_entropy
from harness.scoring.generation import generate_answers
from harness.scoring.loglik import ChoiceScore, choice_log_likelihoods


@dataclass
class Scorer:
    model: nn.Module
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    max_len: int  # the run's train.max_seq_len: the longest sequence a cross-entropy scores
    world: World = field(default_factory=World)  # the ranks that share the items; one: this process alone

    def generate(self, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str], batch_size: int,
                 desc: str = "generate", num_beams: int = 1) -> list[str]:
        """Each prompt's continuation (harness/scoring/generation.py), in prompt order."""
        return self.world.across(list(prompts), lambda mine: generate_answers(
            self.model, self.tokenizer, mine, max_new_tokens, list(stop), batch_size, self.device, desc, num_beams))

    def log_likelihoods(self, contexts: Sequence[str], choices: Sequence[Sequence[str]], batch_size: int,
                        desc: str = "loglik", max_len: int | None = None) -> list[list[ChoiceScore]]:
        """Per context, each choice's log-likelihood as its continuation (harness/scoring/loglik.py)."""
        return self.world.across(list(zip(contexts, choices)), lambda mine: choice_log_likelihoods(
            self.model, self.tokenizer, [c for c, _ in mine], [x for _, x in mine], batch_size, self.device,
            max_len=max_len, desc=desc))

    def cross_entropy(self, pairs: Sequence[tuple[str, str]], batch_size: int) -> list[tuple[float, int]]:
        """Per (prompt, target) pair, the target's summed negative log-likelihood and its token count
        (harness/scoring/cross_entropy.py)."""
        return self.world.across(list(pairs), lambda mine: target_cross_entropy(
            self.model, self.tokenizer, mine, batch_size, self.max_len, self.device))
