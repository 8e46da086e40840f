"""One run, start to end, in phases over explicit data:

    prepare (harness/run/prepare.py: validate, plan, run id)
      -> set up (harness/run/fit.py: base model, baselines, training set)
      -> fit (the method trained; with train.lr_sweep the best of its candidates)
      -> evaluate (harness/run/evaluate.py: costs, the saved method, task, learning and forgetting)
      -> record (one `runs` row, a `RunRecord`, and its `metrics` rows)

A failure in any phase (NaN loss, out of memory, a bug) fails this run only: its runs row says why
and no metric rows are written."""

from __future__ import annotations

import datetime as dt
import json
import traceback
from pathlib import Path

import torch

from harness import __version__
from harness.core.errors import RunFailed
from harness.core.hashing import canonical_json
from harness.core.metrics import Metric
from harness.core.provenance import git_state, versions
from harness.costs.hardware import gpu_hours, hardware
from harness.distributed.world import World
from harness.run.evaluate import evaluate, score_share, training_costs
from harness.run.fit import fit_method, set_up
from harness.run.prepare import Prepared, pick_device
from harness.run.tracking import Tracker
from harness.store.record import RunRecord
from harness.store.result_store import ResultStore
from harness.train import checkpoint


def execute(p: Prepared, job_dir: Path) -> tuple[RunRecord, list[dict]]:
    """Run a prepared experiment and store it. Returns its runs record (finished or failed) and metric rows."""
    run, world = p.run, p.world
    device = world.join(pick_device(run.device))  # this rank's device, once the ranks have met
    lr = float(run.train.lr if run.train.lr is not None else p.method.config.lr)
    sha, dirty = git_state()
    machine = {**hardware(device), **({"world_size": world.size} if world.distributed else {})}
    record = RunRecord(
        run_id=p.run_id, sweep=run.sweep_name, sweep_dir=str(job_dir.parent), job_dir=str(job_dir),
        method=p.method.name, model=run.model.name, task=p.data.name, budget=p.budget.name,
        seed=run.seed, data_seed=run.train.data_seed, init_seed=run.train.init_seed, lr=lr, device=str(device),
        hardware_json=canonical_json(machine), memory_cap_bytes=p.budget.max_memory_bytes,
        target_params=p.params.target if p.params else None, param_knob=p.params.knob if p.params else None,
        param_knob_value=p.params.value if p.params else None,
        config_json=canonical_json(p.config), data_json=canonical_json(p.data_identity()),
        versions_json=canonical_json(versions()), git_sha=sha, git_dirty=dirty, harness_version=__version__,
        started_at=dt.datetime.now(dt.timezone.utc),
    )
    tracker = Tracker(run.wandb if world.main else None, p.run_id, run.sweep_name,
                      [p.method.name, run.model.name, p.data.name, p.budget.name], p.experiment, str(job_dir))
    metric_rows: list[dict] = []
    samples: list[dict] = []
    try:
        with world.sigterm_fails_the_run():
            metric_rows, samples = _phases(p, record, lr, device, job_dir, tracker)
        record.status = "finished"
    except Exception as exc:  # NaN loss, out of memory, or a bug: this run fails, the sweep goes on
        if not world.main:
            raise  # its launcher ends the run; rank 0 sees a rank go and writes the failed row
        record.status, record.error = "failed", failure_message(exc, job_dir, world)
        metric_rows, samples = [], []  # a failed run leaves no metrics behind, only its runs row
    if not world.main:
        return record, []
    record.ended_at = dt.datetime.now(dt.timezone.utc)
    record.gpu_hours = gpu_hours((record.ended_at - record.started_at).total_seconds(), machine, world.size)
    ResultStore(run.results_dir).write(record.row(), metric_rows, samples if run.eval.log_samples else ())
    # After the runs row: a kill before it still finds them. A failed run keeps them, so that its
    # rerun (after a rank died, or a node went) resumes.
    if record.status == "finished" and not run.train.keep_checkpoints:
        checkpoint.discard(run.results_dir, p.run_id)
    tracker.finish(record.row(), metric_rows)
    return record, metric_rows


def _phases(p: Prepared, record: RunRecord, lr: float, device: torch.device, job_dir: Path,
            tracker: Tracker) -> tuple[list[dict], list[dict]]:
    setup = set_up(p, device, record)
    fitted = fit_method(p, setup, lr, record, tracker)
    rank_peaks = p.world.gather(fitted.peak.peak_bytes)
    if not p.world.main:
        if p.eval_world.distributed:
            score_share(p, setup, fitted)  # its share of the task's items, for rank 0's metrics
        p.world.barrier()  # while rank 0 evaluates, saves and writes
        return [], []
    costs = training_costs(p, fitted, rank_peaks, record)
    metrics, latency, samples = evaluate(p, setup, fitted, record, job_dir)
    tracker.log({f"{m.task}/{m.metric}": m.value for m in metrics})
    curve = [Metric(p.data.name, "train_loss", loss, None, 1, False, "train_loss/v1", step)
             for step, loss in fitted.result.losses]
    p.world.barrier()  # the other ranks end with the run
    return [m.row() for m in metrics + costs + latency + curve], samples


def failure_message(exc: BaseException, job_dir: Path, world: World = World()) -> str:
    """One line for the runs row; an unexpected exception also leaves its traceback in the job folder.
    In a run over several processes the line starts with the rank that saw the failure."""
    rank = f"rank {world.rank} of {world.size}: " if world.distributed else ""
    first = (str(exc).splitlines() or [""])[0]
    if isinstance(exc, (RunFailed, torch.OutOfMemoryError)):
        return rank + first
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "error.txt").write_text(traceback.format_exc())
    return f"{rank}{type(exc).__name__}: {first} (traceback in {job_dir / 'error.txt'})"


def write_job_marker(job_dir: Path, run_id: str, status: str, skipped: bool = False) -> None:
    """`run.json` in the job folder ties Hydra's output folder to the run id (the sweep summary reads
    it); `skipped`: the run had finished before, this job did not run it."""
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "run.json").write_text(json.dumps({"run_id": run_id, "status": status, "skipped": skipped}))
