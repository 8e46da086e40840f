"""What makes two runs the same experiment. Light on imports: the report uses it too."""

from __future__ import annotations

import copy
from typing import Any

from harness.core.hashing import hash_object

# The config keys that define an experiment. Output locations, `force`, the device and logging
# are left out: moving results or rerunning elsewhere must not change a run's identity.
EXPERIMENT_KEYS = ("model", "method", "task", "budget", "seed", "train", "eval", "forgetting")
# Options inside those keys that change only what is written, how a run survives or which rank
# does the work, not what is measured (a resumed run equals an uninterrupted one bit for bit:
# tests/e2e/test_checkpoints.py; a sharded evaluation scores the items one process scores).
OUTPUT_ONLY = {"eval": ("log_samples", "shard_over_ranks"),
               "train": ("checkpoint_every", "checkpoint_minutes", "keep_checkpoints")}
# Options added after run ids were first published, with the value that reproduces the behaviour
# from before they existed. At that value an option stays out of the run id, so results folders
# written before it existed resume as they are; any other value is a different experiment.
LEGACY_VALUES = {
    ("model", "dtype"): "fp32",
    ("train", "gradient_checkpointing"): False,
    ("train", "group_by_length"): False,
    ("train", "packing"): False,
    ("train", "world_size"): 1,  # one process; `train.strategy` resolves to none there
    ("train", "strategy"): "none",
    ("model", "load_in_8bit"): False,
    ("train", "warmup_steps"): None,  # warm-up from warmup_ratio
    ("train", "lr_schedule"): "cosine",
    ("train", "loss_on_prompt"): False,
    ("train", "encoding"): "separate",
    ("train", "select_best"): False,
    ("train", "loss_scaling"): "none",
    ("task", "train_prompt_template"): None,  # training text from the task's prompt_template
    ("task", "num_beams"): 1,  # greedy decoding
}


def experiment_of(config: dict[str, Any]) -> dict[str, Any]:
    """The experiment-defining part of a resolved config (a plain dict; `model.dtype` already
    resolved from `auto` to what the run loads, harness/models/precision.py)."""
    experiment = copy.deepcopy({k: config[k] for k in EXPERIMENT_KEYS})
    for key, options in OUTPUT_ONLY.items():
        if isinstance(experiment.get(key), dict):
            experiment[key] = {k: v for k, v in experiment[key].items() if k not in options}
    for (key, option), legacy in LEGACY_VALUES.items():
        node = experiment.get(key)
        if isinstance(node, dict) and option in node and node[option] == legacy:
            del node[option]
    return experiment


def run_id(experiment: dict[str, Any], data_identity: dict[str, Any]) -> str:
    return hash_object({"experiment": experiment, "data": data_identity})
