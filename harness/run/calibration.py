"""What a calibrated method (CorDA, LoRA-GA) reads before training, as its `calibration_data` asks:
the task's training batches, or general text (WikiText-2 from the forgetting probe's sources), cut
into sequences of the training length. CorDA's knowledge-preserved mode is meant to see the
knowledge to keep, which general text stands for when no QA set of its own is given."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from harness.config.run_config import GeneralTextConfig
from harness.core.hashing import hash_object
from harness.data.general_text import general_text


@dataclass
class GeneralText:
    """Calibration text and its identity (source and content hash), recorded in the run's data_json."""

    text: str
    identity: dict[str, Any]


def load_general_text(text_cfg: GeneralTextConfig, data_cfg: Mapping[str, Any]) -> GeneralText:
    """The general text, cut to `max_chars`; DataMissing (one line, the sources tried) when none works."""
    source, text = general_text(text_cfg.hub, text_cfg.local_file, data_cfg,
                                "calibration on general text (method.calibration_data)")
    text = text[: text_cfg.max_chars]
    return GeneralText(text, {"data": "general_text", "source": source, "chars": len(text),
                              "content_hash": hash_object(text, 16)})


def text_batches(tok: PreTrainedTokenizerBase, text: str, seq_len: int, batch_size: int,
                 seed: int) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of `seq_len`-token windows of `text` in a seeded order, shaped like training batches
    (loss on every token). Endless: the windows repeat in a new order once all were used."""
    ids = torch.tensor(tok(text, add_special_tokens=False)["input_ids"])
    windows = ids[: len(ids) // seq_len * seq_len].view(-1, seq_len)
    if len(windows) == 0:
        raise ValueError(f"calibration text has {len(ids)} tokens, fewer than one {seq_len}-token window")
    rng = random.Random(seed)
    while True:
        order = list(range(len(windows)))
        rng.shuffle(order)
        for start in range(0, len(order) - batch_size + 1, batch_size) or [0]:
            batch = windows[order[start : start + batch_size]]
            yield {"input_ids": batch, "attention_mask": torch.ones_like(batch), "labels": batch.clone()}
