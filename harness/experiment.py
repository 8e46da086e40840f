"""One run, start to end: load, apply the method, train under the budget, evaluate, measure
forgetting and cost, write one `runs` row and its `metrics` rows."""

from __future__ import annotations

import datetime as dt
import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import methods
from harness import __version__, param_budget, tasks
from harness.budget import Budget
from harness.cache import tokenized
from harness.costs import (PeakMemory, extra_prompt_tokens, memory_cap_check, memory_split, parameter_counts,
                           stored_parameter_count)
from harness.encoding import encode_pairs
from harness.errors import RunFailed
from harness.faults import fault_point
from harness.flops import flops_metrics
from harness.forgetting import build_probes
from harness.hashing import canonical_json
from harness.identity import experiment_of, run_id
from harness.latency import latency_metric, ms_per_token
from harness.metrics import Metric
from harness.models import check_available, load_model
from harness.provenance import git_state, versions
from harness.store import ResultStore
from harness.step_time import check_time_budget
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
    params: param_budget.ParamSolution | None = None  # the parameter budget's solution, if it has one


def plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def prepare(cfg: DictConfig) -> Prepared:
    """Validate everything a run needs (raises HarnessError) and compute its run id."""
    method = methods.build(OmegaConf.to_container(cfg.method, resolve=True))
    budget = Budget.from_config(cfg.budget)
    check_available(cfg.model, CONF_DIR)
    params = param_budget.match(cfg, budget, CONF_DIR)  # sets the method's size knob; HarnessError if infeasible
    if params is not None and params.knob is not None:
        method = methods.build(OmegaConf.to_container(cfg.method, resolve=True))
    check_time_budget(cfg, budget, CONF_DIR, pick_device(cfg.device))  # HarnessError if no step fits
    task = tasks.build(OmegaConf.to_container(cfg.task, resolve=True))
    data = task.load(OmegaConf.to_container(cfg.data, resolve=True))
    experiment = experiment_of({k: plain(v) for k, v in cfg.items()})
    return Prepared(cfg, method, budget, task, data, experiment, run_id(experiment, data.identity), params)


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
        "seed": int(cfg.seed), "data_seed": int(cfg.train.data_seed), "init_seed": int(cfg.train.init_seed),
        "lr": lr, "device": str(device), "memory_cap_bytes": p.budget.max_memory_bytes,
        **({"target_params": p.params.target, "param_knob": p.params.knob, "param_knob_value": p.params.value}
           if p.params else {}),
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
    except Exception as exc:  # NaN loss, out of memory, or a bug: this run fails, the sweep goes on
        row["status"], row["error"] = "failed", failure_message(exc, job_dir)
        metric_rows, samples = [], []  # a failed run leaves no metrics behind, only its runs row
    row["ended_at"] = dt.datetime.now(dt.timezone.utc)
    store.write(row, metric_rows, samples if cfg.eval.log_samples else ())
    tracker.finish(row, metric_rows)
    return row, metric_rows


def _train_and_evaluate(p: Prepared, row: dict, lr: float, device: torch.device, job_dir: Path,
                        tracker: Tracker) -> tuple[list[dict], list[dict]]:
    cfg = p.cfg
    param_budget.release_models()  # the solver's copy of the base model must not count in this run's memory
    torch.manual_seed(int(cfg.seed))
    loaded = load_model(cfg.model, CONF_DIR)
    model, tok = loaded.model.to(device), loaded.tokenizer
    row["model_json"] = canonical_json(loaded.identity)

    max_len = int(cfg.train.max_seq_len)
    probes = build_probes(plain(cfg.forgetting), plain(cfg.data), Path(cfg.results_dir) / "cache" / "forgetting",
                          CONF_DIR, p.task, p.data, max_len)
    probes.baseline(model, tok, loaded.identity, device)  # the base model: before the method touches it

    def encode(pairs):
        encoded = encode_pairs(tok, pairs, max_len)
        return [(ids + [tok.eos_token_id], labels + [tok.eos_token_id]) for ids, labels in encoded]

    encoded = tokenized(Path(cfg.results_dir) / "cache" / "tokenized", tok, [p.task.training_pair(x) for x in p.data.train],
                        {"max_len": max_len, "append": "eos"}, encode)
    batch_size, data_seed = int(cfg.train.batch_size), int(cfg.train.data_seed)
    batches = batch_stream(encoded, batch_size, tok.pad_token_id, data_seed)
    if p.method.needs_calibration:  # a stream of its own: training order stays the same for every method
        p.method.calibrate(model, batch_stream(encoded, batch_size, tok.pad_token_id, data_seed + 1))

    torch.manual_seed(int(cfg.train.init_seed))  # the method's own init (adapter weights): seeded apart from data order
    model = p.method.apply(model, BuildContext(tok, loaded.tokenizer_path))
    trainable, total = parameter_counts(model)
    row.update(trainable_params=trainable, total_params=total, trainable_pct=100.0 * trainable / total)

    mean_len = sum(len(ids) for ids, _ in encoded) / len(encoded)
    hint = mean_len * batch_size * int(cfg.train.grad_accum)
    budget = p.budget.for_pool(len(encoded), batch_size, int(cfg.train.grad_accum))
    with PeakMemory(device) as peak:
        result = train(model, p.method, batches, cfg.train, lr, budget, device, hint,
                       on_step=lambda s, loss, cur_lr: (tracker.log({"train/loss": loss, "train/lr": cur_lr}, step=s),
                                                         fault_point("mid_train")))
    row.update(peak_mem_bytes=peak.peak_bytes, peak_mem_kind=peak.kind, train_time_s=result.time_s,
               train_steps=result.steps, train_tokens=result.tokens, stop_reason=result.stop_reason,
               tokens_per_s=result.tokens / result.time_s if result.time_s > 0 else None,
               within_memory_cap=memory_cap_check(peak.peak_bytes, budget.max_memory_bytes))
    costs = memory_split(model, result.optimizer_bytes, peak, "cost")
    costs += flops_metrics(model, trainable, p.method.training_step is not None, result.tokens, result.sequences,
                           extra_prompt_tokens(model), result.steps, "cost")

    row["adapter_bytes"] = p.method.save(model, job_dir / "adapter")
    row["stored_params"] = stored_parameter_count(job_dir / "adapter")
    costs += _latency(model, tok, device, int(cfg.eval.get("latency_tokens", 0)), "unmerged")
    eval_start = time.perf_counter()
    if cfg.eval.merge_adapters and p.method.mergeable:
        p.method.merge(model)
        costs += _latency(model, tok, device, int(cfg.eval.get("latency_tokens", 0)), "merged")
    ctx = EvalContext(model, tok, device, max_len)
    metrics = p.task.evaluate(ctx, p.data)
    fault_point("mid_eval")
    if ctx.identity:
        row["data_json"] = canonical_json({**p.data.identity, "evaluation": ctx.identity})
    metrics += probes.measure(model, tok, device, metrics, ctx.samples)
    row["eval_time_s"] = time.perf_counter() - eval_start

    tracker.log({f"{m.task}/{m.metric}": m.value for m in metrics})
    curve = [Metric(p.data.name, "train_loss", loss, None, 1, False, "train_loss/v1", step) for step, loss in result.losses]
    return [m.row() for m in metrics + costs + curve], ctx.samples


def _latency(model, tok, device: torch.device, n_tokens: int, which: str) -> list[Metric]:
    """Latency rows (harness/latency.py), plus the virtual tokens prompt methods add; none when
    `eval.latency_tokens` is 0."""
    if n_tokens <= 0:
        return []
    rows = [latency_metric("cost", which, ms_per_token(model, tok, device, n_tokens), n_tokens)]
    if which == "unmerged":
        rows.append(Metric("cost", "prompt_extra_tokens", float(extra_prompt_tokens(model)), None, 1, False,
                           "cost/latency/v1"))
    return rows


def failure_message(exc: BaseException, job_dir: Path) -> str:
    """One line for the runs row; an unexpected exception also leaves its traceback in the job folder."""
    first = (str(exc).splitlines() or [""])[0]
    if isinstance(exc, (RunFailed, torch.OutOfMemoryError)):
        return first
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "error.txt").write_text(traceback.format_exc())
    return f"{type(exc).__name__}: {first} (traceback in {job_dir / 'error.txt'})"


def write_job_marker(job_dir: Path, run_id: str, status: str) -> None:
    """`run.json` in the job folder ties Hydra's output folder to the run id (the sweep summary reads it)."""
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "run.json").write_text(json.dumps({"run_id": run_id, "status": status}))
