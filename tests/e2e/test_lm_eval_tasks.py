"""Any lm-eval task as a task (harness/tasks/lm_eval_task.py): `task=lm_eval task.name=<lm-eval task>`
runs offline from the data dir through the real CLI, the native and lm-eval evaluators agree, the
data identity names lm-eval's version and the task's yaml, and misuse is one line."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from harness import tasks
from harness.config.run_config import GeneralSuiteConfig
from harness.core.errors import HarnessError
from harness.core.paths import CONF_DIR
from harness.probes.general_suite import GeneralSuiteProbe
from harness.tasks.lm_eval_task import task_yaml
from tests.conftest import run_cli

CPU = torch.device("cpu")
BASE = ["task=lm_eval", "model=tiny-random-llama", "budget=smoke", "task.n_eval=12",
        "forgetting.probes=[]", "forgetting.target_gain=false", "data.order=[local]"]


def test_lm_eval_tasks_are_found_by_their_own_names():
    assert task_yaml("arc_easy").name == "arc_easy.yaml" and task_yaml("winogrande").name == "default.yaml"
    with pytest.raises(HarnessError, match=r"^task.name='arc_eazy' is not an lm-eval task"):
        tasks.build({"via": "lm_eval", "name": "arc_eazy", "n_eval": None, "num_fewshot": 0, "evaluator": "native",
                     "batch_size": 8, "prompt_version": "lm_eval"})


@pytest.mark.parametrize("name", ["arc_challenge", "piqa", "winogrande", "boolq"])
def test_an_lm_eval_task_runs_offline_and_both_evaluators_agree(tmp_path, test_data, name):
    accs = {}
    for evaluator in ("native", "lm_eval"):
        out = tmp_path / evaluator
        proc = run_cli([*BASE, "method=base", f"task.name={name}", f"task.evaluator={evaluator}", f"data.dir={test_data}"], out)
        assert proc.returncode == 0, proc.stderr[-2000:]
        metrics, runs = pd.read_parquet(out / "metrics"), pd.read_parquet(out / "runs")
        acc = metrics[(metrics.task == name) & (metrics.metric == "acc")]
        assert len(acc) == 1 and acc.n.iloc[0] == 12 and acc.metric_version.iloc[0].startswith(f"lm_eval/{name}/acc/v")
        identity = json.loads(runs.data_json.iloc[0])
        assert identity["source"] == "local" and identity["lm_eval_version"] and len(identity["task_yaml_sha256"]) == 64
        accs[evaluator] = acc.value.iloc[0]
    assert accs["native"] == accs["lm_eval"]


def test_a_generation_task_runs_natively_with_a_row_per_filter(tmp_path, test_data):
    proc = run_cli([*BASE, "method=base", "task.name=gsm8k", "task.n_eval=3", f"data.dir={test_data}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = pd.read_parquet(tmp_path / "metrics")
    rows = metrics[metrics.task == "gsm8k"].set_index("metric")
    assert {"exact_match_strict_match", "exact_match_flexible_extract"} <= set(rows.index)
    assert rows.loc["exact_match_strict_match", "metric_version"] == "lm_eval/gsm8k/exact_match_strict_match/v3.0"
    assert (rows.n == 3).all()


def test_a_method_that_trains_is_refused_on_an_evaluation_only_task(tmp_path, test_data):
    proc = run_cli([*BASE, "method=lora", "task.name=arc_easy", f"data.dir={test_data}"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: task arc_easy has no training items (an evaluation-only task) and method lora "
                                   "trains; evaluate it with method=base, or in forgetting.general_suite")


def test_lm_eval_tasks_are_members_of_the_general_suite(tmp_path, test_data, tiny_model):
    names = ["arc_easy", "arc_challenge", "piqa", "winogrande", "boolq"]
    specs = [{"lm_eval": name, "metric": "acc", "with": {"n_eval": 6}} for name in names]
    probe = GeneralSuiteProbe(GeneralSuiteConfig(required=True, tasks=specs), {"dir": str(test_data), "order": ["local"]},
                              tmp_path, CONF_DIR, 256)
    assert [(task.name, len(data.eval), metric) for task, data, metric in probe.members] == [(n, 6, "acc") for n in names]
    loaded = tiny_model()
    probe.baseline(loaded.model, loaded.tokenizer, {"model": "tiny"}, CPU)
    rows = {(m.task, m.metric): m for m in probe.measure(loaded.model, loaded.tokenizer, CPU)}
    assert all(rows[(f"forgetting/general_suite/{n}", "forgetting_acc_delta")].value == 0.0 for n in names)  # same model
    assert rows[("forgetting/general_suite", "forgetting_acc_delta")].n == 30
