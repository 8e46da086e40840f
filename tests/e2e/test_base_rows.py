"""method=none (methods/base.py) on the real CLI: in a sweep next to a trained method it evaluates the
untouched base model with the same evaluation and probes, files the row as method `base` with zero
trainable parameters, steps and train time, gains of exactly zero, and the report ranks it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.cli import preflight
from harness.core.errors import HarnessError
from harness.store.result_store import ResultStore
from tests.conftest import REPO, run_cli

SWEEP = ["hydra.mode=MULTIRUN", "model=tiny-random-llama", "method=lora,none", "budget=smoke", "task.n_eval=2",
         "task.max_new_tokens=4", "forgetting.probes=[kl_drift]", "eval.latency_tokens=0"]


def test_a_base_row_sits_next_to_a_trained_one_and_in_the_report(tmp_path, test_data):
    proc = run_cli(SWEEP, tmp_path, {"HARNESS_DATA_DIR": str(test_data)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs, metrics, _ = ResultStore(tmp_path).read()
    assert sorted(runs["method"]) == ["base", "lora"] and set(runs["status"]) == {"finished"}
    base = runs[runs["method"] == "base"].iloc[0]
    assert (base["trainable_params"], base["train_steps"], base["train_time_s"], base["adapter_bytes"]) == (0, 0, 0.0, 0)
    mine = metrics[(metrics["run_id"] == base["run_id"]) & metrics["step"].isna()]
    gains = mine[mine["metric"].str.startswith("gain_")]
    assert len(gains) > 0 and (gains["value"] == 0.0).all()  # the base against itself
    assert {"exact_match_strict", "forgetting_kl"} <= set(mine["metric"])
    report = subprocess.run([sys.executable, "-m", "harness.report", str(tmp_path), "--out", str(tmp_path / "report")],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "| base " in (tmp_path / "report" / "gsm8k_leaderboard.md").read_text()  # ranked with the rest


@pytest.mark.parametrize("overrides, message", [
    (["train.lr_sweep=[0.5,1,2]"], "train.lr_sweep searches a learning rate, and method base does not train"),
    (["model=all-minilm-l6-v2", "task=glue_sst2"], "method base"),
])
def test_what_a_base_row_cannot_do_is_refused_in_one_line(test_data, overrides, message):
    with pytest.raises(HarnessError) as refused:
        preflight.check(["model=tiny-random-llama", "method=none", "budget=smoke", f"data.dir={test_data}", *overrides])
    assert message in str(refused.value) and "\n" not in str(refused.value)
