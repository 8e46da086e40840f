"""Skip-done lookups (`ResultStore.is_finished`): the compacted files are read once per process, each
lookup checks only the run's own part by name, and runs finished or compacted by another process
meanwhile are seen without reading the whole store again."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time

import pytest

from harness.store import finished
from harness.store.result_store import ResultStore
from tests.conftest import REPO


def _run(run_id: str, status: str = "finished") -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    return {"run_id": run_id, "status": status, "method": "lora", "model": "m", "task": "t", "budget": "b",
            "seed": 0, "started_at": now, "ended_at": now}


METRIC = {"task": "t", "metric": "acc", "value": 0.5, "stderr": None, "n": 1, "higher_is_better": True,
          "metric_version": "acc/v1", "step": None}


@pytest.fixture(autouse=True)
def fresh_indexes():
    """Each test is a fresh process as far as the per-process indexes go."""
    finished._INDEXES.clear()
    yield
    finished._INDEXES.clear()


def _in_other_process(root, code: str) -> None:
    """Another process (a sweep worker elsewhere) acting on the same results folder."""
    proc = subprocess.run([sys.executable, "-c", f"from harness.store.result_store import ResultStore\n"
                           f"import datetime as dt\nstore = ResultStore({str(root)!r})\nnow = dt.datetime.now(dt.timezone.utc)\n{code}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_lookups_on_a_compacted_store_read_it_once(tmp_path):
    store = ResultStore(tmp_path)
    for i in range(60):
        store.write(_run(f"r{i:02d}", "finished" if i % 3 else "failed"), [METRIC])
    store.compact()
    assert [p.name for p in (tmp_path / "runs").iterdir() if not p.name.startswith("compacted-")] == []
    answers = [store.is_finished(f"r{i:02d}") for i in range(60)] + [store.is_finished("never-run")]
    assert answers == [bool(i % 3) for i in range(60)] + [False]
    assert finished.finished_index(store.runs_dir).files_read == 1  # not once per lookup


def test_a_run_finished_meanwhile_by_another_process_is_seen(tmp_path):
    store = ResultStore(tmp_path)
    for i in range(5):
        store.write(_run(f"r{i}"))
    store.compact()
    assert not store.is_finished("late") and store.is_finished("r0")
    index = finished.finished_index(store.runs_dir)
    assert index.files_read == 1

    _in_other_process(tmp_path, "store.write({'run_id': 'late', 'status': 'finished', 'started_at': now, 'ended_at': now})")
    assert store.is_finished("late")  # its own part, by name
    assert index.files_read == 1

    _in_other_process(tmp_path, "store.compact()")  # its part is gone now, merged into a new compacted file
    assert not (tmp_path / "runs" / "late.parquet").exists()
    assert store.is_finished("late") and store.is_finished("r4") and not store.is_finished("other")
    assert index.files_read == 2  # only the new compacted file was read


def test_a_newer_row_wins_over_an_older_compacted_one(tmp_path):
    """A run rerun with force=true that failed, in a newer file than its finished row."""
    store = ResultStore(tmp_path)
    store.write(_run("a"), [METRIC])
    store.write(_run("b"), [METRIC])
    store.compact()
    assert store.is_finished("a")
    _in_other_process(tmp_path, "store.write({'run_id': 'a', 'status': 'failed', 'started_at': now, 'ended_at': now})")
    assert not store.is_finished("a")  # its own part is newer than the compacted row
    store.compact()  # a failed row, now in a compacted file newer than the finished one
    finished._INDEXES.clear()
    assert not store.is_finished("a") and store.is_finished("b")


def test_an_unreadable_own_part_is_not_finished(tmp_path):
    store = ResultStore(tmp_path)
    store.write(_run("a"))
    store.compact()
    (tmp_path / "runs" / "a.parquet").write_bytes(b"a killed copy, not parquet")
    assert not store.is_finished("a")  # the rerun rewrites it


def test_lookups_stay_constant_time_as_the_store_grows(tmp_path, monkeypatch):
    """Each lookup reads one small part or nothing: 100 lookups touch no compacted file twice."""
    store = ResultStore(tmp_path)
    for i in range(30):
        store.write(_run(f"old{i}"))
    store.compact()
    for i in range(30):
        store.write(_run(f"new{i}"))  # loose parts, found by name
    reads, original = [], finished.pq.read_table
    monkeypatch.setattr(finished.pq, "read_table", lambda path, **kw: (reads.append(path), original(path, **kw))[1])
    assert all(store.is_finished(f"{kind}{i}") for kind in ("old", "new") for i in range(30))
    compacted_reads = [p for p in reads if "compacted-" in p]
    assert len(compacted_reads) == 1 and len(reads) <= 1 + 60


def test_a_settled_folder_is_listed_once_and_a_change_is_still_seen(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    for i in range(3):
        store.write(_run(f"r{i}"))
    store.compact()
    os.utime(tmp_path / "runs", ns=(time.time_ns() - 10**10,) * 2)  # unchanged for 10 s
    listings, original = [], finished.list_compacted
    monkeypatch.setattr(finished, "list_compacted", lambda folder: (listings.append(folder), original(folder))[1])
    assert not any(store.is_finished(f"new{i}") for i in range(50)) and store.is_finished("r1")
    assert len(listings) == 1  # new jobs of a rerun do not list the folder each

    _in_other_process(tmp_path, "store.write({'run_id': 'new7', 'status': 'finished', 'started_at': now, 'ended_at': now})\n"
                                "store.compact()")
    assert store.is_finished("new7") and len(listings) == 2
