"""Launchers, each one override away: joblib workers and submitit's local executor for real, Ray on a
local instance, Slurm as configuration (no cluster here). Results are the same whichever launcher
ran them: same run ids, one row each, the sweep summary in the launching process."""

from __future__ import annotations

import json

import pytest
from hydra.errors import MissingConfigException

from harness.cli.app import worker_threads
from harness.core.errors import HarnessError
from harness.run.prepare import prepare
from harness.cli.preflight import (
    _compose,
    _missing_option_message,
    check,
    check_environment,
    check_launcher_order,
    expand_jobs,
)
from harness.store.result_store import ResultStore
from tests.conftest import run_cli

SWEEP = ["+sweep=smoke", "task.n_eval=2", "forgetting.probes=[general_text]", "forgetting.target_gain=false",
         "eval.latency_tokens=0"]


def _run_ids(overrides: list[str], test_data) -> set[str]:
    """The run ids the sweep's jobs get, computed without running anything."""
    ids = set()
    for job in expand_jobs(overrides):
        cfg = _compose([o for o in job if not o.startswith("hydra.")] + [f"data.dir={test_data}"])
        ids.add(prepare(cfg).run_id)
    return ids


def _check_sweep(proc, results, expected_ids: set[str]) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs, _, _ = ResultStore(results).read()
    assert set(runs["run_id"]) == expected_ids and runs["run_id"].is_unique
    assert (runs["status"] == "finished").all()
    assert (runs["init_seed"] == runs["seed"]).all() and (runs["data_seed"] == runs["seed"]).all()
    # the summary callback ran in the launching process and saw every job's marker
    assert f"=== sweep smoke: {len(expected_ids)} runs" in proc.stdout
    markers = [json.loads(m.read_text()) for m in results.glob("sweeps/smoke/*/*/run.json")]
    assert sorted(m["run_id"] for m in markers) == sorted(expected_ids)


@pytest.mark.slow
def test_joblib_workers_run_the_sweep(tmp_path, test_data):
    launcher = ["+launcher=local_parallel", "hydra.launcher.n_jobs=2"]
    proc = run_cli([*SWEEP, *launcher], tmp_path, {"HARNESS_DATA_DIR": str(test_data)})
    _check_sweep(proc, tmp_path, _run_ids(SWEEP, test_data))  # the launcher does not change run ids
    assert "(joblib launcher, n_jobs=2)" in proc.stdout
    again = run_cli([*SWEEP, *launcher], tmp_path, {"HARNESS_DATA_DIR": str(test_data)})
    assert again.returncode == 0 and again.stdout.count(" skip] ") == 2  # resume works across workers


@pytest.mark.slow
def test_submitit_local_executor_runs_the_sweep(tmp_path, test_data):
    proc = run_cli([*SWEEP, "+launcher=submitit_local"], tmp_path, {"HARNESS_DATA_DIR": str(test_data)})
    _check_sweep(proc, tmp_path, _run_ids(SWEEP, test_data))
    assert list(tmp_path.glob("sweeps/smoke/*/.submitit/*"))


@pytest.mark.slow
def test_ray_local_instance_runs_the_sweep(tmp_path, test_data):
    pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="pip install 'peft-harness[ray]'")
    sweep = [*SWEEP, "method=lora"]  # one job: starting Ray dominates anyway
    proc = run_cli([*sweep, "+launcher=ray"], tmp_path, {"HARNESS_DATA_DIR": str(test_data)})
    _check_sweep(proc, tmp_path, _run_ids(sweep, test_data))


def test_slurm_launcher_is_configured_by_one_override():
    cfg = _compose([*SWEEP, "+launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=30"],
                   with_hydra=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    assert launcher.gpus_per_node == 1 and launcher.timeout_min == 30 and launcher.array_parallelism > 1
    # what a job on that cluster would use as torch threads
    assert worker_threads(dict(launcher), cpus=64, sweep_jobs=8) == launcher.cpus_per_task
    job = _compose([*SWEEP, "+launcher=slurm"])
    assert "launcher" not in job  # launchers configure hydra only: nothing in the run's config or identity


def test_multinode_slurm_launcher_runs_one_rank_per_gpu_task():
    """Each job one Slurm job of nodes x tasks_per_node ranks (their environment: tests/unit/distributed)."""
    launcher = _compose([*SWEEP, "+launcher=slurm_multinode", "hydra.launcher.nodes=4"], with_hydra=True).hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.nodes == 4
    assert launcher.tasks_per_node == launcher.gpus_per_node == 8 and launcher.max_num_timeout > 0
    assert "launcher" not in _compose([*SWEEP, "+launcher=slurm_multinode"])


def test_the_demo_sweep_runs_two_jobs_at_once_unless_told_otherwise():
    demo = ["+sweep=lora_vs_pissa"]
    own = _compose(demo, with_hydra=True).hydra.launcher
    assert own._target_.endswith("JoblibLauncher") and own.n_jobs == 2
    assert worker_threads(dict(own), cpus=2, sweep_jobs=4) == 1  # one torch thread per core
    basic = _compose([*demo, "hydra/launcher=basic"], with_hydra=True).hydra.launcher
    assert basic._target_.endswith("BasicLauncher")
    slurm = _compose([*demo, "+launcher=slurm"], with_hydra=True).hydra.launcher
    assert slurm._target_.endswith("SlurmLauncher")


def test_a_launcher_given_before_a_sweep_with_its_own_is_refused():
    with pytest.raises(HarnessError, match=r"put \+launcher=slurm after \+sweep=lora_vs_pissa"):
        check_launcher_order(["+launcher=slurm", "+sweep=lora_vs_pissa"])
    check_launcher_order(["+sweep=lora_vs_pissa", "+launcher=slurm"])
    check_launcher_order(["+launcher=slurm", "+sweep=smoke"])  # smoke leaves the launcher to the command line


@pytest.mark.parametrize("launcher,cpus,jobs,threads", [
    ({"_target_": "x.JoblibLauncher", "n_jobs": 2}, 2, 8, 1),
    ({"_target_": "x.JoblibLauncher", "n_jobs": 2}, 16, 8, 8),
    ({"_target_": "x.JoblibLauncher", "n_jobs": -1}, 16, 2, 8),  # 16 workers, but only 2 jobs to share the cores
    ({"_target_": "x.JoblibLauncher", "n_jobs": -1}, 16, None, 1),
    ({"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher", "cpus_per_task": 3}, 16, 8, 3),
    ({"_target_": "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher", "ray": {"remote": {"num_cpus": 4}}}, 16, 8, 4),
    ({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, 16, 8, None),
])
def test_parallel_jobs_split_the_cores(launcher, cpus, jobs, threads):
    assert worker_threads(launcher, cpus, jobs) == threads


def test_unknown_launcher_is_one_line_error_without_rows(tmp_path):
    proc = run_cli([*SWEEP, "+launcher=nope"], tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0] == ("error: unknown launcher 'nope'; valid launcher names: local_parallel, ray, slurm, "
                        "slurm_multinode, submitit_local (choose with +launcher=NAME)")
    assert not (tmp_path / "runs").exists()


def test_unknown_hydra_launcher_names_the_valid_ones():
    with pytest.raises(HarnessError, match=r"unknown hydra/launcher 'nope'; valid hydra/launcher names: basic, joblib"):
        check([*SWEEP, "hydra/launcher=nope"])


def test_missing_launcher_plugin_names_the_package():
    exc = MissingConfigException("not found", missing_cfg_file="hydra/launcher/submitit_slurm", options=["basic"])
    assert _missing_option_message(exc) == ("the submitit_slurm launcher needs the package 'hydra-submitit-launcher'; "
                                            "install it with `pip install hydra-submitit-launcher`")


def test_a_sweep_under_a_multi_process_launch_is_refused(monkeypatch):
    """`torchrun --nproc_per_node 2 -m harness +sweep=...` would run every job in both processes at
    once; one run over two processes is what such a launch is for (harness/distributed/)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(HarnessError, match=r"^a sweep of \d+ jobs was launched as 2 processes \(WORLD_SIZE=2, by torchrun"):
        check(SWEEP)
    check_environment(1)  # one run over two processes: fine
    monkeypatch.setenv("WORLD_SIZE", "1")  # `accelerate launch --num_processes 1`: fine
    check_environment(8)
