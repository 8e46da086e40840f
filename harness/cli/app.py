"""The Hydra application: one call of `run` is one run (a job of a sweep, or a single run)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Mapping

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from harness.cli.console import SweepPosition, job_console
from harness.cli.preflight import SWEEP_JOBS_ENV
from harness.cli.summary import run_label
from harness.core.paths import CONF_DIR
from harness.distributed.world import export_slurm_world
from harness.run.experiment import execute, write_job_marker
from harness.run.prepare import prepare
from harness.store.result_store import ResultStore
from harness.train import checkpoint

FAILED_RUNS: list[str] = []

# A per-invocation token in the output folder name: two sweeps started in the same second get
# different folders. Cached, and Hydra copies the resolver cache into every job's config, so all
# jobs of one sweep agree on it.
OmegaConf.register_new_resolver("harness_uid", lambda: secrets.token_hex(3), use_cache=True, replace=True)


def worker_threads(launcher: Mapping[str, Any], cpus: int, sweep_jobs: int | None) -> int | None:
    """Torch threads for one job when the launcher runs jobs side by side (None: a lone job keeps
    torch's default). Workers sharing cores must split them, or they oversubscribe and run slower
    than one after another."""
    target = str(launcher.get("_target_", "")).lower()
    if "joblib" in target:
        n_jobs = int(launcher.get("n_jobs") or 1)
        workers = n_jobs if n_jobs > 0 else max(1, cpus + 1 + n_jobs)  # joblib: -1 = all cores, -2 = all but one
        return max(1, cpus // min(workers, sweep_jobs or workers))
    if "submitit" in target and launcher.get("cpus_per_task"):
        return int(launcher["cpus_per_task"])
    if "ray" in target and (launcher.get("ray") or {}).get("remote", {}).get("num_cpus"):
        return int(launcher["ray"]["remote"]["num_cpus"])
    return None


def _limit_threads() -> None:
    launcher = OmegaConf.to_container(HydraConfig.get().launcher, resolve=True)
    jobs = os.environ.get(SWEEP_JOBS_ENV)
    threads = worker_threads(launcher, len(os.sched_getaffinity(0)), int(jobs) if jobs else None)
    if threads:
        torch.set_num_threads(threads)


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def run(cfg: DictConfig) -> None:
    """One job: its events on the console (harness/cli/console.py), all it prints in its folder's job.log."""
    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    _limit_threads()
    export_slurm_world()  # before the config reads WORLD_SIZE (train.world_size)
    with job_console(job_dir, SweepPosition.of_job(hydra_cfg)) as console:
        prepared = prepare(cfg)
        run = prepared.run
        label = run_label(prepared.method.name, run.model.name, prepared.data.name, prepared.budget.name, run.seed)
        store = ResultStore(run.results_dir)
        if store.is_finished(prepared.run_id) and not run.force:
            write_job_marker(job_dir, prepared.run_id, "finished", skipped=True)
            console.skip(label, f"run {prepared.run_id} already finished (force=true reruns it)")
            return
        if not prepared.world.main:  # another process of a torchrun: it trains its share, rank 0 reports
            execute(prepared, job_dir)
            return
        console.start(label)
        if any(checkpoint.folder(run.results_dir, prepared.run_id).glob("*.pt")):
            console.say(f"{console.tag('resume')} {label}: from its last checkpoint in "
                        f"{checkpoint.folder(run.results_dir, prepared.run_id)}")
        write_job_marker(job_dir, prepared.run_id, "running")
        record, metrics = execute(prepared, job_dir)
        write_job_marker(job_dir, prepared.run_id, record.status)
        console.end(record.row(), metrics)
    if record.status != "finished" and prepared.run_id not in FAILED_RUNS:
        FAILED_RUNS.append(prepared.run_id)
