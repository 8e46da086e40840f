"""The set-up and fit phases of a run: load the base model, take the probes' baselines, encode the
training set; then calibrate, apply and train the method (each candidate of an lr search on its
own copy of the base model)."""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

import methods
from harness.budget import param_budget
from harness.budget.spec import Budget
from harness.core.cache import tokenized
from harness.core.faults import fault_point
from harness.core.hashing import canonical_json
from harness.costs.footprint import PeakMemory
from harness.distributed import sharded
from harness.distributed.parallel import Parallel
from harness.models import classifier
from harness.core.paths import CONF_DIR
from harness.models.loading import ENCODER, LoadedModel, load_empty, load_model, quantize_8bit
from harness.run import lr_search
from harness.run.calibration import text_batches
from harness.run.heldout import BestState, Curve, val_loss
from harness.run.prepare import Prepared
from harness.run.tracking import Tracker
from harness.store.record import RunRecord
from harness.train import checkpoint
from harness.train.batching import batch_stream, without_kv_cache
from harness.train.encoding import collate, encode_joint, encode_pairs
from harness.train.loop import StepOptions, TrainResult, train
from harness.train.ready import ready_to_train
from methods._core.base import BuildContext


@dataclass
class Setup:
    """The base model on its device and the training set as the model consumes it."""

    loaded: LoadedModel
    model: torch.nn.Module
    device: torch.device
    encoded: list  # training items, encoded (token ids, or an encoder's classification examples)
    collate_fn: Callable  # how a micro-batch of them becomes tensors
    budget: Budget  # the run's budget, its epochs turned into steps for this pool
    tokens_per_step: float  # the mean tokens of one optimizer step: the budget's planning hint


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


def set_up(p: Prepared, device: torch.device, record: RunRecord) -> Setup:
    """Load the base model, measure the probes' baselines on it (rank 0), encode the training set."""
    train_cfg = p.run.train
    param_budget.release_models()  # the solver's copy of the base model must not count in this run's memory
    torch.manual_seed(p.run.seed)
    if _rank0_loads_only(p) and not p.world.main:  # its weights come from rank 0 once sharded
        loaded = load_empty(p.run.model, CONF_DIR, dtype=p.precision.name)
        model = loaded.model
    else:
        loaded = load_model(p.run.model, CONF_DIR, head_seed=train_cfg.init_seed, dtype=p.precision.name)
        model = loaded.model.to(device)
    record.model_json = canonical_json(loaded.identity)
    if p.world.main:  # the other ranks only train
        with p.precision.autocast():
            p.probes.baseline(model, loaded.tokenizer, loaded.identity, device)  # before the method touches it
    encoded, collate_fn = _training_set(p, loaded)
    mean_len = sum(len(x[0]) for x in encoded) / len(encoded) if encoded else 0.0  # an evaluation-only task
    budget = p.budget.for_pool(len(encoded), train_cfg.batch_size, train_cfg.grad_accum) if p.method.trains else p.budget
    return Setup(loaded, model, device, encoded, collate_fn, budget, mean_len * train_cfg.batch_size * train_cfg.grad_accum)


def fit_method(p: Prepared, s: Setup, lr: float, record: RunRecord, tracker: Tracker) -> Fitted:
    """The method fitted at `lr`, or, with train.lr_sweep, the best candidate on validation (each
    from its own copy of the base model); the search's record goes into `record`."""
    multipliers = p.run.train.lr_sweep
    if not multipliers:
        return _fit(p, s, lr, p.method, s.model, tracker)
    base = s.model
    found = lr_search.search(lr_search.grid(lr, multipliers),
                             lambda c: _fit(p, s, c, methods.build(p.run.method), copy.deepcopy(base), tracker),
                             lambda f: f.curve.kept_loss())
    record.lr, record.lr_grid, record.lr_search_time_s = found.lr, found.record(), found.time_s
    return found.fitted


def _fit(p: Prepared, s: Setup, fit_lr: float, method: methods._core.base.Method, model: torch.nn.Module,
         tracker: Tracker) -> Fitted:
    """Calibrate, apply and train one method on `model`; the same data order every time."""
    train_cfg, tok, device = p.run.train, s.loaded.tokenizer, s.device
    max_len, batch_size, data_seed = train_cfg.max_seq_len, train_cfg.batch_size, train_cfg.data_seed
    calibration_time_s = None
    if method.needs_calibration:  # a stream of its own: training order stays the same for every method
        if p.calibration_text is not None:
            stream = text_batches(tok, p.calibration_text.text, max_len, batch_size, data_seed + 1)
        else:
            stream = batch_stream(s.encoded, batch_size, tok.pad_token_id, data_seed + 1, s.collate_fn)
        start = time.perf_counter()
        method.calibrate(model, stream)
        calibration_time_s = time.perf_counter() - start
    torch.manual_seed(train_cfg.init_seed)  # the method's own init (adapter weights): seeded apart from data order
    model = method.apply(model, BuildContext(tok, s.loaded.tokenizer_path, s.loaded.kind, s.loaded.head))
    if p.run.model.load_in_8bit:  # after apply: every method wraps plain linear layers (harness/models/loading.py)
        quantize_8bit(model, device)
    ready_to_train(model, method, train_cfg.gradient_checkpointing)
    parallel = Parallel(p.world, train_cfg.strategy, from_main=_rank0_loads_only(p))
    parallel.wrap(model, device)
    score_batch = p.task.loss_batch_size()

    def validation_loss() -> float:
        with p.precision.autocast():
            return val_loss(model, tok, p.task, p.validation, score_batch, max_len, device)

    curve = Curve(validation_loss, train_cfg.eval_every, BestState(model) if train_cfg.select_best else None)
    # in-run checkpoints (harness/train/checkpoint.py): one per training, each candidate lr its own
    saved = checkpoint.open_checkpoint(train_cfg.checkpoint_every, train_cfg.checkpoint_minutes, p.run.results_dir,
                                       p.run_id, f"lr-{fit_lr!r}" if train_cfg.lr_sweep else "train", p.world)
    if saved is not None and curve.best is not None:
        parallel.refuse_sharded_best_in_checkpoints()
    if saved is not None and saved.resumed_step:
        curve.points = list(saved.resumed_extra["curve"])
        if curve.best is not None:
            curve.best.load(saved.resumed_extra["best"])
        print(f"[harness] resuming run {p.run_id} from step {saved.resumed_step} (checkpoint {saved.path})",
              file=sys.stderr)
    else:
        curve.start()
    if saved is not None:
        saved.extra = lambda: {"curve": list(curve.points), **({"best": curve.best.state()} if curve.best else {})}

    def on_step(step: int, loss: float, cur_lr: float) -> None:
        tracker.log({"train/loss": loss, "train/lr": cur_lr}, step=step)
        fault_point("mid_train")
        curve.step(step)

    with PeakMemory(device) as peak, without_kv_cache(model, train_cfg.packing):  # packed rows need it
        result = TrainResult(stop_reason="no training")
        if method.trains:
            batches = batch_stream(s.encoded, batch_size, tok.pad_token_id, data_seed, s.collate_fn,
                                   start=saved.resumed_step * train_cfg.grad_accum if saved else 0,  # micro-batches trained on
                                   group_by_length=train_cfg.group_by_length, packing=train_cfg.packing,
                                   rank=p.world.rank, world_size=p.world.size)
            result = train(model, method, batches, StepOptions.of(train_cfg), fit_lr, s.budget, device, s.tokens_per_step,
                           on_step=on_step, precision=p.precision, checkpoint=saved, parallel=parallel)
    if p.validation:
        curve.finish(result.steps)
    if curve.best is not None and (kept := curve.best.restore()) is not None:  # select_best/v1 (harness/run/heldout.py)
        print(f"[harness] train.select_best: kept the state of step {kept} of {result.steps} "
              f"(val_loss {curve.best.loss:.4f})", file=sys.stderr)
    model = parallel.unwrapped(model)  # fsdp: every rank gathers the whole model, rank 0 evaluates it unsharded
    return Fitted(method, model, result, peak, curve, calibration_time_s, saved.resumed_step if saved else 0)


def _rank0_loads_only(p: Prepared) -> bool:
    return sharded.rank0_loads_only(p.run.train.strategy, p.run.model, p.method.needs_calibration)


def _training_set(p: Prepared, loaded: LoadedModel) -> tuple[list, Callable]:
    """The training items as the model consumes them, and the function that batches them: an
    encoder's are classification examples; a causal LM's are (prompt, target) token ids with the
    loss on the target (the prompt's tokens too with train.loss_on_prompt). Their tokenization is
    cached across the runs of a sweep."""
    tok, cache_root, max_len = loaded.tokenizer, Path(p.run.results_dir) / "cache" / "tokenized", p.run.train.max_seq_len
    if loaded.kind == ENCODER:
        return p.task.examples(tok, p.data.train, max_len, cache_root), classifier.collate

    on_prompt = p.run.train.loss_on_prompt  # labels on the prompt's tokens too (train.loss_on_prompt)
    joint = p.run.train.encoding == "joint"  # one text cut from the right, as alpaca-lora (train.encoding)

    def encode(pairs):
        if joint:
            return encode_joint(tok, pairs, max_len, on_prompt)
        encoded = encode_pairs(tok, pairs, max_len, on_prompt)
        return [(ids + [tok.eos_token_id], labels + [tok.eos_token_id]) for ids, labels in encoded]

    pairs = [p.task.training_pair(x) for x in p.data.train]
    key = {"max_len": max_len, "append": "eos", **({"loss_on_prompt": True} if on_prompt else {}),
           **({"encoding": "joint"} if joint else {})}  # old cache keys kept
    return tokenized(cache_root, tok, pairs, key, encode), collate
