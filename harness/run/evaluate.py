"""The last phases of a run, on rank 0: record what training cost, save the method, time latency,
merge, evaluate the task, measure learning and forgetting against the base model. In a run whose
evaluation is sharded (`Prepared.eval_world`), the other ranks merge too and score their share of
the task's items (`score_share`) for rank 0's evaluation; the probes run on rank 0 (docs/distributed.md)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from harness.core.faults import fault_point
from harness.core.hashing import canonical_json
from harness.core.metrics import Metric
from harness.costs.flops import flops_metrics
from harness.costs.footprint import extra_prompt_tokens, memory_cap_check, memory_split, parameter_counts, stored_parameter_count
from harness.costs.latency import latency_metric, ms_per_token
from harness.distributed.parallel import rank_peak_metrics
from harness.run.fit import Fitted, Setup
from harness.run.heldout import curve_metrics
from harness.run.prepare import Prepared
from harness.store.record import RunRecord
from harness.tasks.base import EvalContext
from harness.train import checkpoint
from harness.train.batching import padding_metric


def training_costs(p: Prepared, fitted: Fitted, rank_peaks: list[int], record: RunRecord) -> list[Metric]:
    """The runs columns of training (parameters, memory, time, tokens) and its cost metric rows."""
    method, model, result, peak = fitted.method, fitted.model, fitted.result, fitted.peak
    trainable, total = parameter_counts(model)
    record.trainable_params, record.total_params, record.trainable_pct = trainable, total, 100.0 * trainable / total
    record.peak_mem_bytes, record.peak_mem_kind = max(rank_peaks), peak.kind
    record.train_time_s, record.calibration_time_s = result.time_s, fitted.calibration_time_s
    record.train_steps, record.train_tokens, record.stop_reason = result.steps, result.tokens, result.stop_reason
    record.tokens_per_s = result.tokens / result.time_s if result.time_s > 0 else None
    record.within_memory_cap = memory_cap_check(peak.peak_bytes, p.budget.max_memory_bytes)
    costs = memory_split(model, result.optimizer_bytes, peak, "cost")
    costs += padding_metric(result.tokens, result.positions)
    costs += flops_metrics(model, trainable, method.training_step is not None, result.tokens, result.sequences,
                           extra_prompt_tokens(model), result.steps, "cost")
    costs += curve_metrics(fitted.curve.points, p.run.train.steps_to_target_fraction, p.data.name, len(p.validation))
    costs += checkpoint.resumed_metric(fitted.resumed_from_step)  # its peak memory covers the resumed part only
    costs += rank_peak_metrics(rank_peaks)
    if p.run.train.loss_scaling == "dynamic":  # fp16 steps skipped for overflowing gradients (harness/train/loop.py)
        costs.append(Metric("cost", "skipped_steps", float(result.skipped_steps), None, result.steps, False,
                            "cost/skipped_steps/v1"))
    return costs


def evaluate(p: Prepared, s: Setup, fitted: Fitted, record: RunRecord, job_dir: Path) -> tuple[list[Metric], list[Metric], list[dict]]:
    """Save the method, then evaluate the tuned model: (task and probe metrics, latency rows, samples)."""
    method, model, tok, device = fitted.method, fitted.model, s.loaded.tokenizer, s.device
    record.adapter_bytes = method.save(model, job_dir / "adapter")
    record.stored_params = stored_parameter_count(job_dir / "adapter")
    latency_tokens = p.run.eval.latency_tokens
    with p.precision.autocast():
        costs = _latency(model, tok, device, latency_tokens, "unmerged")
    eval_start = time.perf_counter()
    merged = _merge(p, fitted)
    ctx = _context(p, s, model)
    with p.precision.autocast():
        metrics = p.task.evaluate(ctx, p.data)
        fault_point("mid_eval")
        if ctx.identity:
            record.data_json = canonical_json({**p.data_identity(), "evaluation": ctx.identity})
        metrics += p.probes.measure(model, tok, device, metrics, ctx.samples)
        record.eval_time_s = time.perf_counter() - eval_start
        if merged:  # timed after the evaluation, so that eval_time_s stays evaluation only
            costs += _latency(model, tok, device, latency_tokens, "merged")
    return metrics, costs, ctx.samples


def score_share(p: Prepared, s: Setup, fitted: Fitted) -> None:
    """A rank other than 0 in a sharded evaluation: merge as rank 0 does, then run the task's
    evaluation, whose scorer hands this rank's share of the items to rank 0 (its metrics are rank 0's
    to compute)."""
    _merge(p, fitted)
    with p.precision.autocast():
        p.task.evaluate(_context(p, s, fitted.model), p.data)


def _context(p: Prepared, s: Setup, model: torch.nn.Module) -> EvalContext:
    return EvalContext(model, s.loaded.tokenizer, s.device, p.run.train.max_seq_len, p.eval_world)


def _merge(p: Prepared, fitted: Fitted) -> bool:
    """Fold the adapter into the weights (eval.merge_adapters, a mergeable method); whether it did."""
    merged = p.run.eval.merge_adapters and fitted.method.mergeable
    if merged:
        fitted.method.merge(fitted.model)
    return merged


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
