"""Several processes writing one results folder at once, with compaction and reads running at the
same time: no row lost, none read twice, no reader ever misses a run it saw before."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.store import result_store as store_module
from harness.store.result_store import COMPACTED_PREFIX, ResultStore
from tests.conftest import REPO

WRITERS, RUNS_EACH, METRICS_EACH = 4, 25, 3


def _run(run_id: str, status: str = "finished", lr: float = 0.1) -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    return {"run_id": run_id, "status": status, "method": "lora", "model": "m", "task": "t", "budget": "b",
            "seed": 0, "lr": lr, "started_at": now, "ended_at": now}


def _metrics(value: float) -> list[dict]:
    return [{"task": "t", "metric": f"m{i}", "value": value, "stderr": None, "n": 1, "higher_is_better": True,
             "metric_version": "m/v1", "step": None} for i in range(METRICS_EACH)]


def _writer(root: str, worker: int) -> None:
    store = ResultStore(root)
    for i in range(RUNS_EACH):
        store.write(_run(f"w{worker}-{i:03d}"), _metrics(float(i)))


def _compactor(root: str, stop) -> None:
    store = ResultStore(root)
    while not stop.is_set():
        store.compact()
        time.sleep(0.05)


def test_four_concurrent_writers_with_compaction_lose_nothing(tmp_path):
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    writers = [ctx.Process(target=_writer, args=(str(tmp_path), w)) for w in range(WRITERS)]
    compactor = ctx.Process(target=_compactor, args=(str(tmp_path), stop))
    for p in [*writers, compactor]:
        p.start()
    store, seen, reads = ResultStore(tmp_path), set(), 0
    while any(p.is_alive() for p in writers) or reads < 3:
        runs, metrics, bad = store.read()
        ids = runs["run_id"].tolist()
        assert bad == [] and len(ids) == len(set(ids)), "a run was read twice"
        assert seen <= set(ids), f"runs vanished during compaction: {seen - set(ids)}"
        assert (metrics.groupby("run_id").size() == METRICS_EACH).all(), "metrics of a run read twice or partly"
        seen, reads = set(ids), reads + 1
    stop.set()
    for p in [*writers, compactor]:
        p.join(60)
        assert p.exitcode == 0
    store.compact()
    runs, metrics, _ = store.read()
    assert sorted(runs["run_id"]) == sorted(f"w{w}-{i:03d}" for w in range(WRITERS) for i in range(RUNS_EACH))
    assert len(metrics) == WRITERS * RUNS_EACH * METRICS_EACH
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [next((tmp_path / "runs").glob(f"{COMPACTED_PREFIX}*")).name]
    assert reads >= 3


def test_part_rewritten_during_compaction_is_kept(tmp_path, monkeypatch):
    """A rerun with force=true replaces a part while compaction runs: the compactor must not delete
    the new part, and readers must prefer it over the stale compacted copy."""
    store = ResultStore(tmp_path)
    store.write(_run("a", lr=0.1), _metrics(1.0))
    store.write(_run("b"), _metrics(2.0))
    original = store_module._write_atomic

    def write_then_race(table, path):
        original(table, path)
        if path.name.startswith(COMPACTED_PREFIX) and path.parent.name == "runs":
            store.write(_run("a", lr=0.5), _metrics(9.0))  # lands after the compactor read the folders

    monkeypatch.setattr(store_module, "_write_atomic", write_then_race)
    store.compact()
    monkeypatch.undo()
    runs, metrics, _ = store.read()
    assert sorted(runs["run_id"]) == ["a", "b"]
    assert runs.set_index("run_id").loc["a", "lr"] == 0.5
    assert sorted(metrics.loc[metrics["run_id"] == "a", "value"]) == [9.0] * METRICS_EACH
    assert (tmp_path / "runs" / "a.parquet").is_file() and not (tmp_path / "runs" / "b.parquet").exists()
    store.compact()  # the next compaction folds the newer part in
    runs, metrics, _ = store.read()
    assert runs.set_index("run_id").loc["a", "lr"] == 0.5 and len(metrics) == 2 * METRICS_EACH
    assert not (tmp_path / "runs" / "a.parquet").exists() and store.is_finished("a") and store.is_finished("b")


def test_stale_temp_files_are_ignored_then_removed(tmp_path):
    store = ResultStore(tmp_path)
    store.write(_run("a"), _metrics(1.0))
    stale = tmp_path / "runs" / ".b.x1y2z3.tmp"
    stale.write_bytes(b"PAR1 half a parquet file")  # what a writer killed mid-file leaves
    runs, _, bad = store.read()
    assert runs["run_id"].tolist() == ["a"] and bad == []
    store.compact(stale_temp_s=3600)
    assert stale.exists()  # young: it may belong to a writer still running
    store.compact(stale_temp_s=0)
    assert not stale.exists()


def test_compact_refuses_corrupt_files_with_one_line_error(tmp_path):
    store = ResultStore(tmp_path)
    store.write(_run("a"), _metrics(1.0))
    (tmp_path / "runs" / "b.parquet").write_bytes(b"not parquet")
    with pytest.raises(HarnessError, match=r"cannot compact .*runs: unreadable files .*b\.parquet"):
        store.compact()
    proc = subprocess.run([sys.executable, "-m", "harness.results", "compact", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: cannot compact"), proc.stderr
    assert (tmp_path / "runs" / "a.parquet").is_file()  # nothing deleted


def test_compact_cli_merges_and_reruns_are_noops(tmp_path):
    store = ResultStore(tmp_path)
    for i in range(3):
        store.write(_run(f"r{i}"), _metrics(float(i)))
    cmd = [sys.executable, "-m", "harness.results", "compact", str(tmp_path)]
    first = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0 and "runs: 3 file(s) -> 1 (3 rows)" in first.stdout, first.stderr
    second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "runs: nothing to compact" in second.stdout
    runs, metrics, _ = store.read()
    assert sorted(runs["run_id"]) == ["r0", "r1", "r2"] and len(metrics) == 3 * METRICS_EACH
    assert all(p.name.startswith(COMPACTED_PREFIX) for p in Path(tmp_path, "metrics").iterdir())
