"""The `kl_drift` probe (v1): the base model greedily continues fixed prompts; the probe reports the
mean per-token KL(base || tuned) on those continuations. Needs no data; also the fallback of the
`general_text` probe when no text source is available."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from harness.config.run_config import KLDriftConfig
from harness.core.metrics import Metric, mean_and_stderr
from harness.scoring.cross_entropy import continuation_log_probs

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


class KLDriftProbe:
    name = "kl_drift"

    def __init__(self, cfg: KLDriftConfig):
        self.cfg = cfg
        self.sequences: list[torch.Tensor] = []
        self.base_log_probs: list[torch.Tensor] = []

    @torch.no_grad()
    def baseline(self, model: nn.Module, tok: PreTrainedTokenizerBase, model_identity: dict, device: torch.device) -> None:
        model.eval()
        n_new = self.cfg.new_tokens
        tok.padding_side = "left"
        try:
            enc = tok(list(KL_PROMPTS[: self.cfg.n_prompts]), return_tensors="pt", padding=True).to(device)
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
        n_new = self.cfg.new_tokens
        kl = []
        for seq, base in zip(self.sequences, self.base_log_probs):
            tuned = continuation_log_probs(model, seq, n_new, device)
            kl.append(float((base.exp() * (base - tuned)).sum(-1).mean()))  # mean over positions
        mean, se = mean_and_stderr(kl)
        return [Metric("forgetting/kl_drift", "forgetting_kl", mean, se, len(kl), False, "forgetting/kl_drift/v1")]
