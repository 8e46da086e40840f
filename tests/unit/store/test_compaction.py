"""Compaction by default: writers merge the loose parts once HARNESS_COMPACT_PARTS of them pile up, the
end of a sweep merges at a quarter of that, files grow geometrically, and a kill at any point of it,
concurrent writers or unreadable parts lose nothing and duplicate nothing."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import signal
import subprocess
import sys

from omegaconf import OmegaConf

from harness.store.parts import list_parts
from harness.store.result_store import COMPACT_PARTS_ENV, ResultStore
from tests.conftest import REPO

METRICS_EACH = 3


def _run(run_id: str) -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    return {"run_id": run_id, "status": "finished", "method": "lora", "model": "m", "task": "t", "budget": "b",
            "seed": 0, "started_at": now, "ended_at": now}


def _metrics(value: float) -> list[dict]:
    return [{"task": "t", "metric": f"m{i}", "value": value, "stderr": None, "n": 1, "higher_is_better": True,
             "metric_version": "m/v1", "step": None} for i in range(METRICS_EACH)]


def _check_each_once(root, ids) -> None:
    runs, metrics, bad = ResultStore(root).read()
    assert bad == [] and sorted(runs["run_id"]) == sorted(ids)
    assert (metrics.groupby("run_id").size() == METRICS_EACH).all() and len(metrics) == METRICS_EACH * len(ids)


def test_writers_compact_at_the_threshold_and_files_grow_geometrically(tmp_path, monkeypatch):
    monkeypatch.setenv(COMPACT_PARTS_ENV, "4")
    store = ResultStore(tmp_path)
    most_files = 0
    for i in range(64):
        store.write(_run(f"r{i:03d}"), _metrics(float(i)))
        listing = list_parts(tmp_path / "runs")
        assert len(listing.loose) < 4  # the 4th loose part is merged by the write that made it
        most_files = max(most_files, len(listing.compacted))
    _check_each_once(tmp_path, [f"r{i:03d}" for i in range(64)])
    assert most_files <= 5  # O(log N) compacted files, not one per 4 runs (16)
    assert len(list_parts(tmp_path / "metrics").loose) < 4


def test_a_folder_compacted_by_an_earlier_version_is_read_and_merged_into_the_new_name(tmp_path):
    """Earlier versions named compacted files `_compacted-...`, which pandas skips in a folder."""
    import pandas as pd

    store = ResultStore(tmp_path)
    for i in range(3):
        store.write(_run(f"r{i}"), _metrics(1.0))
    store.compact()
    for table in ("runs", "metrics"):  # as an earlier version left it
        (old,) = list_parts(tmp_path / table).compacted
        old.rename(old.with_name("_" + old.name))
    assert pd.read_parquet(tmp_path / "runs").empty  # why the name changed
    store.write({**_run("r0"), "method": "dora"}, _metrics(2.0))  # a forced rerun: its own part wins
    store.write(_run("r3"), _metrics(1.0))
    store.compact()  # the legacy files, and the parts, merged into one new compacted file
    store.write(_run("r4"), _metrics(1.0))
    _check_each_once(tmp_path, ["r0", "r1", "r2", "r3", "r4"])
    runs, _, _ = store.read()
    assert runs.set_index("run_id").loc["r0", "method"] == "dora"
    names = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(names) == 2 and names[0].startswith("compacted-") and names[1] == "r4.parquet"
    assert sorted(pd.read_parquet(tmp_path / "runs")["run_id"]) == ["r0", "r1", "r2", "r3", "r4"]
    assert store.is_finished("r2") and not store.is_finished("r9")


def test_a_lone_file_compacted_by_an_earlier_version_is_renamed_by_compact(tmp_path):
    """A folder whose every run sits in one `_compacted-` file (a finished sweep of an earlier
    version) has nothing to merge, yet pandas sees none of it until compact rewrites it."""
    import pandas as pd

    store = ResultStore(tmp_path)
    for i in range(2):
        store.write(_run(f"r{i}"), _metrics(1.0))
    store.compact()
    for table in ("runs", "metrics"):
        (old,) = list_parts(tmp_path / table).compacted
        old.rename(old.with_name("_" + old.name))
    assert store.compact()["runs"] == (1, 2)
    for table in ("runs", "metrics"):
        (new,) = (tmp_path / table).iterdir()
        assert new.name.startswith("compacted-")
    assert sorted(pd.read_parquet(tmp_path / "runs")["run_id"]) == ["r0", "r1"]
    assert store.compact()["runs"] == (0, 0)  # today's lone file stays as it is


def test_no_automatic_compaction_when_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv(COMPACT_PARTS_ENV, "0")
    store = ResultStore(tmp_path)
    for i in range(6):
        store.write(_run(f"r{i}"), _metrics(1.0))
    assert len(list_parts(tmp_path / "runs").loose) == 6 and store.compact_if_due() is None


def _sweep_end(tmp_path):
    from harness.cli.callbacks import SweepSummary  # here: the writer processes below import this module, and stay light

    sweep_dir = tmp_path / "sweeps" / "s" / "0"
    sweep_dir.mkdir(parents=True, exist_ok=True)
    config = OmegaConf.create({"results_dir": str(tmp_path), "sweep_name": "s",
                               "hydra": {"sweep": {"dir": str(sweep_dir)}, "overrides": {"hydra": [], "task": []}}})
    SweepSummary().on_multirun_end(config)


def test_the_end_of_a_sweep_compacts_from_a_quarter_of_the_threshold(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(COMPACT_PARTS_ENV, "12")  # a sweep's end merges from 3 loose parts
    store = ResultStore(tmp_path)
    for i in range(2):
        store.write(_run(f"r{i}"), _metrics(1.0))
    _sweep_end(tmp_path)
    assert len(list_parts(tmp_path / "runs").loose) == 2  # a small sweep keeps one part per run
    store.write(_run("r2"), _metrics(1.0))
    _sweep_end(tmp_path)
    assert "results: merged 3 runs file(s)" in capsys.readouterr().out
    runs_listing, metrics_listing = list_parts(tmp_path / "runs"), list_parts(tmp_path / "metrics")
    assert (len(runs_listing.loose), len(runs_listing.compacted), len(metrics_listing.loose)) == (0, 1, 0)
    _check_each_once(tmp_path, ["r0", "r1", "r2"])


WRITE_AND_COMPACT = """
import datetime as dt
from harness.store.result_store import ResultStore
now = dt.datetime.now(dt.timezone.utc)
store = ResultStore({root!r})
for i in range(3):
    store.write({{"run_id": f"r{{i}}", "status": "finished", "started_at": now, "ended_at": now}},
                [{{"task": "t", "metric": f"m{{k}}", "value": 1.0, "step": None}} for k in range({each})])
"""


def test_a_kill_in_the_middle_of_compaction_loses_and_duplicates_nothing(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", COMPACT_PARTS_ENV: "3", "HARNESS_TEST_KILL_AT": "mid_compact"}
    proc = subprocess.run([sys.executable, "-c", WRITE_AND_COMPACT.format(root=str(tmp_path), each=METRICS_EACH)],
                          cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    runs = list_parts(tmp_path / "runs")
    assert len(runs.compacted) == 1 and len(runs.loose) == 2  # one merged part deleted, two left behind
    _check_each_once(tmp_path, ["r0", "r1", "r2"])
    store = ResultStore(tmp_path)
    assert all(store.is_finished(f"r{i}") for i in range(3))
    store.compact()
    assert [len(list_parts(tmp_path / t).loose) for t in ("runs", "metrics")] == [0, 0]
    _check_each_once(tmp_path, ["r0", "r1", "r2"])


def test_automatic_compaction_leaves_unreadable_parts_for_readers_to_name(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    store.write(_run("a"), _metrics(1.0))
    (tmp_path / "metrics" / "b.parquet").write_bytes(b"not parquet")
    store.write(_run("b"))
    monkeypatch.setenv(COMPACT_PARTS_ENV, "3")
    store.write(_run("c"), _metrics(3.0))  # due: merges what it can read
    assert (tmp_path / "metrics" / "b.parquet").is_file() and len(list_parts(tmp_path / "runs").loose) == 0
    runs, metrics, bad = store.read(strict=False)
    assert sorted(runs["run_id"]) == ["a", "b", "c"] and sorted(set(metrics["run_id"])) == ["a", "c"]
    assert len(bad) == 1 and "b.parquet" in bad[0]


def _writer(root: str, worker: int) -> None:
    store = ResultStore(root)
    for i in range(20):
        store.write(_run(f"w{worker}-{i:02d}"), _metrics(float(i)))


def test_concurrent_writers_compacting_as_they_go_lose_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(COMPACT_PARTS_ENV, "5")  # spawned writers inherit it
    ctx = mp.get_context("spawn")
    writers = [ctx.Process(target=_writer, args=(str(tmp_path), w)) for w in range(3)]
    for p in writers:
        p.start()
    store, seen, reads = ResultStore(tmp_path), set(), 0
    while any(p.is_alive() for p in writers) or reads < 3:
        runs, metrics, bad = store.read()
        ids = set(runs["run_id"])
        assert bad == [] and len(ids) == len(runs), "a run was read twice"
        assert seen <= ids, f"runs vanished during compaction: {seen - ids}"
        assert (metrics.groupby("run_id").size() == METRICS_EACH).all(), "metrics of a run read twice or partly"
        seen, reads = ids, reads + 1
    for p in writers:
        p.join(60)
        assert p.exitcode == 0
    _check_each_once(tmp_path, [f"w{w}-{i:02d}" for w in range(3) for i in range(20)])
    assert list_parts(tmp_path / "runs").compacted, "the writers never compacted"
