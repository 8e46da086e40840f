"""The configured probes as one: which ones `forgetting.probes` names (or the older single
`forgetting.probe`: `ForgettingConfig.probe_names`), built with their fallbacks, run together with
the target gain."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from harness.config.run_config import ForgettingConfig
from harness.core.errors import HarnessError
from harness.core.metrics import Metric
from harness.core.notices import notice_once
from harness.data.general_text import general_text
from harness.data.sources import DataMissing
from harness.probes.base import Probe
from harness.probes.general_suite import GeneralSuiteProbe
from harness.probes.general_text import GeneralTextProbe
from harness.probes.kl_drift import KLDriftProbe
from harness.probes.target_gain import TargetGain
from harness.tasks.base import Task, TaskData

class Probes:
    """Every configured probe plus the target gain: `baseline` before the method is applied,
    `measure` after training (with the run's task metrics and samples)."""

    def __init__(self, probes: list[Probe], gain: TargetGain | None):
        self.probes, self.gain = probes, gain

    def baseline(self, model: nn.Module, tok: PreTrainedTokenizerBase, model_identity: dict, device: torch.device) -> None:
        for probe in [*self.probes, *([self.gain] if self.gain else [])]:
            probe.baseline(model, tok, model_identity, device)

    def measure(self, model: nn.Module, tok: PreTrainedTokenizerBase, device: torch.device,
                task_metrics: list[Metric], samples: list[dict]) -> list[Metric]:
        rows = self.gain.measure(task_metrics, samples) if self.gain else []
        for probe in self.probes:
            rows += probe.measure(model, tok, device)
        return rows


def build_probes(cfg: ForgettingConfig, data_cfg: Mapping[str, Any], cache_root: Path, conf_dir: Path,
                 task: Task, data: TaskData, max_len: int) -> Probes:
    """The configured probes; `general_text` falls back to `kl_drift` when no text source works."""
    probes: list[Probe] = []
    for name in cfg.probe_names():
        if name == "general_suite":
            try:
                probes.append(GeneralSuiteProbe(cfg.general_suite, data_cfg, cache_root, conf_dir, max_len))
            except DataMissing as miss:  # like general_text: a probe's data is optional unless required
                if cfg.general_suite.required:
                    raise
                notice_once(f"[harness] forgetting: {miss}; general_suite skipped "
                            "(forgetting.general_suite.required=true makes this an error)")
        elif name == "kl_drift":
            probes.append(KLDriftProbe(cfg.kl_drift))
        else:
            try:
                source, text = general_text(cfg.general_text.hub, cfg.general_text.local_file, data_cfg)
                probes.append(GeneralTextProbe(cfg.general_text, text, source, cache_root))
            except HarnessError as miss:
                if not cfg.fallback_to_kl:
                    raise
                notice_once(f"[harness] forgetting: {miss}; falling back to kl_drift")
                if "kl_drift" not in cfg.probe_names():
                    probes.append(KLDriftProbe(cfg.kl_drift))
    gain = TargetGain(cache_root, task, data, max_len) if cfg.target_gain else None
    return Probes(probes, gain)
