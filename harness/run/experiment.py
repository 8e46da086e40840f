"""One run, start to end: load, apply the method, train under the budget, evaluate, measure
forgetting and cost, write one `runs` row and its `metrics` rows."""

from __future__ import annotations

import copy
import datetime as dt
import json
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf

import methods
from harness import __version__, tasks
from harness.budget import param_budget
from harness.budget.spec import Budget
from harness.budget.step_time import check_time_budget
from harness.config.identity import experiment_of, run_id
from harness.core.cache import tokenized
from harness.core.errors import HarnessError, RunFailed
from harness.core.faults import fault_point
from harness.core.hashing import canonical_json
from harness.core.memo import memoized
from harness.core.metrics import Metric
from harness.core.paths import CONF_DIR
from harness.core.provenance import git_state, versions
from harness.costs.flops import flops_metrics
from harness.costs.footprint import (PeakMemory, extra_prompt_tokens, memory_cap_check, memory_split, parameter_counts,
                                     stored_parameter_count)
from harness.costs.hardware import gpu_hours, hardware
from harness.costs.latency import latency_metric, ms_per_token
from harness.distributed.parallel import Parallel, rank_peak_metrics, resolve_strategy
from harness.distributed.world import World
from harness.models import classifier, encoder_rules
from harness.models.loading import ENCODER, LoadedModel, check_available, load_model, model_kind
from harness.models.precision import Precision, resolve_dtype, slower_half_notice
from harness.probes.composite import Probes, build_probes
from harness.run import lr_search
from harness.run.calibration import GeneralText, load_general_text, text_batches
from harness.run.heldout import Curve, carve, curve_metrics, val_loss
from harness.run.tracking import Tracker
from harness.store.result_store import ResultStore
from harness.tasks.base import EvalContext, TaskData
from harness.train.encoding import collate, encode_pairs
from harness.train import activation_checkpointing, checkpoint
from harness.train.batching import batch_stream, check_packing, padding_metric, without_kv_cache
from harness.train.loop import TrainResult, train
from harness.train.ready import ready_to_train
from methods._core.base import BuildContext


@dataclass
class Prepared:
    """A run whose config is validated and whose identity is known, before anything heavy."""

    cfg: DictConfig
    method: methods._core.base.Method
    budget: Budget
    task: tasks.Task
    data: TaskData
    experiment: dict
    run_id: str
    precision: Precision  # the base weights' dtype and the autocast of every forward pass
    world: World  # the processes sharing this run (torchrun / accelerate launch); one for a plain launch
    params: param_budget.ParamSolution | None = None  # the parameter budget's solution, if it has one
    probes: Probes | None = None  # forgetting probes and target gain, their data loaded (a miss is a HarnessError here)
    validation: list[dict] = field(default_factory=list)  # items carved from the training pool (harness/run/heldout.py)
    calibration_text: GeneralText | None = None  # when the method calibrates on general text

    def data_identity(self) -> dict:
        return data_identity(self.data, self.calibration_text)


def data_identity(data: TaskData, calibration_text: GeneralText | None) -> dict:
    """The task data's identity, plus the calibration text's when the method reads one: both are in
    the run id and the run's data_json."""
    return data.identity if calibration_text is None else {**data.identity, "calibration": calibration_text.identity}


@dataclass
class Fitted:
    """One trained candidate: the method, its model, how training went and what it cost."""

    method: methods._core.base.Method
    model: torch.nn.Module
    result: TrainResult
    peak: PeakMemory
    curve: Curve
    calibration_time_s: float | None  # a calibrated method's look at data before training (not in train time)
    resumed_from_step: int = 0  # the in-run checkpoint it went on from (harness/train/checkpoint.py); 0: none


def plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def prepare(cfg: DictConfig) -> Prepared:
    """Validate everything a run needs (raises HarnessError) and compute its run id."""
    method = methods.build(OmegaConf.to_container(cfg.method, resolve=True))
    budget = Budget.from_config(plain(cfg.budget))  # a dict reads faster than a DictConfig
    memoized("model_available", plain(cfg.model), lambda: check_available(cfg.model, CONF_DIR))  # once per preflight
    device = pick_device(cfg.device)
    # `auto` resolved once, here: the run id, config_json and every component see the dtype the run loads
    cfg.model.dtype = resolve_dtype(cfg.model.dtype, device)
    precision = Precision.of(cfg.model.dtype, device, cfg.train.precision)  # HarnessError if they contradict
    slower_half_notice(precision, device)
    if cfg.train.gradient_checkpointing and (refused := activation_checkpointing.refusal(method)):
        raise refused
    world = World.from_env()
    if int(cfg.train.world_size) != world.size:
        raise HarnessError(f"train.world_size={cfg.train.world_size} but this process is one of {world.size} "
                           f"(WORLD_SIZE={world.size}); leave train.world_size alone: the launcher sets it")
    cfg.train.strategy = resolve_strategy(cfg.train.strategy, method, world)  # `none` for one process
    task = tasks.build(OmegaConf.to_container(cfg.task, resolve=True))
    if model_kind(cfg.model) == ENCODER:  # before any model loads: it sets the head's size in cfg.model
        task = encoder_rules.adapt(cfg, task, method)
    check_packing(bool(cfg.train.get("packing", False)), method, model_kind(cfg.model), cfg.model.name)
    params = param_budget.match(cfg, budget, CONF_DIR)  # sets the method's size knob; HarnessError if infeasible
    if params is not None and params.knob is not None:
        method = methods.build(OmegaConf.to_container(cfg.method, resolve=True))
    if method.trains:
        check_time_budget(cfg, budget, CONF_DIR, device)  # HarnessError if no step fits
    data_cfg, task_key = plain(cfg.data), [type(task).__qualname__, plain(task.cfg)]
    data = memoized("task_data", [task_key, data_cfg], lambda: task.load(data_cfg))  # harness/core/memo.py
    validation: list[dict] = []
    if cfg.train.get("lr_sweep") and not method.trains:
        raise HarnessError(f"train.lr_sweep searches a learning rate, and method {method.name} does not train; "
                           "drop train.lr_sweep for it")
    if cfg.train.get("eval_every") or cfg.train.get("lr_sweep"):  # both need held-out training items
        n_val = int(cfg.train.get("val_items", 64))
        data, validation = memoized("carve", [data.identity, n_val], lambda: carve(data, n_val))
        lr_search.grid(method.config.lr, list(cfg.train.get("lr_sweep") or []))  # HarnessError for a bad grid
    probe_args = (plain(cfg.forgetting), data_cfg, Path(cfg.results_dir) / "cache" / "forgetting", CONF_DIR, task, data,
                  int(cfg.train.max_seq_len))
    probes = memoized("probes", [*probe_args[:4], task_key, data.identity, probe_args[6]], lambda: build_probes(*probe_args))
    calibration_text = None
    if method.needs_calibration and method.calibration_data() == "general_text":
        text_cfg = plain(cfg.forgetting.general_text)
        calibration_text = memoized("general_text", [text_cfg, data_cfg], lambda: load_general_text(text_cfg, data_cfg))
    experiment = experiment_of(plain(cfg))
    return Prepared(cfg, method, budget, task, data, experiment, run_id(experiment, data_identity(data, calibration_text)),
                    precision, world, params, probes, validation, calibration_text)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def execute(p: Prepared, job_dir: Path) -> tuple[dict[str, Any], list[dict]]:
    """Run a prepared experiment and store it. Returns its runs row (finished or failed) and metric rows."""
    cfg = p.cfg
    store = ResultStore(cfg.results_dir)
    world = p.world
    device = world.join(pick_device(cfg.device))  # this rank's device, once the ranks have met
    lr = float(cfg.train.lr if cfg.train.lr is not None else p.method.config.lr)
    sha, dirty = git_state()
    machine = {**hardware(device), **({"world_size": world.size} if world.distributed else {})}
    row: dict[str, Any] = {
        "run_id": p.run_id, "status": "running", "error": None,
        "sweep": cfg.sweep_name, "sweep_dir": str(job_dir.parent), "job_dir": str(job_dir),
        "method": p.method.name, "model": cfg.model.name, "task": p.data.name, "budget": p.budget.name,
        "seed": int(cfg.seed), "data_seed": int(cfg.train.data_seed), "init_seed": int(cfg.train.init_seed),
        "lr": lr, "device": str(device), "hardware_json": canonical_json(machine),
        "memory_cap_bytes": p.budget.max_memory_bytes,
        **({"target_params": p.params.target, "param_knob": p.params.knob, "param_knob_value": p.params.value}
           if p.params else {}),
        "config_json": canonical_json(OmegaConf.to_container(cfg, resolve=True)),
        "data_json": canonical_json(p.data_identity()), "versions_json": canonical_json(versions()),
        "git_sha": sha, "git_dirty": dirty, "harness_version": __version__,
        "started_at": dt.datetime.now(dt.timezone.utc),
    }
    tracker = Tracker(cfg.wandb if world.main else {"enabled": False}, p.run_id, cfg.sweep_name,
                      [p.method.name, cfg.model.name, p.data.name, p.budget.name], p.experiment, str(job_dir))
    metric_rows: list[dict] = []
    samples: list[dict] = []
    try:
        with world.sigterm_fails_the_run():
            metric_rows, samples = _train_and_evaluate(p, row, lr, device, job_dir, tracker)
        row["status"] = "finished"
    except Exception as exc:  # NaN loss, out of memory, or a bug: this run fails, the sweep goes on
        if not world.main:
            raise  # its launcher ends the run; rank 0 sees a rank go and writes the failed row
        row["status"], row["error"] = "failed", failure_message(exc, job_dir, world)
        metric_rows, samples = [], []  # a failed run leaves no metrics behind, only its runs row
    if not world.main:
        return row, []
    row["ended_at"] = dt.datetime.now(dt.timezone.utc)
    row["gpu_hours"] = gpu_hours((row["ended_at"] - row["started_at"]).total_seconds(), machine, world.size)
    store.write(row, metric_rows, samples if cfg.eval.log_samples else ())
    # After the runs row: a kill before it still finds them. A failed run keeps them, so that its
    # rerun (after a rank died, or a node went) resumes.
    if row["status"] == "finished" and not cfg.train.get("keep_checkpoints"):
        checkpoint.discard(cfg.results_dir, p.run_id)
    tracker.finish(row, metric_rows)
    return row, metric_rows


def _train_and_evaluate(p: Prepared, row: dict, lr: float, device: torch.device, job_dir: Path,
                        tracker: Tracker) -> tuple[list[dict], list[dict]]:
    cfg = p.cfg
    param_budget.release_models()  # the solver's copy of the base model must not count in this run's memory
    torch.manual_seed(int(cfg.seed))
    loaded = load_model(cfg.model, CONF_DIR, head_seed=int(cfg.train.init_seed), dtype=p.precision.name)
    autocast = p.precision.autocast  # every forward pass of the run: training, evaluation, probes, latency
    model, tok = loaded.model.to(device), loaded.tokenizer
    row["model_json"] = canonical_json(loaded.identity)

    max_len = int(cfg.train.max_seq_len)
    probes = p.probes
    if p.world.main:  # the other ranks only train
        with autocast():
            probes.baseline(model, tok, loaded.identity, device)  # the base model: before the method touches it

    encoded, collate_fn = _training_set(p, loaded, max_len)
    batch_size, data_seed, accum = int(cfg.train.batch_size), int(cfg.train.data_seed), int(cfg.train.grad_accum)
    mean_len = sum(len(x[0]) for x in encoded) / len(encoded)
    hint = mean_len * batch_size * accum
    budget = p.budget.for_pool(len(encoded), batch_size, accum)
    every = int(cfg.train.get("eval_every") or 0)
    grouped, packing = bool(cfg.train.get("group_by_length", False)), bool(cfg.train.get("packing", False))
    score_batch = int(cfg.task.get("score_batch_size", 8))

    def fit(fit_lr: float, method: methods._core.base.Method, model: torch.nn.Module) -> Fitted:
        """Calibrate, apply and train one method on `model`; the same data order every time."""
        calibration_time_s = None
        if method.needs_calibration:  # a stream of its own: training order stays the same for every method
            if p.calibration_text is not None:
                stream = text_batches(tok, p.calibration_text.text, max_len, batch_size, data_seed + 1)
            else:
                stream = batch_stream(encoded, batch_size, tok.pad_token_id, data_seed + 1, collate_fn)
            start = time.perf_counter()
            method.calibrate(model, stream)
            calibration_time_s = time.perf_counter() - start
        torch.manual_seed(int(cfg.train.init_seed))  # the method's own init (adapter weights): seeded apart from data order
        model = method.apply(model, BuildContext(tok, loaded.tokenizer_path, loaded.kind, loaded.head))
        ready_to_train(model, method, bool(cfg.train.gradient_checkpointing))
        parallel = Parallel(p.world, cfg.train.strategy)
        parallel.wrap(model, device)

        def validation_loss() -> float:
            with autocast():
                return val_loss(model, tok, p.task, p.validation, score_batch, max_len, device)

        curve = Curve(validation_loss, every)
        # in-run checkpoints (harness/train/checkpoint.py): one per training, each candidate lr its own
        saved = checkpoint.open_checkpoint(cfg.train, cfg.results_dir, p.run_id,
                                           f"lr-{fit_lr!r}" if cfg.train.get("lr_sweep") else "train", p.world)
        if saved is not None and saved.resumed_step:
            curve.points = list(saved.resumed_extra["curve"])
            print(f"[harness] resuming run {p.run_id} from step {saved.resumed_step} (checkpoint {saved.path})",
                  file=sys.stderr)
        else:
            curve.start()
        if saved is not None:
            saved.extra = lambda: {"curve": list(curve.points)}

        def on_step(s: int, loss: float, cur_lr: float) -> None:
            tracker.log({"train/loss": loss, "train/lr": cur_lr}, step=s)
            fault_point("mid_train")
            curve.step(s)

        batches = batch_stream(encoded, batch_size, tok.pad_token_id, data_seed, collate_fn,
                               start=saved.resumed_step * accum if saved else 0,  # micro-batches already trained on
                               group_by_length=grouped, packing=packing, rank=p.world.rank, world_size=p.world.size)
        with PeakMemory(device) as peak, without_kv_cache(model, packing):  # packed rows need it (train/batching.py)
            result = (train(model, method, batches, cfg.train, fit_lr, budget, device, hint, on_step=on_step,
                            precision=p.precision, checkpoint=saved, parallel=parallel)
                      if method.trains else TrainResult(stop_reason="no training"))
        if p.validation:
            curve.finish(result.steps)
        return Fitted(method, model, result, peak, curve, calibration_time_s, saved.resumed_step if saved else 0)

    multipliers = list(cfg.train.get("lr_sweep") or [])
    if multipliers:  # every candidate starts from its own copy of the base model
        base = model
        found = lr_search.search(lr_search.grid(lr, multipliers),
                                 lambda c: fit(c, methods.build(plain(cfg.method)), copy.deepcopy(base)),
                                 lambda f: f.curve.points[-1][1])
        del base
        fitted, lr = found.fitted, found.lr
        row.update(lr=lr, lr_grid=found.record(), lr_search_time_s=found.time_s)
    else:
        fitted = fit(lr, p.method, model)
    method, model, result, peak = fitted.method, fitted.model, fitted.result, fitted.peak
    rank_peaks = p.world.gather(peak.peak_bytes)
    if not p.world.main:
        p.world.barrier()  # while rank 0 evaluates, saves and writes
        return [], []
    trainable, total = parameter_counts(model)
    row.update(trainable_params=trainable, total_params=total, trainable_pct=100.0 * trainable / total)
    row.update(peak_mem_bytes=max(rank_peaks), peak_mem_kind=peak.kind, train_time_s=result.time_s,
               calibration_time_s=fitted.calibration_time_s,
               train_steps=result.steps, train_tokens=result.tokens, stop_reason=result.stop_reason,
               tokens_per_s=result.tokens / result.time_s if result.time_s > 0 else None,
               within_memory_cap=memory_cap_check(peak.peak_bytes, budget.max_memory_bytes))
    costs = memory_split(model, result.optimizer_bytes, peak, "cost")
    costs += padding_metric(result.tokens, result.positions)
    costs += flops_metrics(model, trainable, method.training_step is not None, result.tokens, result.sequences,
                           extra_prompt_tokens(model), result.steps, "cost")
    costs += curve_metrics(fitted.curve.points, float(cfg.train.get("steps_to_target_fraction", 0.9)), p.data.name,
                           len(p.validation))
    costs += checkpoint.resumed_metric(fitted.resumed_from_step)  # its peak memory covers the resumed part only
    costs += rank_peak_metrics(rank_peaks)

    row["adapter_bytes"] = method.save(model, job_dir / "adapter")
    row["stored_params"] = stored_parameter_count(job_dir / "adapter")
    with autocast():
        costs += _latency(model, tok, device, int(cfg.eval.get("latency_tokens", 0)), "unmerged")
    eval_start = time.perf_counter()
    merged = cfg.eval.merge_adapters and method.mergeable
    if merged:
        method.merge(model)
    ctx = EvalContext(model, tok, device, max_len)
    with autocast():
        metrics = p.task.evaluate(ctx, p.data)
        fault_point("mid_eval")
        if ctx.identity:
            row["data_json"] = canonical_json({**p.data_identity(), "evaluation": ctx.identity})
        metrics += probes.measure(model, tok, device, metrics, ctx.samples)
        row["eval_time_s"] = time.perf_counter() - eval_start
        if merged:  # timed after the evaluation, so that eval_time_s stays evaluation only
            costs += _latency(model, tok, device, int(cfg.eval.get("latency_tokens", 0)), "merged")

    tracker.log({f"{m.task}/{m.metric}": m.value for m in metrics})
    curve = [Metric(p.data.name, "train_loss", loss, None, 1, False, "train_loss/v1", step) for step, loss in result.losses]
    p.world.barrier()  # the other ranks end with the run
    return [m.row() for m in metrics + costs + curve], ctx.samples


def _training_set(p: Prepared, loaded: LoadedModel, max_len: int) -> tuple[list, Callable]:
    """The training items as the model consumes them, and the function that batches them: an
    encoder's are classification examples; a causal LM's are (prompt, target) token ids with the
    loss on the target. Their tokenization is cached across the runs of a sweep."""
    tok, cache_root = loaded.tokenizer, Path(p.cfg.results_dir) / "cache" / "tokenized"
    if loaded.kind == ENCODER:
        return p.task.examples(tok, p.data.train, max_len, cache_root), classifier.collate

    def encode(pairs):
        encoded = encode_pairs(tok, pairs, max_len)
        return [(ids + [tok.eos_token_id], labels + [tok.eos_token_id]) for ids, labels in encoded]

    pairs = [p.task.training_pair(x) for x in p.data.train]
    return tokenized(cache_root, tok, pairs, {"max_len": max_len, "append": "eos"}, encode), collate


def _latency(model, tok, device: torch.device, n_tokens: int, which: str) -> list[Metric]:
    """Latency rows (harness/costs/latency.py), plus the virtual tokens prompt methods add; none when
    `eval.latency_tokens` is 0."""
    if n_tokens <= 0:
        return []
    rows = [latency_metric("cost", which, ms_per_token(model, tok, device, n_tokens), n_tokens)]
    if which == "unmerged":
        rows.append(Metric("cost", "prompt_extra_tokens", float(extra_prompt_tokens(model)), None, 1, False,
                           "cost/latency/v1"))
    return rows


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


def write_job_marker(job_dir: Path, run_id: str, status: str) -> None:
    """`run.json` in the job folder ties Hydra's output folder to the run id (the sweep summary reads it)."""
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "run.json").write_text(json.dumps({"run_id": run_id, "status": status}))
