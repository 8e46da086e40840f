"""The result store: schema, atomic parts, union on read, finished-only metrics, corrupt parts."""

from __future__ import annotations

import datetime as dt

import pyarrow.parquet as pq
import pytest

from harness.core.errors import HarnessError
from harness.store.record import RUNS_SCHEMA
from harness.store.result_store import METRICS_SCHEMA, ResultStore


def _run(run_id: str, status: str = "finished") -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    return {"run_id": run_id, "status": status, "method": "lora", "model": "m", "task": "t", "budget": "b",
            "seed": 0, "trainable_params": 10, "total_params": 100, "started_at": now, "ended_at": now}


def _metric(value: float, step=None) -> dict:
    return {"task": "t", "metric": "acc", "value": value, "stderr": 0.1, "n": 10,
            "higher_is_better": True, "metric_version": "acc/v1", "step": step}


def test_write_and_read_back_with_schema(tmp_path):
    store = ResultStore(tmp_path)
    store.write(_run("a"), [_metric(0.5), _metric(2.0, step=1)])
    store.write(_run("b"), [_metric(0.7)])
    runs, metrics, bad = store.read()
    assert bad == []
    assert sorted(runs["run_id"]) == ["a", "b"]
    assert list(runs.columns) == RUNS_SCHEMA.names
    assert list(metrics.columns) == METRICS_SCHEMA.names
    assert len(metrics) == 3 and metrics["step"].isna().sum() == 2
    assert pq.read_schema(tmp_path / "runs" / "a.parquet").equals(RUNS_SCHEMA, check_metadata=False)
    assert set(runs["schema_version"]) == {"1"}


def test_rewriting_a_run_replaces_it(tmp_path):
    store = ResultStore(tmp_path)
    store.write(_run("a", "failed"))
    assert not store.is_finished("a")
    store.write(_run("a"), [_metric(0.9)])
    runs, metrics, _ = store.read()
    assert len(runs) == 1 and store.is_finished("a") and metrics["value"].tolist() == [0.9]


def test_metrics_without_a_finished_run_row_are_not_read(tmp_path):
    import pyarrow as pa

    store = ResultStore(tmp_path)
    store.write(_run("a", "failed"))
    store.write(_run("b"), [_metric(0.1)])
    # run c was killed between its metrics part and its runs row; run a failed after an old
    # metrics part was left behind: neither may be read.
    for orphan in ("a", "c"):
        table = pa.Table.from_pylist([{**_metric(9.9), "run_id": orphan}], schema=METRICS_SCHEMA)
        pq.write_table(table, tmp_path / "metrics" / f"{orphan}.parquet")
    _, metrics, _ = store.read()
    assert metrics["run_id"].tolist() == ["b"]


def test_no_temp_files_left_behind(tmp_path):
    store = ResultStore(tmp_path)
    store.write(_run("a"), [_metric(0.5)])
    leftovers = [p.name for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".parquet")]
    assert leftovers == []


def test_corrupt_part_is_named(tmp_path):
    store = ResultStore(tmp_path)
    store.write(_run("a"), [_metric(0.5)])
    store.write(_run("b"), [_metric(0.6)])
    (tmp_path / "runs" / "b.parquet").write_bytes(b"not parquet")
    with pytest.raises(HarnessError, match=r"unreadable result files: .*b\.parquet"):
        store.read()
    runs, metrics, bad = store.read(strict=False)
    assert runs["run_id"].tolist() == ["a"] and len(bad) == 1 and metrics["run_id"].tolist() == ["a"]
    assert not store.is_finished("b")


def test_empty_store_reads_as_empty_tables(tmp_path):
    runs, metrics, bad = ResultStore(tmp_path / "nothing").read()
    assert runs.empty and metrics.empty and bad == []
    assert list(runs.columns) == RUNS_SCHEMA.names
