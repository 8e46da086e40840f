"""The real CLI in a subprocess on tiny-random-llama: parquet written, reruns skip, bad input fails
in one line with no rows, failed runs are recorded without metrics."""

from __future__ import annotations

import json

import pytest

from harness.store.result_store import ResultStore
from tests.conftest import run_cli

SMOKE = ["+sweep=smoke"]


@pytest.fixture(scope="module")
def smoke_sweep(tmp_path_factory, test_data):
    results = tmp_path_factory.mktemp("results")
    proc = run_cli(SMOKE, results, {"HARNESS_DATA_DIR": str(test_data)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return results, proc


def test_sweep_writes_tidy_parquet(smoke_sweep):
    results, proc = smoke_sweep
    runs, metrics, bad = ResultStore(results).read()
    assert bad == [] and len(runs) == 2
    assert set(runs["method"]) == {"lora", "pissa"} and set(runs["status"]) == {"finished"}
    assert set(runs["task"]) == {"gsm8k"} and set(runs["model"]) == {"tiny-random-llama"}
    row = runs.iloc[0]
    config = json.loads(row["config_json"])
    assert config["budget"]["max_steps"] == 3 and config["model"]["name"] == "tiny-random-llama"
    assert json.loads(row["data_json"])["source"] == "local"
    assert json.loads(row["versions_json"])["torch"]
    assert len(row["git_sha"]) in (40, 7) or row["git_sha"] == "unknown"
    assert (runs["train_steps"] == 3).all() and (runs["trainable_params"] > 0).all()
    assert (runs["adapter_bytes"] > 0).all() and (runs["peak_mem_bytes"] > 0).all()
    assert (runs["tokens_per_s"] > 0).all() and (runs["eval_time_s"] > 0).all()
    final = metrics[metrics["step"].isna()]
    for run_id in runs["run_id"]:
        names = set(final.loc[final["run_id"] == run_id, "metric"])
        assert {"exact_match_strict", "exact_match_flexible", "answer_ce", "forgetting_ce_delta"} <= names
    curve = metrics[metrics["metric"] == "train_loss"]
    assert sorted(curve["step"].unique()) == [1, 2, 3]
    assert final["metric_version"].str.contains("/v").all()
    assert "=== sweep smoke: 2 runs" in proc.stdout and "lora" in proc.stdout


def test_per_item_samples_match_the_metric_means(smoke_sweep):
    results, _ = smoke_sweep
    store = ResultStore(results)
    _, metrics, _ = store.read()
    samples = store.read_samples()
    assert set(samples["run_id"]) == set(metrics["run_id"])
    per_item = samples.groupby(["run_id", "metric"])["value"].agg(["mean", "count"])
    final = metrics[metrics["step"].isna()].set_index(["run_id", "metric"])
    for (run_id, metric), row in per_item.iterrows():
        assert row["count"] == final.loc[(run_id, metric), "n"] == 4
        assert abs(row["mean"] - final.loc[(run_id, metric), "value"]) < 1e-9
    assert samples.loc[samples["metric"] == "exact_match_flexible", "prediction"].notna().all()


def test_rerun_skips_finished_runs(smoke_sweep, test_data):
    results, _ = smoke_sweep
    before = sorted(p.name for p in (results / "runs").iterdir())
    proc = run_cli(SMOKE, results, {"HARNESS_DATA_DIR": str(test_data)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count(" skip] ") == 2  # [sweep 1/2 skip] ...
    assert sorted(p.name for p in (results / "runs").iterdir()) == before
    runs, _, _ = ResultStore(results).read()
    assert len(runs) == 2


def test_a_partial_rerun_launches_only_the_unfinished_jobs(smoke_sweep, test_data, tmp_path):
    results, _ = smoke_sweep
    proc = run_cli([*SMOKE, "method=lora", "seed=0,1"], results, {"HARNESS_DATA_DIR": str(test_data)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count(" skip] ") == 1 and "[sweep 1/2 skip] lora " in proc.stdout  # printed by the preflight
    assert "1 of 2 runs already finished: launching the other 1" in proc.stdout
    assert "[sweep 1/1 start] lora tiny-random-llama gsm8k smoke seed=1" in proc.stdout
    sweep = max((results / "sweeps" / "smoke").iterdir(), key=lambda p: p.stat().st_mtime)
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0"]  # one job launched, not two
    runs, _, _ = ResultStore(results).read()
    assert len(runs) == 3 and runs["run_id"].is_unique


def test_output_location_does_not_change_run_id(smoke_sweep, test_data, tmp_path):
    results, _ = smoke_sweep
    proc = run_cli(["+sweep=smoke", "method=lora"], tmp_path / "elsewhere", {"HARNESS_DATA_DIR": str(test_data)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    here, _, _ = ResultStore(results).read()
    there, _, _ = ResultStore(tmp_path / "elsewhere").read()
    assert there["run_id"].iloc[0] in set(here["run_id"])


@pytest.mark.parametrize("override,needle", [
    ("method=nope", "unknown method 'nope'; valid method names: "),
    ("model=nope", "unknown model 'nope'; valid model names:"),
    ("task=nope", "unknown task 'nope'; valid task names: "),  # independent of how many tasks there are
    ("method=lora,nope", "unknown method 'nope'"),
    ("method.r=-1", "method.r=-1 is invalid"),
    ("budget.max_steps=0", "budget.max_steps=0 is impossible"),
    ("model=qwen2.5-0.5b", "loads Qwen/Qwen2.5-0.5B from the Hugging Face hub, which is unreachable"),
])
def test_bad_input_is_one_line_error_without_rows(tmp_path, override, needle):
    proc = run_cli([*SMOKE, override], tmp_path, {"HF_HUB_OFFLINE": "0"})  # the hub is unreachable here
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "metrics").exists()


def test_missing_data_is_one_line_error(tmp_path):
    proc = run_cli([*SMOKE, "data.order=[local]", f"data.dir={tmp_path}/none"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: no data for task gsm8k; tried local:")
    assert not (tmp_path / "runs").exists()


def test_nan_loss_is_a_failed_run_without_metrics(tmp_path, test_data):
    proc = run_cli(["model=tiny-random-llama", "budget=smoke", "budget.max_steps=6", "task.n_eval=2", "train.lr=1e30", "train.warmup_ratio=0",
                    "train.grad_clip=0", "method=full"], tmp_path, {"HARNESS_DATA_DIR": str(test_data)})
    assert proc.returncode == 1, proc.stderr[-2000:]
    runs, metrics, _ = ResultStore(tmp_path).read()
    assert runs["status"].tolist() == ["failed"]
    assert "lower the learning rate" in runs["error"].iloc[0]
    assert metrics.empty and not (tmp_path / "metrics").exists()


def test_two_sweeps_in_the_same_second_get_their_own_folders(tmp_path, test_data):
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HARNESS_DATA_DIR": str(test_data)}
    cmd = [sys.executable, "-m", "harness", f"results_dir={tmp_path}", "+sweep=smoke", "method=lora", "task.n_eval=1"]
    procs = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        p.wait(timeout=600)
    folders = list((tmp_path / "sweeps" / "smoke").iterdir())
    assert len(folders) == 2
    runs, _, _ = ResultStore(tmp_path).read()
    assert len(runs) == 1  # both computed the same run id: one row, never two


def test_wandb_offline_run_is_written_without_login(tmp_path, test_data):
    proc = run_cli(["model=tiny-random-llama", "budget=smoke", "task.n_eval=2", "task.max_new_tokens=4",
                    "wandb.enabled=true", "forgetting.probe=kl_drift"], tmp_path,
                   {"HARNESS_DATA_DIR": str(test_data), "WANDB_API_KEY": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    offline = list((tmp_path / "single").glob("*/wandb/offline-run-*"))
    assert len(offline) == 1
    _, metrics, _ = ResultStore(tmp_path).read()
    assert "forgetting_kl" in set(metrics["metric"])
