"""The Hydra application: one call of `run` is one run (a job of a sweep, or a single run)."""

from __future__ import annotations

import secrets
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from harness.experiment import CONF_DIR, execute, prepare, write_job_marker
from harness.store import ResultStore
from harness.summary import run_line

FAILED_RUNS: list[str] = []

# A per-invocation token in the output folder name: two sweeps started in the same second get
# different folders. Cached, and Hydra copies the resolver cache into every job's config, so all
# jobs of one sweep agree on it.
OmegaConf.register_new_resolver("harness_uid", lambda: secrets.token_hex(3), use_cache=True, replace=True)


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def run(cfg: DictConfig) -> None:
    job_dir = Path(HydraConfig.get().runtime.output_dir)
    prepared = prepare(cfg)
    store = ResultStore(cfg.results_dir)
    if store.is_finished(prepared.run_id) and not cfg.force:
        write_job_marker(job_dir, prepared.run_id, "finished")
        print(f"[skip] {prepared.method.name} {cfg.model.name} {prepared.data.name} seed={cfg.seed}: "
              f"run {prepared.run_id} already finished (force=true reruns it)", flush=True)
        return
    write_job_marker(job_dir, prepared.run_id, "running")
    row, metrics = execute(prepared, job_dir)
    write_job_marker(job_dir, prepared.run_id, row["status"])
    print(run_line(row, metrics), flush=True)
    if row["status"] != "finished" and prepared.run_id not in FAILED_RUNS:
        FAILED_RUNS.append(prepared.run_id)
