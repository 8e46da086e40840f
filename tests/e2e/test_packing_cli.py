"""train.packing and train.group_by_length through the real CLI: the run finishes and records the
share of its training positions that were padding (cost/padding/v1): none, packed."""

from __future__ import annotations

import json

from harness.store.result_store import ResultStore
from tests.conftest import run_cli

SMALL = ["model=tiny-random-llama", "budget=smoke", "method=lora", "task.n_eval=2", "task.max_new_tokens=4",
         "forgetting.probes=[]", "forgetting.target_gain=false", "eval.latency_tokens=0"]


def test_packed_grouped_run_finishes_and_records_no_padding(tmp_path, test_data):
    proc = run_cli([*SMALL, "train.packing=true", "train.group_by_length=true"], tmp_path,
                   {"HARNESS_DATA_DIR": str(test_data)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs, metrics, _ = ResultStore(tmp_path).read()
    (run,) = runs.itertuples()
    assert run.status == "finished" and run.train_steps == 3 and run.train_tokens > 0
    train = json.loads(run.config_json)["train"]
    assert train["packing"] is True and train["group_by_length"] is True
    (padding,) = metrics[metrics["metric"] == "padding_fraction"].itertuples()
    assert (padding.run_id, padding.task, padding.metric_version) == (run.run_id, "cost", "cost/padding/v1")
    assert padding.value == 0.0
