"""One run, start to end: load, apply the method, train under the budget, evaluate, measure
forgetting and cost, write one `runs` row and its `metrics` rows."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import methods
from harness import __version__, tasks
from harness.budget import Budget
from harness.costs import PeakMemory, parameter_counts
from harness.encoding import encode_pair
from harness.errors import RunFailed
from harness.forgetting import build_probe
from harness.hashing import canonical_json
from harness.identity import experiment_of, run_id
from harness.metrics import Metric
from harness.models import check_available, load_model
from harness.provenance import git_state, versions
from harness.store import ResultStore
from harness.tasks.base import EvalContext, TaskData
from harness.tracking import Tracker
from harness.train import batch_stream, train
from methods.base import BuildContext

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"



@dataclass
class Prepared:
    """A run whose config is validated and whose identity is known, before anything heavy."""

    cfg: DictConfig
    method: methods.base.Method
    budget: Budget
    task: tasks.Task
    data: TaskData
    experiment: dict
    run_id: str


def plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def prepare(cfg: DictConfig) -> Prepared:
    """Validate everything a run needs (raises HarnessError) and compute its run id."""
    method = methods.build(OmegaConf.to_container(cfg.method, resolve=True))
    budget = Budget.from_config(cfg.budget)
    check_available(cfg.model, CONF_DIR)
    task = tasks.build(OmegaConf.to_container(cfg.task, resolve=True))
    data = task.load(OmegaConf.to_container(cfg.data, resolve=True))
    experiment = experiment_of({k: plain(v) for k, v in cfg.items()})
    return Prepared(cfg, method, budget, task, data, experiment, run_id(experiment, data.identity))


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def execute(p: Prepared, job_dir: Path) -> tuple[dict[str, Any], list[dict]]:
    """Run a prepared experiment and store it. Returns its runs row (finished or failed) and metric rows."""
    cfg = p.cfg
    store = ResultStore(cfg.results_dir)
    device = pick_device(cfg.device)
    lr = float(cfg.train.lr if cfg.train.lr is not None else p.method.config.lr)
    sha, dirty = git_state()
    row: dict[str, Any] = {
        "run_id": p.run_id, "status": "running", "error": None,
        "sweep": cfg.sweep_name, "sweep_dir": str(job_dir.parent), "job_dir": str(job_dir),
        "method": p.method.name, "model": cfg.model.name, "task": p.data.name, "budget": p.budget.name,
        "seed": int(cfg.seed), "lr": lr, "device": str(device),
        "config_json": canonical_json(OmegaConf.to_container(cfg, resolve=True)),
        "data_json": canonical_json(p.data.identity), "versions_json": canonical_json(versions()),
        "git_sha": sha, "git_dirty": dirty, "harness_version": __version__,
        "started_at": dt.datetime.now(dt.timezone.utc),
    }
    tracker = Tracker(cfg.wandb, p.run_id, cfg.sweep_name,
                      [p.method.name, cfg.model.name, p.data.name, p.budget.name], p.experiment, str(job_dir))
    metric_rows: list[dict] = []
    samples: list[dict] = []
    try:
        metric_rows, samples = _train_and_evaluate(p, row, lr, device, job_dir, tracker)
        row["status"] = "finished"
    except (RunFailed, torch.OutOfMemoryError) as exc:
        row["status"], row["error"] = "failed", str(exc).splitlines()[0]
        metric_rows, samples = [], []  # a failed run leaves no metrics behind, only its runs row
    row["ended_at"] = dt.datetime.now(dt.timezone.utc)
    store.write(row, metric_rows, samples if cfg.eval.log_samples else ())
    tracker.finish({m["metric"]: m["value"] for m in metric_rows if m["step"] is None}, row["status"] != "finished")
    return row, metric_rows


def _train_and_evaluate(p: Prepared, row: dict, lr: float, device: torch.device, job_dir: Path,
                        tracker: Tracker) -> tuple[list[dict], list[dict]]:
    cfg = p.cfg
    torch.manual_seed(int(cfg.seed))
    loaded = load_model(cfg.model, CONF_DIR)
    model, tok = loaded.model.to(device), loaded.tokenizer
    row["model_json"] = canonical_json(loaded.identity)

    probe = build_probe(cfg.forgetting, cfg.data, Path(cfg.results_dir) / "cache" / "forgetting")
    if probe is not None:
        probe.baseline(model, tok, loaded.identity, device)

    max_len = int(cfg.train.max_seq_len)
    encoded = [encode_pair(tok, *p.task.training_pair(x), max_len) for x in p.data.train]
    encoded = [(ids + [tok.eos_token_id], labels + [tok.eos_token_id]) for ids, labels in encoded]
    batch_size, data_seed = int(cfg.train.batch_size), int(cfg.train.data_seed)
    batches = batch_stream(encoded, batch_size, tok.pad_token_id, data_seed)
    if p.method.needs_calibration:  # a stream of its own: training order stays the same for every method
        p.method.calibrate(model, batch_stream(encoded, batch_size, tok.pad_token_id, data_seed + 1))

    torch.manual_seed(int(cfg.seed))  # the method's own init (adapter weights) depends on the seed only
    model = p.method.apply(model, BuildContext(tok, loaded.tokenizer_path))
    trainable, total = parameter_counts(model)
    row.update(trainable_params=trainable, total_params=total, trainable_pct=100.0 * trainable / total)

    mean_len = sum(len(ids) for ids, _ in encoded) / len(encoded)
    hint = mean_len * batch_size * int(cfg.train.grad_accum)
    with PeakMemory(device) as peak:
        result = train(model, p.method, batches, cfg.train, lr, p.budget, device, hint,
                       on_step=lambda s, loss, cur_lr: tracker.log({"train/loss": loss, "train/lr": cur_lr}, step=s))
    row.update(peak_mem_bytes=peak.peak_bytes, peak_mem_kind=peak.kind, train_time_s=result.time_s,
               train_steps=result.steps, train_tokens=result.tokens, stop_reason=result.stop_reason,
               tokens_per_s=result.tokens / result.time_s if result.time_s > 0 else None)

    row["adapter_bytes"] = p.method.save(model, job_dir / "adapter")
    eval_start = time.perf_counter()
    if cfg.eval.merge_adapters and p.method.mergeable:
        p.method.merge(model)
    ctx = EvalContext(model, tok, device, max_len)
    metrics = p.task.evaluate(ctx, p.data)
    if probe is not None:
        metrics += probe.measure(model, tok, device)
    row["eval_time_s"] = time.perf_counter() - eval_start

    tracker.log({f"{m.task}/{m.metric}": m.value for m in metrics})
    curve = [Metric(p.data.name, "train_loss", loss, None, 1, False, "train_loss/v1", step) for step, loss in result.losses]
    return [m.row() for m in metrics + curve], ctx.samples


def write_job_marker(job_dir: Path, run_id: str, status: str) -> None:
    """`run.json` in the job folder ties Hydra's output folder to the run id (the sweep summary reads it)."""
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "run.json").write_text(json.dumps({"run_id": run_id, "status": status}))
