"""Human names, with units, for the quantities and configurations that tables and figures show."""

from __future__ import annotations

import pandas as pd

LABELS = {
    "exact_match_flexible": "Exact match, flexible (fraction of items)",
    "exact_match_strict": "Exact match, strict (fraction of items)",
    "exact_match_answer_is": "Exact match, answer after 'The answer is' (fraction of items)",
    "answer_ce": "Answer cross-entropy (nats/token)",
    "forgetting_ce_delta": "Forgetting: Δ general-text CE (nats/token)",
    "forgetting_kl": "Forgetting: KL drift from base (nats/token)",
    "general_ce_before": "General-text CE before tuning (nats/token)",
    "general_ce_after": "General-text CE after tuning (nats/token)",
    "forgetting_acc_delta": "Forgetting: Δ general-suite accuracy (fraction of items)",
    "general_acc_before": "General-suite accuracy before tuning (fraction of items)",
    "general_acc_after": "General-suite accuracy after tuning (fraction of items)",
    "acc": "Accuracy (fraction of items)",
    "trainable_params": "Trainable parameters (count)",
    "peak_mem_mib": "Peak training memory (MiB)",
    "train_time_s": "Training time (s)",
    "train_loss": "Training loss (nats/token)",
}
# Quantities that span orders of magnitude across methods (full fine-tuning vs. prompt tuning).
LOG_SCALE = frozenset({"trainable_params"})
BASE_METHOD = "base"  # methods/base.py: the untouched model, the reference every figure measures from


GAIN_PREFIX = "gain_"  # learning: `gain_<metric>`, the tuned model's metric minus the base model's


def label(name: str) -> str:
    if name.startswith(GAIN_PREFIX) and name not in LABELS:
        return f"Gain over the base model: {label(name.removeprefix(GAIN_PREFIX))}"
    return LABELS.get(name, name)


def short_label(name: str) -> str:
    """The label without its unit, for titles."""
    return label(name).split(" (")[0]


def directed_label(name: str, higher_is_better: bool) -> str:
    return f"{label(name)}, {'higher' if higher_is_better else 'lower'} is better"


def config_labels(summary: pd.DataFrame) -> list[str]:
    """Short names for the configurations of one task: the config, plus model and budget only where
    they vary."""
    parts = ["config", *(k for k in ("model", "budget") if summary[k].nunique() > 1)]
    return [", ".join(map(str, values)) for values in summary[parts].itertuples(index=False)]
