"""The GPU-workload switches through the real CLI, on CPU: a sweep over model.dtype x
train.gradient_checkpointing on tiny-random-llama finishes every run, records the dtype it loaded
in config_json and model_json, gets a run id per dtype, and the fp32 run keeps the id it had before
the option existed."""

from __future__ import annotations

import json

import pytest

from harness.store.result_store import ResultStore
from tests.conftest import run_cli

RUN = ["hydra.mode=MULTIRUN", "model=tiny-random-llama", "method=lora", "budget=smoke", "task.n_eval=2", "task.max_new_tokens=4",
       "forgetting.probes=[kl_drift]", "forgetting.target_gain=false", "eval.latency_tokens=2",
       "model.dtype=fp32,bf16", "train.gradient_checkpointing=false,true"]


@pytest.mark.slow
def test_dtype_and_checkpointing_sweep_finishes_and_records_what_it_ran(tmp_path, test_data):
    proc = run_cli(RUN, tmp_path, {"HARNESS_DATA_DIR": str(test_data)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs, metrics, bad = ResultStore(tmp_path).read()
    assert bad == [] and len(runs) == 4 and set(runs["status"]) == {"finished"}
    assert runs["run_id"].is_unique
    for _, row in runs.iterrows():
        config, model = json.loads(row["config_json"]), json.loads(row["model_json"])
        assert config["model"]["dtype"] in ("fp32", "bf16")
        assert model.get("dtype", "fp32") == config["model"]["dtype"]
    final = metrics[metrics["step"].isna()]
    assert final["value"].notna().all() and set(final["run_id"]) == set(runs["run_id"])
    # gradient checkpointing recomputes the same function: in fp32 the loss curves agree
    curves = metrics[metrics["metric"] == "train_loss"].merge(runs[["run_id", "config_json"]], on="run_id")
    fp32 = curves[curves["config_json"].str.contains('"dtype":"fp32"')]
    by_run = fp32.groupby("run_id")["value"].apply(list).tolist()
    assert len(by_run) == 2 and max(abs(a - b) for a, b in zip(*by_run)) < 1e-5
