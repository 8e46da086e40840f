"""`RunRecord` (harness/store/record.py): the runs table's parquet schema is generated from it and
keeps the column order and types of the files users already have; every column is documented."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pyarrow as pa

from harness.store.record import RUNS_SCHEMA, SCHEMA_VERSION, RunRecord, runs_columns_markdown

PINNED = [  # schema_version 1, as written since the store began: never reorder or retype
    ("run_id", "string"), ("status", "string"), ("error", "string"), ("sweep", "string"), ("sweep_dir", "string"),
    ("job_dir", "string"), ("method", "string"), ("model", "string"), ("task", "string"), ("budget", "string"),
    ("seed", "int64"), ("data_seed", "int64"), ("init_seed", "int64"), ("lr", "double"),
    ("trainable_params", "int64"), ("total_params", "int64"), ("trainable_pct", "double"),
    ("target_params", "int64"), ("param_knob", "string"), ("param_knob_value", "int64"), ("stored_params", "int64"),
    ("adapter_bytes", "int64"), ("peak_mem_bytes", "int64"), ("peak_mem_kind", "string"),
    ("memory_cap_bytes", "int64"), ("within_memory_cap", "bool"), ("lr_grid", "string"),
    ("lr_search_time_s", "double"), ("calibration_time_s", "double"), ("train_time_s", "double"),
    ("train_steps", "int64"), ("train_tokens", "int64"), ("tokens_per_s", "double"), ("stop_reason", "string"),
    ("eval_time_s", "double"), ("device", "string"), ("hardware_json", "string"), ("gpu_hours", "double"),
    ("config_json", "string"), ("data_json", "string"), ("model_json", "string"), ("versions_json", "string"),
    ("git_sha", "string"), ("git_dirty", "bool"), ("started_at", "timestamp[us, tz=UTC]"),
    ("ended_at", "timestamp[us, tz=UTC]"), ("harness_version", "string"), ("schema_version", "string"),
]


def test_the_schema_generated_from_the_record_is_the_pinned_one():
    assert [(f.name, str(f.type)) for f in RUNS_SCHEMA] == PINNED and SCHEMA_VERSION == "1"


def test_a_record_becomes_one_parquet_row_and_every_column_is_documented():
    now = dt.datetime.now(dt.timezone.utc)
    record = RunRecord(run_id="abc", method="lora", seed=3, lr=1e-4, git_dirty=False, started_at=now)
    table = pa.Table.from_pylist([record.row()], schema=RUNS_SCHEMA)
    row = table.to_pylist()[0]
    assert row["status"] == "running" and row["seed"] == 3 and row["started_at"] == now
    assert row["schema_version"] == SCHEMA_VERSION and row["error"] is None
    docs = runs_columns_markdown()
    assert all(f"| `{f.name}` |" in docs and f.metadata["doc"] for f in dataclasses.fields(RunRecord))
