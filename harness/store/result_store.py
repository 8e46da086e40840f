"""The result store: tidy tables `runs`, `metrics` and `samples`, each a folder of parquet files.

Every run writes its own parts, named by run id, atomically (temp file + rename), metrics first and
the runs row last: a runs row with status "finished" is the commit mark. Readers union the files
and keep metrics only of finished runs, so a run killed half-way leaves nothing that is read, and
rerunning it rewrites the same file names: nothing is ever duplicated. Temp files left by a kill
(`.<name>.<random>.tmp`) are never read; `compact` removes old ones.

Compaction (`python -m harness.results compact`) merges a folder's files into one
`_compacted-<time_ns>-<token>.parquet`, written atomically before anything is deleted, then deletes
only the files it read and that are still unchanged. It is safe while others write and read:
* writers hold a shared flock on the results folder for a whole `write`; the delete step holds it
  exclusively (compactors also serialise on the `runs/` folder), so a part replaced during compaction (a rerun with force=true) is never deleted;
* readers de-duplicate by run id, taking each run's rows from one file: its own part when there is
  one (always the newest), else the newest compacted file; a part deleted between listing and
  reading makes the reader list again (its rows are in the compacted file by then).
Schema: README.md.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.core.errors import HarnessError
from harness.core.faults import fault_point

SCHEMA_VERSION = "1"

RUNS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("status", pa.string()), ("error", pa.string()),
    ("sweep", pa.string()), ("sweep_dir", pa.string()), ("job_dir", pa.string()),
    ("method", pa.string()), ("model", pa.string()), ("task", pa.string()), ("budget", pa.string()),
    ("seed", pa.int64()), ("data_seed", pa.int64()), ("init_seed", pa.int64()), ("lr", pa.float64()),
    ("trainable_params", pa.int64()), ("total_params", pa.int64()), ("trainable_pct", pa.float64()),
    ("target_params", pa.int64()), ("param_knob", pa.string()), ("param_knob_value", pa.int64()),
    ("stored_params", pa.int64()),
    ("adapter_bytes", pa.int64()), ("peak_mem_bytes", pa.int64()), ("peak_mem_kind", pa.string()),
    ("memory_cap_bytes", pa.int64()), ("within_memory_cap", pa.bool_()),
    ("lr_grid", pa.string()), ("lr_search_time_s", pa.float64()), ("calibration_time_s", pa.float64()),
    ("train_time_s", pa.float64()), ("train_steps", pa.int64()), ("train_tokens", pa.int64()),
    ("tokens_per_s", pa.float64()), ("stop_reason", pa.string()), ("eval_time_s", pa.float64()),
    ("device", pa.string()), ("hardware_json", pa.string()), ("gpu_hours", pa.float64()),
    ("config_json", pa.string()), ("data_json", pa.string()), ("model_json", pa.string()),
    ("versions_json", pa.string()), ("git_sha", pa.string()), ("git_dirty", pa.bool_()),
    ("started_at", pa.timestamp("us", tz="UTC")), ("ended_at", pa.timestamp("us", tz="UTC")),
    ("harness_version", pa.string()), ("schema_version", pa.string()),
])

METRICS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("task", pa.string()), ("metric", pa.string()), ("value", pa.float64()),
    ("stderr", pa.float64()), ("n", pa.int64()), ("higher_is_better", pa.bool_()),
    ("metric_version", pa.string()), ("step", pa.int64()),
])

# Per-item scores for error analysis and item-level statistics (optional: eval.log_samples).
SAMPLES_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("task", pa.string()), ("item_id", pa.string()), ("metric", pa.string()),
    ("value", pa.float64()), ("prediction", pa.string()), ("reference", pa.string()),
])


COMPACTED_PREFIX = "_compacted-"
_READ_ATTEMPTS = 5  # re-list this often when compaction deletes a part under a reader


def _write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pq.write_table(table, f)
            f.flush()
            fault_point("mid_part")  # tests: a kill here leaves a stale temp file behind
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _locked(folder: Path, mode: int) -> Iterator[None]:
    """flock on a folder itself (no lock file to leave behind; the kernel releases it even when the
    holder is killed)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _rank(path: Path) -> int:
    """Which file wins when several hold the same run: a run's own part, else the newest compacted file."""
    if path.name.startswith(COMPACTED_PREFIX):
        return int(path.name[len(COMPACTED_PREFIX):].split("-")[0])
    return sys.maxsize


def _read_part(path: Path, **read_table_kwargs) -> tuple[pa.Table, tuple[int, int, int]]:
    """One part file and its identity. Parts are replaced only by rename, so an unchanged identity
    after the read means the rows read are that file's; a changed one raises FileNotFoundError."""
    identity = _identity(os.stat(path))
    # By name, not through a Python file object: Arrow closes such an object on a worker thread
    # after read_table returns, and a process that exits meanwhile aborts ("terminate called
    # without an active exception", apache/arrow#33975): one CLI run in fifty did.
    table = pq.read_table(str(path), **read_table_kwargs)
    if _identity(os.stat(path)) != identity:
        raise FileNotFoundError(f"{path} was replaced while it was read")
    return table, identity


def _identity(stat: os.stat_result) -> tuple[int, int, int]:
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


class _Folder:
    """One table's files, read as one de-duplicated table."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path, self.schema = path, schema

    def files(self) -> list[Path]:
        return sorted(p for p in self.path.glob("*.parquet") if not p.name.startswith(".")) if self.path.is_dir() else []

    def read(self, columns: list[str] | None = None) -> tuple[pa.Table, list[str], dict[Path, tuple]]:
        """(rows, unreadable files, identity of every file read)."""
        for _ in range(_READ_ATTEMPTS):
            try:
                return self._read_once(columns)
            except FileNotFoundError:  # compaction removed a listed part; its rows are compacted now
                continue
        raise HarnessError(f"{self.path} kept changing while it was read; retry when compaction has finished")

    def _read_once(self, columns: list[str] | None) -> tuple[pa.Table, list[str], dict[Path, tuple]]:
        schema = self.schema if columns is None else pa.schema([self.schema.field(c) for c in columns])
        tables, ranks, bad, seen = [], [], [], {}
        for path in self.files():
            try:
                table, seen[path] = _read_part(path, schema=schema)
            except FileNotFoundError:  # compaction removed or replaced it: list again
                raise
            except Exception as exc:
                seen[path] = _identity(os.stat(path))
                bad.append(f"{path} ({type(exc).__name__})")
                continue
            tables.append(table)
            ranks.append(np.full(len(table), _rank(path), dtype=np.int64))
        if not tables:
            return schema.empty_table(), bad, seen
        table, rank = pa.concat_tables(tables), np.concatenate(ranks)
        # Each run's rows come from one file only: the highest-ranked file that holds the run.
        ids = table.column("run_id").to_numpy(zero_copy_only=False)
        best = pd.Series(rank).groupby(ids).transform("max").to_numpy()
        return table.filter(pa.array(rank == best)), bad, seen


class ResultStore:
    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.runs_dir = self.root / "runs"
        self.metrics_dir = self.root / "metrics"
        self.samples_dir = self.root / "samples"

    def _folders(self) -> dict[str, _Folder]:
        return {"runs": _Folder(self.runs_dir, RUNS_SCHEMA), "metrics": _Folder(self.metrics_dir, METRICS_SCHEMA),
                "samples": _Folder(self.samples_dir, SAMPLES_SCHEMA)}

    def is_finished(self, run_id: str) -> bool:
        part = self.runs_dir / f"{run_id}.parquet"
        try:
            table, _ = _read_part(part, columns=["status"])
            return table.column("status").to_pylist() == ["finished"]
        except FileNotFoundError:  # no part of its own: maybe compacted
            pass
        except Exception:  # an unreadable part is not a finished run: the rerun rewrites it
            return False
        runs, _, _ = _Folder(self.runs_dir, RUNS_SCHEMA).read(columns=["run_id", "status"])
        runs = runs.filter(pc.equal(runs.column("run_id"), run_id))
        return runs.column("status").to_pylist() == ["finished"]

    def write(self, run: dict, metrics: Iterable[dict] = (), samples: Iterable[dict] = ()) -> None:
        run = {**run, "schema_version": SCHEMA_VERSION}
        items = [{**s, "run_id": run["run_id"]} for s in samples]
        rows = [{**m, "run_id": run["run_id"]} for m in metrics]
        with _locked(self.root, fcntl.LOCK_SH):  # compaction deletes nothing while a run is being written
            if items:
                _write_atomic(pa.Table.from_pylist(items, schema=SAMPLES_SCHEMA), self.samples_dir / f"{run['run_id']}.parquet")
            if rows:
                _write_atomic(pa.Table.from_pylist(rows, schema=METRICS_SCHEMA), self.metrics_dir / f"{run['run_id']}.parquet")
            fault_point("mid_write")  # tests: metrics on disk, the runs row (commit mark) not yet
            _write_atomic(pa.Table.from_pylist([run], schema=RUNS_SCHEMA), self.runs_dir / f"{run['run_id']}.parquet")

    def _snapshot(self):
        """Readers hold the root's shared lock: compaction deletes merged parts only under the
        exclusive one, so a busy compactor can never make a reader miss a file it listed."""
        return _locked(self.root, fcntl.LOCK_SH) if self.root.is_dir() else nullcontext()

    def read(self, strict: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
        """(runs, metrics of finished runs, unreadable files). With `strict`, unreadable files
        raise a one-line error naming them; otherwise they are skipped and returned."""
        folders = self._folders()
        with self._snapshot():
            runs, bad_runs, _ = folders["runs"].read()
            metrics, bad_metrics, _ = folders["metrics"].read()
        runs, metrics = runs.to_pandas(), metrics.to_pandas()
        bad = bad_runs + bad_metrics
        if bad and strict:
            raise HarnessError(
                f"unreadable result files: {', '.join(bad)}; delete them and rerun the sweep to recompute those runs"
            )
        finished = set(runs.loc[runs["status"] == "finished", "run_id"])
        metrics = metrics[metrics["run_id"].isin(finished)].reset_index(drop=True)
        return runs, metrics, bad

    def read_samples(self) -> pd.DataFrame:
        """Per-item rows of finished runs (empty when no run logged samples)."""
        runs, _, _ = self.read(strict=False)
        with self._snapshot():
            samples, bad, _ = self._folders()["samples"].read()
        if bad:
            raise HarnessError(f"unreadable sample files: {', '.join(bad)}; delete them and rerun those runs")
        finished = set(runs.loc[runs["status"] == "finished", "run_id"])
        samples = samples.to_pandas()
        return samples[samples["run_id"].isin(finished)].reset_index(drop=True)

    def compact(self, stale_temp_s: float = 3600.0) -> dict[str, tuple[int, int]]:
        """Merge each table's files into one compacted file; returns {table: (files merged, rows)}.
        Also deletes temp files older than `stale_temp_s` (left by killed writers)."""
        done = {}
        with _locked(self.runs_dir, fcntl.LOCK_EX):  # one compactor at a time
            for name, folder in self._folders().items():
                self._remove_stale_temps(folder.path, stale_temp_s)
                files = folder.files()
                if len(files) < 2 and not any(_rank(f) == sys.maxsize for f in files):
                    done[name] = (0, 0)
                    continue
                table, bad, seen = folder.read()
                if bad:
                    raise HarnessError(f"cannot compact {folder.path}: unreadable files {', '.join(bad)}; "
                                       "delete them (their runs rerun on the next sweep) and compact again")
                target = folder.path / f"{COMPACTED_PREFIX}{time.time_ns():020d}-{secrets.token_hex(4)}.parquet"
                _write_atomic(table, target)
                with _locked(self.root, fcntl.LOCK_EX):  # no write in flight: an unchanged file is one we merged
                    for path, identity in seen.items():
                        try:
                            if _identity(path.stat()) == identity:
                                path.unlink()
                        except FileNotFoundError:
                            pass
                done[name] = (len(seen), table.num_rows)
        return done

    @staticmethod
    def _remove_stale_temps(folder: Path, older_than_s: float) -> None:
        cutoff = time.time() - older_than_s
        for tmp in folder.glob(".*.tmp") if folder.is_dir() else []:
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
            except FileNotFoundError:
                pass
