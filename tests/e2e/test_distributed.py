"""One run over two processes (torchrun, gloo on CPU; harness/distributed/): it is the same
experiment as one process with the whole global micro-batch (loss curve and adapter within 1e-5),
replicated (ddp) or sharded (fsdp, LoRA and full fine-tuning), an evaluation sharded over the
ranks scores what rank 0 alone scores, one method of each family trains
over the ranks with every rank holding the same state (or is refused in one line), the runs row
records the world, a sweep under torchrun is refused, and a rank killed mid-train fails the run
without metrics, whose rerun resumes from its checkpoint and ends where an uninterrupted run ends
(ddp and fsdp)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from harness.cli import preflight
from harness.core.errors import HarnessError
from harness.distributed.parallel import Parallel
from harness.distributed.world import World
from harness.store.result_store import ResultStore
from tests.conftest import REPO, run_cli
from tests.e2e.distributed_case import OPTIONS, scorer_case, train_case

RUN = ["model=tiny-random-llama", "method=lora", "budget=smoke", "budget.max_steps=6", "task.n_eval=2",
       "task.max_new_tokens=4", "forgetting.probes=[kl_drift]", "forgetting.target_gain=false", "eval.latency_tokens=0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(target: list[str], env_extra: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), **(env_extra or {})}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           *target]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _run(results: Path) -> tuple[dict, list[float], dict]:
    runs, metrics, bad = ResultStore(results).read()
    assert bad == [] and len(runs) == 1
    row = runs.iloc[0].to_dict()
    curve = metrics[(metrics["run_id"] == row["run_id"]) & (metrics["metric"] == "train_loss")].sort_values("step")
    adapter = {} if row["status"] != "finished" else load_file(next((Path(row["job_dir"]) / "adapter").glob("*.safetensors")))
    return row, curve["value"].tolist(), adapter


def _close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_are_the_experiment_of_one_with_the_global_batch(tmp_path, test_data, strategy):
    env = {"HARNESS_DATA_DIR": str(test_data)}
    one = run_cli([*RUN, "train.batch_size=4"], tmp_path / "one", env)
    assert one.returncode == 0, one.stderr[-2000:]
    two = torchrun(["-m", "harness", f"results_dir={tmp_path / 'two'}", *RUN, "train.batch_size=2",
                    f"train.strategy={strategy}"], env)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("[done") == 1  # rank 0 reports; the other rank only trains
    (row1, curve1, adapter1), (row2, curve2, adapter2) = _run(tmp_path / "one"), _run(tmp_path / "two")
    assert len(curve1) == len(curve2) == 6 and max(abs(a - b) for a, b in zip(curve1, curve2)) <= 1e-5
    _close(adapter1, adapter2)
    assert row1["train_tokens"] == row2["train_tokens"]  # tokens are the global count
    train1, train2 = json.loads(row1["config_json"])["train"], json.loads(row2["config_json"])["train"]
    assert (train1["world_size"], train1["strategy"]) == (1, "none")
    assert (train2["world_size"], train2["strategy"]) == (2, strategy)
    assert json.loads(row2["hardware_json"])["world_size"] == 2
    assert row1["run_id"] != row2["run_id"]  # never pooled as seeds of one configuration
    metrics = ResultStore(tmp_path / "two").read()[1]
    ranks = metrics[metrics["metric"].str.startswith("peak_mem_bytes_rank")]
    assert sorted(ranks["metric"]) == ["peak_mem_bytes_rank0", "peak_mem_bytes_rank1"]
    assert row2["peak_mem_bytes"] == ranks["value"].max()


def test_the_scorer_hands_each_rank_its_share_and_every_rank_all_results(tmp_path):
    out = tmp_path / "scorer.pt"
    proc = torchrun([str(REPO / "tests" / "e2e" / "scripts" / "scorer_over_ranks.py"), str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = torch.load(out, weights_only=True)
    assert found["shares"] == [[0, 2, 4, 6], [1, 3, 5]] and found["tens"] == [0, 10, 20, 30, 40, 50, 60]
    alone = scorer_case(World())
    assert found["generated"] == alone["generated"]
    assert [n for _, n in found["ce"]] == [n for _, n in alone["ce"]]
    pairs = [(a, b) for x, y in zip(found["loglik"], alone["loglik"]) for a, b in zip(x, y)]
    pairs += [(a, b) for (a, _), (b, _) in zip(found["ce"], alone["ce"])]
    assert len(pairs) == 20 and max(abs(a - b) for a, b in pairs) <= 1e-5


@pytest.mark.slow
def test_a_sharded_evaluation_scores_what_rank_0_alone_scores(tmp_path, test_data):
    """Under ddp each rank generates and scores its share of the items and rank 0 gathers them
    (eval.shard_over_ranks): the same per-item outputs and scores as rank 0 evaluating alone, and the
    same run id. Batches of one item, so that no item's batch partners differ between the two."""
    env = {"HARNESS_DATA_DIR": str(test_data)}
    args = [arg for arg in RUN if not arg.startswith("task.n_eval")] + [
        "task.n_eval=5", "task.eval_batch_size=1", "task.score_batch_size=1", "train.batch_size=2", "train.strategy=ddp"]
    found = []
    for shard in ("true", "false"):
        proc = torchrun(["-m", "harness", f"results_dir={tmp_path / shard}", *args, f"eval.shard_over_ranks={shard}"], env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        store = ResultStore(tmp_path / shard)
        runs, metrics, _ = store.read()
        samples = store.read_samples().sort_values(["metric", "item_id"])
        assert len(samples[samples["metric"] == "exact_match_strict"]) == 5  # every item once, gathered in order
        found.append((runs.iloc[0], metrics.set_index("metric")["value"], samples))
    (row1, metrics1, samples1), (row2, metrics2, samples2) = found
    assert row1["run_id"] == row2["run_id"]
    assert samples1["prediction"].tolist() == samples2["prediction"].tolist()
    assert samples1["item_id"].tolist() == samples2["item_id"].tolist()
    assert max(abs(a - b) for a, b in zip(samples1["value"], samples2["value"])) <= 1e-6
    for metric in ("exact_match_strict", "answer_ce", "forgetting_kl"):
        assert abs(metrics1[metric] - metrics2[metric]) <= 1e-6, metric


@pytest.mark.slow
def test_full_fine_tuning_sharded_over_two_ranks_is_the_experiment_of_one(tmp_path, test_data):
    """Every weight trains and is sharded; rank 0 evaluates the gathered model, so its scores are the
    single process's too (full fine-tuning saves no weights: its state is checked in the families test)."""
    env = {"HARNESS_DATA_DIR": str(test_data)}
    full = [arg if arg != "method=lora" else "method=full" for arg in RUN] + ["train.lr=1e-4"]
    one = run_cli([*full, "train.batch_size=4"], tmp_path / "one", env)
    assert one.returncode == 0, one.stderr[-2000:]
    two = torchrun(["-m", "harness", f"results_dir={tmp_path / 'two'}", *full, "train.batch_size=2",
                    "train.strategy=fsdp"], env)
    assert two.returncode == 0, two.stderr[-3000:]
    scores = []
    for results in (tmp_path / "one", tmp_path / "two"):
        runs, metrics, _ = ResultStore(results).read()
        assert runs["status"].tolist() == ["finished"]
        curve = metrics[metrics["metric"] == "train_loss"].sort_values("step")["value"].tolist()
        evaluated = metrics[metrics["metric"].isin(["answer_ce", "forgetting_kl"])].set_index("metric")["value"]
        scores.append((curve, evaluated.to_dict(), runs.iloc[0]))
    (curve1, evaluated1, row1), (curve2, evaluated2, row2) = scores
    assert len(curve1) == len(curve2) == 6 and max(abs(a - b) for a, b in zip(curve1, curve2)) <= 1e-5
    assert evaluated1.keys() == evaluated2.keys() == {"answer_ce", "forgetting_kl"}
    assert all(abs(evaluated1[k] - evaluated2[k]) <= 1e-4 for k in evaluated1), (evaluated1, evaluated2)
    assert evaluated2["forgetting_kl"] > 0  # the evaluated model is the trained one, not the base
    assert row1["trainable_params"] == row2["trainable_params"] == row2["total_params"]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_one_method_of_each_family_trains_over_two_ranks_as_over_one(tmp_path, test_data, strategy):
    names = sorted(set(OPTIONS) - ({"sorsa"} if strategy == "fsdp" else set()))  # fsdp refuses SORSA (below)
    out = tmp_path / "families.pt"
    proc = torchrun([str(REPO / "tests" / "e2e" / "scripts" / "families_over_ranks.py"), str(out), str(test_data),
                     strategy, *names])
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = torch.load(out, weights_only=True)
    for name in names:
        assert found[name]["same_on_every_rank"], name
        single, state = train_case(name, str(test_data), Parallel(), World())
        assert max(abs(a - b) for a, b in zip(single, found[name]["losses"])) <= 1e-5, name
        if strategy == "fsdp":  # the state rank 0 gathered from the shards is the single process's
            _close(state, found[name]["state"])
            assert found[name]["meta_start_by_rank"] == [False, True], name  # rank 1 never held the base's weights


@pytest.mark.parametrize("overrides, message", [
    (["method=mezo"], "method mezo cannot train over 2 processes: its step is two perturbed forward passes"),
    (["method=lisa"], "method lisa cannot train over 2 processes: it changes which layers train"),
    (["method=adalora"], "method adalora cannot train over 2 processes: PEFT adds its orthogonality penalty"),
    (["method=sorsa", "train.strategy=fsdp"], "train.strategy=fsdp cannot shard method sorsa: its regularization term"),
    (["train.world_size=4"], "train.world_size=4 but this process is one of 2 (WORLD_SIZE=2)"),
])
def test_what_cannot_run_over_ranks_is_refused_in_one_line(monkeypatch, test_data, overrides, message):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(HarnessError) as refused:
        preflight.check(["model=tiny-random-llama", "budget=smoke", f"data.dir={test_data}", *overrides])
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_a_killed_rank_fails_the_run_and_the_rerun_resumes_to_the_uninterrupted_result(tmp_path, test_data, strategy):
    env = {"HARNESS_DATA_DIR": str(test_data)}
    args = [*RUN, "train.batch_size=2", "train.checkpoint_every=2", f"train.strategy={strategy}"]
    whole = torchrun(["-m", "harness", f"results_dir={tmp_path / 'whole'}", *args], env)
    assert whole.returncode == 0, whole.stderr[-3000:]

    results = tmp_path / "killed"
    killed = torchrun(["-m", "harness", f"results_dir={results}", *args],
                      {**env, "HARNESS_TEST_KILL_AT": "mid_train:3", "HARNESS_TEST_FAULT_RANK": "1"})
    assert killed.returncode != 0
    row, curve, _ = _run(results)
    assert row["status"] == "failed" and row["error"].startswith("rank 0 of 2: ") and "\n" not in row["error"]
    assert ResultStore(results).read()[1].empty  # no metric rows
    assert list((results / "checkpoints" / row["run_id"]).glob("*.pt"))  # kept for the rerun

    rerun = torchrun(["-m", "harness", f"results_dir={results}", *args], env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "[resume]" in rerun.stdout
    runs, metrics, _ = ResultStore(results).read()
    finished = runs[runs["status"] == "finished"]
    assert len(finished) == 1
    resumed = metrics[(metrics["run_id"] == finished["run_id"].iloc[0])]
    assert resumed.loc[resumed["metric"] == "resumed_from_step", "value"].tolist() == [2.0]
    (_, curve_whole, adapter_whole) = _run(tmp_path / "whole")
    curve_resumed = resumed[resumed["metric"] == "train_loss"].sort_values("step")["value"].tolist()
    assert curve_resumed == curve_whole
    adapter = load_file(next((Path(finished["job_dir"].iloc[0]) / "adapter").glob("*.safetensors")))
    assert all(torch.equal(adapter[k], adapter_whole[k]) for k in adapter_whole)
