"""`RunRecord`: one row of the `runs` table, a typed dataclass the run fills as it goes.

The parquet schema of the table (`RUNS_SCHEMA`) and the column table of docs/results.md are both
generated from it, so the three cannot drift. Columns keep their order: it is the order of the
parquet files users already have (tests/unit/store/test_record.py pins it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = "1"

_ARROW_TYPES = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_(),
                dt.datetime: pa.timestamp("us", tz="UTC")}


def column(doc: str, default: Any = None) -> Any:
    """A runs column: its meaning (docs/results.md) and its value until the run sets it."""
    return field(default=default, metadata={"doc": doc})


@dataclass
class RunRecord:
    """One run: what it was (identity, config, data, versions, hardware), how it went (status,
    error) and what it cost (parameters, memory, time). Metric values are rows of `metrics`."""

    run_id: str = column("experiment hash (16 hex): the same experiment has the same run_id")
    status: str = column("`running` while it runs, then `finished` or `failed`", "running")
    error: str | None = column("the one-line error of a failed run")
    sweep: str | None = column("the sweep's name (`sweep_name`)")
    sweep_dir: str | None = column("the Hydra folder of the sweep")
    job_dir: str | None = column("the Hydra folder of the job: job.log, the adapter, error.txt")
    method: str | None = column("the method's registry name")
    model: str | None = column("the model config's name")
    task: str | None = column("the resolved task, e.g. `gsm8k_testslice`")
    budget: str | None = column("the budget's name")
    seed: int | None = column("the run seed (the default of the two below)")
    data_seed: int | None = column("seed of the training data order (`train.data_seed`, `${seed}` unless set)")
    init_seed: int | None = column("seed of the method's init, e.g. adapter weights (`train.init_seed`, `${seed}` unless set)")
    lr: float | None = column("the learning rate used")
    trainable_params: int | None = column("trainable parameters after the method is applied (tied weights once)")
    total_params: int | None = column("all parameters after the method is applied (tied weights once)")
    trainable_pct: float | None = column("100 x trainable / total")
    target_params: int | None = column("the parameter budget's target (count); null without one")
    param_knob: str | None = column("the size option the parameter-budget solver set (`r`, `bottleneck`, "
                                    "`num_virtual_tokens`, `n_layers`, ...); null for fixed-count methods and without one")
    param_knob_value: int | None = column("the value the solver gave `param_knob`")
    stored_params: int | None = column("numbers in the saved adapter files (count); differs from `trainable_params` "
                                       "where a method stores more (VeRA's shared projections, LISA's every trained layer)")
    adapter_bytes: int | None = column("bytes the method saves to restore the tuned model (full FT: the weights)")
    peak_mem_bytes: int | None = column("training peak, bytes (the largest over the ranks of a distributed run)")
    peak_mem_kind: str | None = column("`rss_peak` (CPU, VmHWM reset per run) or `cuda_max_allocated`")
    memory_cap_bytes: int | None = column("the budget's `max_memory_gib` in bytes; null without a cap")
    within_memory_cap: bool | None = column("whether the peak stayed within the cap (on CUDA exceeding it fails the run)")
    lr_grid: str | None = column("with `train.lr_sweep`: JSON of the grid, each candidate's `val_loss` and the "
                                 "chosen lr (`lr_sweep/v1`)")
    lr_search_time_s: float | None = column("the lr search's training + validation wall seconds, the kept candidate included")
    calibration_time_s: float | None = column("calibrated methods (CorDA, LoRA-GA): wall seconds of the look at data "
                                              "before training, not in `train_time_s`; null for the others")
    train_time_s: float | None = column("training wall time, evaluation excluded, seconds")
    train_steps: int | None = column("optimizer steps")
    train_tokens: int | None = column("non-padding tokens seen in training (over all ranks)")
    tokens_per_s: float | None = column("train_tokens / train_time_s")
    stop_reason: str | None = column("which budget limit stopped training")
    eval_time_s: float | None = column("task evaluation + forgetting probes, seconds")
    device: str | None = column("`cpu`, `cuda`, ...")
    hardware_json: str | None = column("what the run ran on: `device_type`, `gpu_count`, `gpus` (name, memory, "
                                       "compute capability), `driver`, `cuda`, `cudnn`, `cpu_model`, `cpu_count`, "
                                       "`torch_threads`, `world_size` of a distributed run; not part of the run id")
    gpu_hours: float | None = column("wall time of the run x GPUs used / 3600; null for a run on CPU")
    config_json: str | None = column("the full resolved config")
    data_json: str | None = column("data identity: resolved task, source, item counts, SHA-256 of train pool and eval items")
    model_json: str | None = column("model identity: hub id + revision + commit, or GGUF file + SHA-256, or "
                                    "random-init config + seed")
    versions_json: str | None = column("python, torch, transformers, peft, datasets, lm_eval, hydra-core, ...")
    git_sha: str | None = column("the harness commit")
    git_dirty: bool | None = column("whether tracked files differed from that commit")
    started_at: dt.datetime | None = column("when the run started (UTC)")
    ended_at: dt.datetime | None = column("when the run ended (UTC)")
    harness_version: str | None = column("the harness's version")
    schema_version: str = column("this table's schema version", SCHEMA_VERSION)

    def row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _arrow_type(annotation: Any) -> pa.DataType:
    found = [t for t in typing.get_args(annotation) if t is not type(None)] or [annotation]
    return _ARROW_TYPES[found[0]]


def _schema() -> pa.Schema:
    hints = typing.get_type_hints(RunRecord)
    return pa.schema([(f.name, _arrow_type(hints[f.name])) for f in dataclasses.fields(RunRecord)])


RUNS_SCHEMA = _schema()


def runs_columns_markdown() -> str:
    """The column table of docs/results.md (filled in by docs/hooks/registry_tables.py)."""
    lines = ["| column | type | meaning |", "|---|---|---|"]
    for f in dataclasses.fields(RunRecord):
        lines.append(f"| `{f.name}` | {RUNS_SCHEMA.field(f.name).type} | {f.metadata['doc']} |")
    return "\n".join(lines)
