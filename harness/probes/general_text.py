"""The `general_text` probe (v1): mean per-token cross-entropy on general text (WikiText-2 test,
harness/data/general_text.py), chunked into `n_chunks` x `chunk_tokens` from the start; before, after
and the delta (after - before; > 0 means the tuned model predicts general text worse)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from harness.config.run_config import GeneralTextConfig
from harness.core.cache import cached_json
from harness.core.errors import HarnessError
from harness.core.hashing import hash_object
from harness.core.metrics import Metric, mean_and_stderr
from harness.scoring.cross_entropy import chunk_cross_entropy


class GeneralTextProbe:
    name = "general_text"

    def __init__(self, cfg: GeneralTextConfig, text: str, source: str, cache_root: Path):
        self.cfg, self.text_source, self.cache_root = cfg, source, cache_root
        self.text_sha = hash_object(text, 64)
        self.text = text[: cfg.max_chars]
        self.before: list[float] | None = None

    def _chunks(self, tok: PreTrainedTokenizerBase) -> torch.Tensor:
        n, length = self.cfg.n_chunks, self.cfg.chunk_tokens
        ids = tok(self.text, add_special_tokens=False)["input_ids"]
        if len(ids) < n * length:
            raise HarnessError(f"forgetting.general_text needs {n * length} tokens, the text has {len(ids)}; lower n_chunks")
        return torch.tensor(ids[: n * length]).view(n, length)

    def baseline(self, model: nn.Module, tok: PreTrainedTokenizerBase, model_identity: dict, device: torch.device) -> None:
        key = {"model": model_identity, "probe": dataclasses.asdict(self.cfg), "text": self.text_sha, "v": "v1"}
        value, _ = cached_json(self.cache_root, key, lambda: {
            "per_chunk_ce": chunk_cross_entropy(model, self._chunks(tok), self.cfg.batch_size, device),
            "model": model_identity,
        })
        self.before = value["per_chunk_ce"]

    def measure(self, model: nn.Module, tok: PreTrainedTokenizerBase, device: torch.device) -> list[Metric]:
        assert self.before is not None, "baseline() must run before the method is applied"
        after = chunk_cross_entropy(model, self._chunks(tok), self.cfg.batch_size, device)
        task, n = "forgetting/general_text", len(after)
        before_mean, before_se = mean_and_stderr(self.before)
        after_mean, after_se = mean_and_stderr(after)
        delta_mean, delta_se = mean_and_stderr([a - b for a, b in zip(after, self.before)])  # paired by chunk
        return [
            Metric(task, "general_ce_before", before_mean, before_se, n, False, "forgetting/general_ce/v1"),
            Metric(task, "general_ce_after", after_mean, after_se, n, False, "forgetting/general_ce/v1"),
            Metric(task, "forgetting_ce_delta", delta_mean, delta_se, n, False, "forgetting/ce_delta/v1"),
        ]
