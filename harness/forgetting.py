"""Forgetting probes: how much general capability tuning destroyed. Measured on the same run,
before the method touches the model (the base, which is also "adapters disabled") and after.

* `general_text` (v1): mean per-token cross-entropy on WikiText-2 test text, chunked into
  `n_chunks` x `chunk_tokens` from the start of the file; reports before, after and the delta
  (after - before; > 0 means the tuned model predicts general text worse). The base value is
  cached per model x probe config x text, so a sweep computes it once.
* `kl_drift` (v1): the base model greedily continues fixed prompts; the probe reports the mean
  per-token KL(base || tuned) on those continuations. Needs no data; the fallback when no general
  text source is available.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from harness.data_sources import SourceUnavailable, first_available, hub_loader
from harness.errors import HarnessError
from harness.hashing import hash_object
from harness.metrics import Metric, mean_and_stderr
from harness.scoring import chunk_cross_entropy, continuation_log_probs

KL_PROMPTS = (
    "The history of the city begins",
    "In mathematics, a prime number is",
    "The recipe calls for",
    "Scientists have discovered that",
    "The best way to learn a new language is",
    "On the first day of school,",
    "The committee announced on Monday that",
    "Water boils at",
)


def _general_text(cfg: Mapping[str, Any], data_cfg: Mapping[str, Any]) -> tuple[str, str]:
    def local() -> str:
        if not data_cfg.get("dir"):
            raise SourceUnavailable("data.dir is not set (set HARNESS_DATA_DIR or data.dir=PATH)")
        path = Path(data_cfg["dir"]).expanduser() / cfg["local_file"]
        if not path.is_file():
            raise SourceUnavailable(f"{path} does not exist")
        return path.read_text(encoding="utf-8")

    hub = cfg["hub"]
    loaders = {"hub": lambda: "".join(r["text"] for r in hub_loader(hub["path"], hub["name"], hub["split"])()), "local": local}
    return first_available("the general-text forgetting probe", loaders, list(data_cfg["order"]))


class GeneralTextProbe:
    name = "general_text"

    def __init__(self, cfg: Mapping[str, Any], text: str, source: str, cache_root: Path):
        self.cfg, self.text_source, self.cache_root = cfg, source, cache_root
        self.text_sha = hash_object(text, 64)
        self.text = text[: cfg["max_chars"]]
        self.before: list[float] | None = None

    def _chunks(self, tok: PreTrainedTokenizerBase) -> torch.Tensor:
        n, length = self.cfg["n_chunks"], self.cfg["chunk_tokens"]
        ids = tok(self.text, add_special_tokens=False)["input_ids"]
        if len(ids) < n * length:
            raise HarnessError(f"forgetting.general_text needs {n * length} tokens, the text has {len(ids)}; lower n_chunks")
        return torch.tensor(ids[: n * length]).view(n, length)

    def baseline(self, model: nn.Module, tok: PreTrainedTokenizerBase, model_identity: dict, device: torch.device) -> None:
        key = hash_object({"model": model_identity, "probe": dict(self.cfg), "text": self.text_sha, "v": "v1"})
        cache = self.cache_root / f"{key}.json"
        if cache.is_file():
            self.before = json.loads(cache.read_text())["per_chunk_ce"]
            return
        self.before = chunk_cross_entropy(model, self._chunks(tok), self.cfg["batch_size"], device)
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"per_chunk_ce": self.before, "model": model_identity}, f)
        os.replace(tmp, cache)

    def measure(self, model: nn.Module, tok: PreTrainedTokenizerBase, device: torch.device) -> list[Metric]:
        assert self.before is not None, "baseline() must run before the method is applied"
        after = chunk_cross_entropy(model, self._chunks(tok), self.cfg["batch_size"], device)
        task, n = "forgetting/general_text", len(after)
        before_mean, before_se = mean_and_stderr(self.before)
        after_mean, after_se = mean_and_stderr(after)
        delta_mean, delta_se = mean_and_stderr([a - b for a, b in zip(after, self.before)])  # paired by chunk
        return [
            Metric(task, "general_ce_before", before_mean, before_se, n, False, "forgetting/general_ce/v1"),
            Metric(task, "general_ce_after", after_mean, after_se, n, False, "forgetting/general_ce/v1"),
            Metric(task, "forgetting_ce_delta", delta_mean, delta_se, n, False, "forgetting/ce_delta/v1"),
        ]

    def identity(self) -> dict:
        return {"probe": self.name, "source": self.text_source, "text_sha256": self.text_sha}


class KLDriftProbe:
    name = "kl_drift"

    def __init__(self, cfg: Mapping[str, Any]):
        self.cfg = cfg
        self.sequences: list[torch.Tensor] = []
        self.base_log_probs: list[torch.Tensor] = []

    @torch.no_grad()
    def baseline(self, model: nn.Module, tok: PreTrainedTokenizerBase, model_identity: dict, device: torch.device) -> None:
        model.eval()
        n_new = self.cfg["new_tokens"]
        tok.padding_side = "left"
        try:
            enc = tok(list(KL_PROMPTS[: self.cfg["n_prompts"]]), return_tensors="pt", padding=True).to(device)
        finally:
            tok.padding_side = "right"
        # min_new_tokens: every prompt gets exactly n_new continuation tokens.
        gen = model.generate(**enc, do_sample=False, max_new_tokens=n_new, min_new_tokens=n_new,
                             pad_token_id=tok.pad_token_id).cpu()
        width = enc["input_ids"].shape[1]
        prompt_masks = enc["attention_mask"].bool().cpu()
        self.sequences = [torch.cat([g[:width][m], g[width:]]) for g, m in zip(gen, prompt_masks)]
        self.base_log_probs = [continuation_log_probs(model, s, n_new, device) for s in self.sequences]

    def measure(self, model: nn.Module, tok: PreTrainedTokenizerBase, device: torch.device) -> list[Metric]:
        assert self.sequences, "baseline() must run before the method is applied"
        n_new = self.cfg["new_tokens"]
        kl = []
        for seq, base in zip(self.sequences, self.base_log_probs):
            tuned = continuation_log_probs(model, seq, n_new, device)
            kl.append(float((base.exp() * (base - tuned)).sum(-1).mean()))  # mean over positions
        mean, se = mean_and_stderr(kl)
        return [Metric("forgetting/kl_drift", "forgetting_kl", mean, se, len(kl), False, "forgetting/kl_drift/v1")]

    def identity(self) -> dict:
        return {"probe": self.name, "prompts_sha256": hash_object(KL_PROMPTS[: self.cfg["n_prompts"]], 64)}


def build_probe(cfg: Mapping[str, Any], data_cfg: Mapping[str, Any], cache_root: Path):
    """The configured probe; `general_text` falls back to `kl_drift` when no text source works."""
    kind = cfg["probe"]
    if kind == "none":
        return None
    if kind == "kl_drift":
        return KLDriftProbe(cfg["kl_drift"])
    if kind != "general_text":
        raise HarnessError(f"forgetting.probe={kind!r} is unknown; valid: general_text, kl_drift, none")
    try:
        source, text = _general_text(cfg["general_text"], data_cfg)
    except HarnessError as miss:
        if not cfg.get("fallback_to_kl", True):
            raise
        print(f"[harness] forgetting: {miss}; falling back to kl_drift", flush=True)
        return KLDriftProbe(cfg["kl_drift"])
    return GeneralTextProbe(cfg["general_text"], text, source, cache_root)
