"""A run's plan (harness/run/plan.py): what prepare decides is applied to a copy of the composed
config, which the run reads, records and hashes; the composed config is never written to."""

from __future__ import annotations

import json

from omegaconf import OmegaConf

from harness.cli import preflight
from harness.config.identity import experiment_of
from harness.run.plan import RunPlan
from harness.run.prepare import prepare


def test_changes_are_applied_to_a_copy_adding_what_is_missing():
    config = {"model": {"name": "m", "dtype": "auto"}, "eval": {"latency_tokens": 16}}
    plan = RunPlan()
    plan.decide("model.dtype", "fp32")
    plan.decide_all({"model.num_labels": 2, "eval.latency_tokens": 0, "forgetting.probes": []})
    applied = plan.applied(config)
    assert applied == {"model": {"name": "m", "dtype": "fp32", "num_labels": 2}, "eval": {"latency_tokens": 0},
                       "forgetting": {"probes": []}}
    assert config == {"model": {"name": "m", "dtype": "auto"}, "eval": {"latency_tokens": 16}}


def test_prepare_records_its_decisions_and_leaves_the_composed_config_alone(test_data):
    cfg = preflight._compose(["model=tiny-random-llama", "budget=params_1pct", f"data.dir={test_data}",
                              "data.order=[local]", "method=lora"])
    before = OmegaConf.to_yaml(cfg)
    prepared = prepare(cfg)
    assert OmegaConf.to_yaml(cfg) == before  # nothing written into it
    changes = prepared.plan.changes
    assert changes["model.dtype"] == "fp32" and changes["train.strategy"] == "none"
    assert changes["method.r"] == prepared.params.value == prepared.method.config.r  # the solver's knob, built once
    assert prepared.config["method"]["r"] == changes["method.r"] and prepared.run.model.dtype == "fp32"
    assert prepared.experiment == experiment_of(prepared.config)  # the run id is the resolved config's
    assert json.loads(json.dumps(prepared.config)) == prepared.config  # plain data, ready for config_json
