"""In-run checkpoints on the real CLI (harness/train/checkpoint.py): a run SIGKILLed mid-training
(HARNESS_TEST_KILL_AT, harness/core/faults.py) and rerun with the same command resumes from its last
checkpoint and ends with the metrics and adapter weights of an uninterrupted run, bit for bit; each
training step is in its loss curve once; the checkpoints are gone afterwards unless
train.keep_checkpoints. A job of submitit's local executor interrupted as Slurm preempts one
(SIGUSR2) is requeued by submitit and resumes the same way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from harness.store.result_store import ResultStore
from tests.conftest import REPO, run_cli

STEPS, EVERY, KILLED_AT = 6, 2, 4  # killed in step 4's callback, before its checkpoint: resumes from step 2
RUN = ["model=tiny-random-llama", "budget=smoke", f"budget.max_steps={STEPS}", "task.n_eval=2",
       "task.max_new_tokens=8", "forgetting.probes=[general_text]", "forgetting.target_gain=false",
       "forgetting.general_text.n_chunks=2", "forgetting.general_text.chunk_tokens=64", "eval.latency_tokens=0",
       f"train.checkpoint_every={EVERY}", "train.eval_every=2", "train.val_items=4"]
MEASURED = {"mem_activations_bytes"}  # the process's peak RSS: differs between any two runs
RESUMED = "resumed_from_step"


def _finished(results: Path) -> tuple[pd.Series, pd.DataFrame]:
    runs, metrics, bad = ResultStore(results).read()
    assert bad == [] and len(runs) == 1 and runs["status"].iloc[0] == "finished"
    return runs.iloc[0], metrics


def _compared(metrics: pd.DataFrame) -> pd.DataFrame:
    kept = metrics[~metrics["metric"].isin(MEASURED | {RESUMED})]
    return kept[["task", "metric", "step", "value"]].sort_values(["task", "metric", "step"]).reset_index(drop=True)


def _adapter(job_dir: str) -> dict:
    """Every tensor of the saved adapter, and its other files' bytes."""
    folder = Path(job_dir) / "adapter"
    found: dict = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".safetensors":
            found.update({f"{path.name}:{k}": v for k, v in load_file(path).items()})
        elif path.suffix == ".json":  # peft writes target_modules from a set: its order changes with the process
            config = json.loads(path.read_text())
            found[path.name] = {k: sorted(v) if k == "target_modules" else v for k, v in config.items()}
        elif path.name != "README.md":  # peft's model card
            found[path.name] = path.read_bytes()
    return found


def _assert_same_run(uninterrupted: Path, resumed: Path, resumed_from: set[int]) -> None:
    """The same run id, metric values and adapter bit for bit; each step once in the loss curve."""
    row_a, metrics_a = _finished(uninterrupted)
    row_b, metrics_b = _finished(resumed)
    assert row_a["run_id"] == row_b["run_id"] and row_b["train_steps"] == STEPS
    pd.testing.assert_frame_equal(_compared(metrics_a), _compared(metrics_b), check_exact=True)
    curve = metrics_b[metrics_b["metric"] == "train_loss"]
    assert sorted(curve["step"]) == list(range(1, STEPS + 1))
    assert int(metrics_b.loc[metrics_b["metric"] == RESUMED, "value"].item()) in resumed_from
    assert RESUMED not in set(metrics_a["metric"])
    adapter_a, adapter_b = _adapter(row_a["job_dir"]), _adapter(row_b["job_dir"])
    assert adapter_a.keys() == adapter_b.keys() and len(adapter_a) > 0
    for key, value in adapter_a.items():
        same = value.equal(adapter_b[key]) if isinstance(value, torch.Tensor) else value == adapter_b[key]
        assert same, key


VARIANTS = [
    pytest.param(["method=lora"], f"mid_train:{KILLED_AT}", {EVERY}, id="lora"),
    # LISA's layer draws, its generator and the layers it trained and froze again; kept checkpoints
    pytest.param(["method=lisa", "method.interval=2", "train.keep_checkpoints=true"], f"mid_train:{KILLED_AT}",
                 {EVERY}, id="lisa", marks=pytest.mark.slow),
    # MeZO's seed generator and its optimizer without gradients
    pytest.param(["method=mezo", "method.mode=lora"], f"mid_train:{KILLED_AT}", {EVERY}, id="mezo",
                 marks=pytest.mark.slow),
    # two lr candidates, a checkpoint each: killed in the second, both resume (the first from step 4)
    pytest.param(["method=lora", "train.lr_sweep=[1,3]"], f"mid_train:{STEPS + KILLED_AT}", {EVERY, 2 * EVERY},
                 id="lr_sweep", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("options,kill_at,resumed_from", VARIANTS)
def test_a_sigkilled_run_resumes_to_the_uninterrupted_result(tmp_path, test_data, options, kill_at, resumed_from):
    env = {"HARNESS_DATA_DIR": str(test_data)}
    args = [*RUN, *options]
    uninterrupted = run_cli(args, tmp_path / "a", env)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
    keep = "train.keep_checkpoints=true" in options
    assert (tmp_path / "a" / "checkpoints").exists() == keep

    results = tmp_path / "b"
    killed = run_cli(args, results, {**env, "HARNESS_TEST_KILL_AT": kill_at})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    [run_folder] = (results / "checkpoints").iterdir()
    assert list(run_folder.glob("*.pt")) and not list(run_folder.glob(".*.tmp"))
    assert ResultStore(results).read()[0].empty  # no row: the rerun treats it as to do

    resumed = run_cli(args, results, env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "already finished" not in resumed.stdout
    method = next(o for o in options if o.startswith("method=")).split("=", 1)[1]
    assert f"[resume] {method} " in resumed.stdout + resumed.stderr  # the console says it, too
    log = "\n".join(p.read_text() for p in results.glob("single/*/job.log"))
    assert f"[harness] resuming run {run_folder.name} from step {EVERY} (checkpoint {run_folder}" in log
    _assert_same_run(tmp_path / "a", results, resumed_from)
    assert (results / "checkpoints").exists() == keep


def _job_processes(marker: str) -> list[int]:
    """Processes running a submitit job whose folder contains `marker` (Linux: /proc)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        text = b" ".join(args).decode(errors="replace")
        if "submitit.core._submit" in text and marker in text:
            found.append(int(cmdline.parent.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the job's process through /proc")
def test_a_preempted_submitit_job_is_requeued_and_resumes(tmp_path, test_data):
    """Slurm warns a job before preempting it or at its time limit with SIGUSR2; submitit's handler
    then calls the Hydra launcher's `checkpoint`, which resubmits the same job, and exits. Here the
    local executor gets the same signal once the first checkpoint exists, and requeues the job in
    place as Slurm would."""
    env = {"HARNESS_DATA_DIR": str(test_data), "OMP_NUM_THREADS": "1"}  # the job's own torch threads: 1
    sweep = ["+sweep=smoke", "method=lora", *RUN[2:]]  # one job: smoke's model and budget, and the options above
    uninterrupted = run_cli(sweep, tmp_path / "a", env)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]

    results = tmp_path / "b"
    command = [sys.executable, "-m", "harness", f"results_dir={results}", *sweep, "+launcher=submitit_local"]
    proc = subprocess.Popen(command, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not list(results.glob("checkpoints/*/train.pt")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    jobs = _job_processes(str(results))
    assert len(jobs) == 1, "the job should be training, with a checkpoint written"
    os.kill(jobs[0], signal.SIGUSR2)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]

    log = "\n".join(p.read_text() for p in results.glob("sweeps/smoke/*/0/job.log"))  # the job's output, submitit's too
    assert "Caught signal SIGUSR2" in log and "Requeued job" in log and "[harness] resuming run" in log
    _assert_same_run(tmp_path / "a", results, {EVERY, 2 * EVERY})  # the signal may land after step 4's save
    assert not (results / "checkpoints").exists()
