"""What makes two runs the same experiment. Light on imports: the report uses it too."""

from __future__ import annotations

from typing import Any

from harness.core.hashing import hash_object

# The config keys that define an experiment. Output locations, `force`, the device and logging
# are left out: moving results or rerunning elsewhere must not change a run's identity.
EXPERIMENT_KEYS = ("model", "method", "task", "budget", "seed", "train", "eval", "forgetting")
# Options inside those keys that change only what is written, not what is measured.
OUTPUT_ONLY = {"eval": ("log_samples",)}


def experiment_of(config: dict[str, Any]) -> dict[str, Any]:
    """The experiment-defining part of a resolved config (a plain dict)."""
    experiment = {k: config[k] for k in EXPERIMENT_KEYS}
    for key, options in OUTPUT_ONLY.items():
        if isinstance(experiment.get(key), dict):
            experiment[key] = {k: v for k, v in experiment[key].items() if k not in options}
    return experiment


def run_id(experiment: dict[str, Any], data_identity: dict[str, Any]) -> str:
    return hash_object({"experiment": experiment, "data": data_identity})
