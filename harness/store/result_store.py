"""The result store: tidy tables `runs`, `metrics` and `samples`, each a folder of parquet files.

Every run writes its own parts, named by run id, atomically (temp file + rename), metrics first and
the runs row last: a runs row with status "finished" is the commit mark. Readers union the files
(one Arrow dataset scan) and keep metrics only of finished runs, so a run killed half-way leaves
nothing that is read, and rerunning it rewrites the same file names: nothing is ever duplicated.
Temp files left by a kill (`.<name>.<random>.tmp`) are never read; `compact` removes old ones.

Compaction merges a folder's files into one `compacted-<time_ns>-<token>.parquet`, written
atomically before anything is deleted, then deletes only the files it read and that are still
unchanged. `python -m harness.results compact` merges every file. By default, once runs/ holds
HARNESS_COMPACT_PARTS loose parts (256) after a write, or a quarter of that at the end of a sweep
(harness/cli/callbacks.py), the loose parts are merged with the newest compacted files of up to about
twice their rows: a folder keeps a few files whose sizes grow geometrically, each row rewritten
O(log N) times, and reads meet about that many loose parts at most (each costs ~1-2 ms however small).
It is safe while others write and read, and against a kill at any point:
* writers hold a shared flock on the results folder for a whole `write`; the delete step holds it
  exclusively (compactors also serialise on the `runs/` folder), so a part replaced during compaction
  (a rerun with force=true) is never deleted;
* readers hold the shared lock too and take each run's rows from one file: its own part when there
  is one (always the newest), else the newest compacted file holding it (harness/store/parts.py).
Skip-done lookups (`is_finished`) read the compacted files once per process (harness/store/finished.py).
Schema: docs/results.md.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.core.errors import HarnessError
from harness.core.faults import fault_point
from harness.store.finished import finished_index
from harness.store.parts import COMPACTED_PREFIX, LEGACY_COMPACTED_PREFIX, Listing, Unreadable, identity, list_parts, locked, newest_rows, read_files
from harness.store.parts import write_atomic as _write_atomic  # module global: tests replace it
from harness.store.record import RUNS_SCHEMA, SCHEMA_VERSION

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


COMPACT_PARTS_ENV = "HARNESS_COMPACT_PARTS"
COMPACT_PARTS = 256  # loose runs parts that make a folder due for compaction: reading them all costs ~0.3 s
_READ_ATTEMPTS = 5  # list again this often when a listed file vanishes under a reader


def compact_parts() -> int:
    """Loose parts that trigger automatic compaction ($HARNESS_COMPACT_PARTS; 0: only on request)."""
    value = os.environ.get(COMPACT_PARTS_ENV, "").strip()
    if not value:
        return COMPACT_PARTS
    if not value.isdigit():
        raise HarnessError(f"{COMPACT_PARTS_ENV}={value!r} is not a number of parts; set e.g. "
                           f"{COMPACT_PARTS_ENV}={COMPACT_PARTS}, or 0 to compact only with `python -m harness.results compact`")
    return int(value)


class _Folder:
    """One table's files, read as one de-duplicated table."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path, self.schema = path, schema

    def read(self, columns: list[str] | None = None) -> tuple[pa.Table, list[Unreadable]]:
        """(rows, unreadable files), each run's rows from one file (harness/store/parts.py)."""
        for _ in range(_READ_ATTEMPTS):
            try:
                return self.read_listing(list_parts(self.path), columns)
            except FileNotFoundError:  # compaction removed a listed file; its rows are in a newer one
                continue
        raise HarnessError(f"{self.path} kept changing while it was read; retry when compaction has finished")

    def read_listing(self, listing: Listing, columns: list[str] | None = None) -> tuple[pa.Table, list[Unreadable]]:
        columns = columns or self.schema.names
        unknown = [c for c in columns if c not in self.schema.names]
        if unknown:
            raise KeyError(f"no column {unknown[0]!r} in {self.path.name}")
        needed = columns if "run_id" in columns else ["run_id", *columns]
        loose, bad = read_files(listing.loose, self.schema, needed)
        compacted = []
        for path in listing.compacted:  # a few files: one read each, newest first
            table, unreadable = read_files([path], self.schema, needed)
            compacted.append(table)
            bad += unreadable
        return newest_rows(loose, compacted).select(columns), bad


def _finished_ids(runs: pa.Table) -> pa.Array:
    return pc.unique(runs.filter(pc.equal(runs.column("status"), "finished")).column("run_id"))


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
        """Whether `run_id` has a finished runs row: the run's own part, else the compacted files,
        which this process reads once and then only when new ones appear (harness/store/finished.py)."""
        return finished_index(self.runs_dir).is_finished(run_id)

    def write(self, run: dict, metrics: Iterable[dict] = (), samples: Iterable[dict] = ()) -> None:
        """One run's parts (metrics first, the runs row last), then a compaction when one is due."""
        run = {**run, "schema_version": SCHEMA_VERSION}
        items = [{**s, "run_id": run["run_id"]} for s in samples]
        rows = [{**m, "run_id": run["run_id"]} for m in metrics]
        with locked(self.root, fcntl.LOCK_SH):  # compaction deletes nothing while a run is being written
            if items:
                _write_atomic(pa.Table.from_pylist(items, schema=SAMPLES_SCHEMA), self.samples_dir / f"{run['run_id']}.parquet")
            if rows:
                _write_atomic(pa.Table.from_pylist(rows, schema=METRICS_SCHEMA), self.metrics_dir / f"{run['run_id']}.parquet")
            fault_point("mid_write")  # tests: metrics on disk, the runs row (commit mark) not yet
            _write_atomic(pa.Table.from_pylist([run], schema=RUNS_SCHEMA), self.runs_dir / f"{run['run_id']}.parquet")
        try:
            self.compact_if_due()
        except Exception as exc:  # the run is stored: a failed merge must not fail it
            print(f"warning: automatic compaction of {self.root} skipped ({type(exc).__name__}: {exc}); "
                  f"`python -m harness.results compact {self.root}` retries it", file=sys.stderr)

    def _snapshot(self):
        """Readers hold the root's shared lock: compaction deletes merged parts only under the
        exclusive one, so a busy compactor can never make a reader miss a file it listed."""
        return locked(self.root, fcntl.LOCK_SH) if self.root.is_dir() else nullcontext()

    def _raise_if_bad(self, bad: list[Unreadable], strict: bool) -> list[str]:
        if bad and strict:
            raise HarnessError(f"unreadable result files: {', '.join(map(str, bad))}; "
                               "delete them and rerun the sweep to recompute those runs")
        return [str(b) for b in bad]

    def read_runs(self, columns: list[str] | None = None, strict: bool = True) -> tuple[pd.DataFrame, list[str]]:
        """(runs rows with only `columns` read, unreadable files); cheaper than `read` when the
        metrics are not needed. Unknown columns raise KeyError."""
        with self._snapshot():
            runs, bad = self._folders()["runs"].read(columns)
        return runs.to_pandas(), self._raise_if_bad(bad, strict)

    def read(self, strict: bool = True, columns: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
        """(runs, metrics of finished runs, unreadable files); `columns` limits the runs columns read.
        With `strict`, unreadable files raise a one-line error naming them; otherwise they are
        skipped and returned."""
        shown = columns or RUNS_SCHEMA.names
        folders = self._folders()
        with self._snapshot():
            runs, bad_runs = folders["runs"].read(list(dict.fromkeys([*shown, "run_id", "status"])))
            metrics, bad_metrics = folders["metrics"].read()
        bad = self._raise_if_bad(bad_runs + bad_metrics, strict)
        metrics = metrics.filter(pc.is_in(metrics.column("run_id"), value_set=_finished_ids(runs)))
        return runs.select(shown).to_pandas(), metrics.to_pandas(), bad

    def read_samples(self) -> pd.DataFrame:
        """Per-item rows of finished runs (empty when no run logged samples)."""
        with self._snapshot():
            runs, _ = self._folders()["runs"].read(["run_id", "status"])
            samples, bad = self._folders()["samples"].read()
        if bad:
            raise HarnessError(f"unreadable sample files: {', '.join(map(str, bad))}; delete them and rerun those runs")
        return samples.filter(pc.is_in(samples.column("run_id"), value_set=_finished_ids(runs))).to_pandas()

    def compact(self, stale_temp_s: float = 3600.0) -> dict[str, tuple[int, int]]:
        """Merge every file of each table into one compacted file; returns {table: (files merged, rows)}.
        Also deletes temp files older than `stale_temp_s` (left by killed writers)."""
        with locked(self.runs_dir, fcntl.LOCK_EX):  # one compactor at a time
            return {name: self._compact_folder(folder, stale_temp_s, merge_all=True) for name, folder in self._folders().items()}

    def compact_if_due(self, parts: int | None = None) -> dict[str, tuple[int, int]] | None:
        """Merge the loose parts (with the newest, smaller compacted files) when runs/ holds at least
        `parts` of them (default: compact_parts()); None when not due or another process compacts."""
        threshold = compact_parts() if parts is None else parts
        if threshold <= 0 or len(list_parts(self.runs_dir).loose) < threshold:
            return None
        with locked(self.runs_dir, fcntl.LOCK_EX, wait=False) as held:
            if not held or len(list_parts(self.runs_dir).loose) < threshold:  # another compactor was first
                return None
            return {name: self._compact_folder(folder, 3600.0, merge_all=False) for name, folder in self._folders().items()}

    def _compact_folder(self, folder: _Folder, stale_temp_s: float, merge_all: bool) -> tuple[int, int]:
        """One folder, under the compactor lock. `merge_all`: every file, and any unreadable file is an
        error; otherwise the loose parts and the newest compacted files up to about twice their rows,
        unreadable files left where they are (readers name them)."""
        self._remove_stale_temps(folder.path, stale_temp_s)
        for _ in range(_READ_ATTEMPTS):
            listing = list_parts(folder.path)
            legacy = any(path.name.startswith(LEGACY_COMPACTED_PREFIX) for path in listing.compacted)
            if not listing.loose and (not merge_all or (len(listing.compacted) < 2 and not legacy)):
                return 0, 0  # a lone legacy-named file is rewritten under today's name (pandas skips `_` files)
            try:
                seen = {path: identity(path) for path in listing.loose}  # before reading: a later rename shows
                loose, bad = read_files(listing.loose, folder.schema)
                merged = listing.compacted if merge_all else _tier(listing.compacted, loose.num_rows)
                seen.update((path, identity(path)) for path in merged)
                table, more_bad = folder.read_listing(Listing([], merged))
            except FileNotFoundError:
                continue
            break
        else:
            raise HarnessError(f"{folder.path} kept changing while it was compacted; compact again later")
        bad += more_bad
        if bad and merge_all:
            raise HarnessError(f"cannot compact {folder.path}: unreadable files {', '.join(map(str, bad))}; "
                               "delete them (their runs rerun on the next sweep) and compact again")
        for unreadable in bad:
            seen.pop(unreadable.path, None)
        table = newest_rows(loose, [table])
        target = folder.path / f"{COMPACTED_PREFIX}{time.time_ns():020d}-{secrets.token_hex(4)}.parquet"
        _write_atomic(table, target)
        with locked(self.root, fcntl.LOCK_EX):  # no write in flight: an unchanged file is one we merged
            for path, before in seen.items():
                try:
                    if identity(path) == before:
                        path.unlink()
                        fault_point("mid_compact")  # tests: a kill here leaves merged parts next to their compacted copy
                except FileNotFoundError:
                    pass
        return len(seen), table.num_rows

    @staticmethod
    def _remove_stale_temps(folder: Path, older_than_s: float) -> None:
        cutoff = time.time() - older_than_s
        for tmp in folder.glob(".*.tmp") if folder.is_dir() else []:
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
            except FileNotFoundError:
                pass


def _tier(compacted: list[Path], rows: int) -> list[Path]:
    """The newest compacted files to merge with `rows` new rows: each while it holds at most twice
    the rows gathered so far, so sizes grow geometrically (O(log N) files)."""
    chosen = []
    for path in compacted:
        size = pq.read_metadata(str(path)).num_rows
        if size > 2 * rows:
            break
        chosen.append(path)
        rows += size
    return chosen
