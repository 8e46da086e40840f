"""What makes two runs the same experiment. Light on imports: the report uses it too."""

from __future__ import annotations

from typing import Any

from harness.hashing import hash_object

# The config keys that define an experiment. Output locations, `force`, the device and logging
# are left out: moving results or rerunning elsewhere must not change a run's identity.
EXPERIMENT_KEYS = ("model", "method", "task", "budget", "seed", "train", "eval", "forgetting")


def run_id(experiment: dict[str, Any], data_identity: dict[str, Any]) -> str:
    return hash_object({"experiment": experiment, "data": data_identity})
