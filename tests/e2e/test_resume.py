"""Kill-safety and resume on the real CLI: a sweep SIGKILLed at a named point (HARNESS_TEST_KILL_AT,
harness/core/faults.py) and rerun with the same command keeps every finished run exactly once, reruns
the rest, and leaves every table readable; an unexpected exception in one run is a failed row, the
sweep goes on, and the failures can be rerun alone."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.store.result_store import ResultStore
from tests.conftest import REPO, run_cli

# smoke's two runs (lora, pissa), evaluation trimmed to what the checks need.
SWEEP = ["+sweep=smoke", "task.n_eval=2", "forgetting.probes=[general_text]", "forgetting.target_gain=false",
         "eval.latency_tokens=0"]
STEPS = 3  # budget=smoke


def run_results_cli(args: list[str], env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "harness.results", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def _check_each_run_once(results, n_finished: int) -> None:
    runs, metrics, bad = ResultStore(results).read()  # strict: raises on any unreadable file
    assert bad == [] and runs["run_id"].is_unique
    assert (runs["status"] == "finished").sum() == n_finished
    final = metrics[metrics["step"].isna()]
    assert not final.duplicated(["run_id", "task", "metric"]).any()
    curve = metrics[metrics["metric"] == "train_loss"]
    for run_id in runs.loc[runs["status"] == "finished", "run_id"]:
        assert sorted(curve.loc[curve["run_id"] == run_id, "step"]) == list(range(1, STEPS + 1))
    samples = ResultStore(results).read_samples()
    assert not samples.duplicated(["run_id", "task", "item_id", "metric"]).any()


# Kill during the second run, so one run has finished and must be kept, not redone.
KILL_POINTS = [
    pytest.param("mid_write:2", id="mid_write"),  # metrics part written, runs row (commit mark) not: fast target
    pytest.param(f"mid_train:{STEPS + 1}", id="mid_train", marks=pytest.mark.slow),
    pytest.param("mid_eval:2", id="mid_eval", marks=pytest.mark.slow),
    pytest.param("mid_part:5", id="mid_part", marks=pytest.mark.slow),  # inside a part file: a stale temp file
]


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_sigkilled_sweep_resumes_with_each_run_once(tmp_path, test_data, kill_at):
    env = {"HARNESS_DATA_DIR": str(test_data)}
    killed = run_cli(SWEEP, tmp_path, {**env, "HARNESS_TEST_KILL_AT": kill_at})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    _check_each_run_once(tmp_path, n_finished=1)
    if kill_at.startswith("mid_write"):  # the killed run's metrics are on disk but never read
        assert len(list((tmp_path / "metrics").glob("*.parquet"))) == 2
    if kill_at.startswith("mid_part"):
        assert list(tmp_path.glob("*/.*.tmp")), "the kill should have left a temp file"

    resumed = run_cli(SWEEP, tmp_path, env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert resumed.stdout.count(" skip] ") == 1 and "1 of 2 runs already finished: launching the other 1" in resumed.stdout
    assert len(re.findall(r"^\[sweep 1/1 done ", resumed.stdout, re.M)) == 1  # only the unfinished job launched
    _check_each_run_once(tmp_path, n_finished=2)
    assert len(list((tmp_path / "runs").glob("*.parquet"))) == 2


@pytest.mark.slow
def test_unexpected_exception_fails_one_run_and_the_sweep_goes_on(tmp_path, test_data):
    env = {"HARNESS_DATA_DIR": str(test_data)}
    proc = run_cli(SWEEP, tmp_path, {**env, "HARNESS_TEST_RAISE_AT": "mid_eval:1"})
    assert proc.returncode == 1, proc.stderr[-2000:]
    runs, metrics, _ = ResultStore(tmp_path).read()
    assert sorted(runs["status"]) == ["failed", "finished"]
    failed = runs[runs["status"] == "failed"].iloc[0]
    assert failed["error"].startswith("RuntimeError: injected failure at mid_eval") and "error.txt" in failed["error"]
    assert "Traceback" in (Path(failed["job_dir"]) / "error.txt").read_text()
    assert failed["run_id"] not in set(metrics["run_id"])
    assert "1 run(s) did not finish:" in proc.stdout and f"{failed['run_id']} [failed] RuntimeError" in proc.stdout
    assert "Rerun only these: `python -m harness " in proc.stdout

    listing = run_results_cli(["failures", str(tmp_path)])
    assert listing.returncode == 0 and f"- {failed['run_id']} {failed['method']}" in listing.stdout
    assert f"method={failed['method']}" in listing.stdout.split("rerun:")[1]

    rerun = run_results_cli(["rerun-failed", str(tmp_path)], env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert len(re.findall(r"^\[(sweep 1/1 )?done ", rerun.stdout, re.M)) == 1 and "skip]" not in rerun.stdout  # only the failed run ran
    _check_each_run_once(tmp_path, n_finished=2)
