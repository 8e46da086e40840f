"""Skip-done lookups: whether a run id finished, without reading the whole store for each job.

Each process (a sweep's parent, every joblib worker) keeps one index per runs/ folder. A lookup
checks the run's own part by name first (O(1): it holds the newest row when it exists); otherwise it
answers from the statuses in the compacted files, which the index reads once and afterwards only
when new compacted files appear (another process finished runs and compacted them meanwhile).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow.parquet as pq

from harness.store.parts import compacted_time, list_compacted

_ATTEMPTS = 5  # list again this often when a compacted file is merged away under the index
_SETTLED_NS = 2_000_000_000  # a folder unchanged this long has a trustworthy mtime


class FinishedIndex:
    """Statuses of the runs in one runs/ folder's compacted files, read incrementally."""

    def __init__(self, runs_dir: Path):
        self.runs_dir = runs_dir
        self.files_read = 0  # compacted files read so far (tests: each is read once)
        self._newest: dict[str, tuple[int, str]] = {}  # run_id -> (time of the file holding it, status)
        self._seen: set[str] = set()  # names of the compacted files already read
        self._listed_at: int | None = None  # the folder's mtime when it was last listed, if trustworthy

    def is_finished(self, run_id: str) -> bool:
        status = self._own_status(run_id)
        if status is None:
            self._refresh()
            status = self._newest.get(run_id, (0, ""))[1]
        return status == "finished"

    def _own_status(self, run_id: str) -> str | None:
        """The status in the run's own part; None when it has none (compacted, or never written)."""
        part = self.runs_dir / f"{run_id}.parquet"
        if not part.is_file():  # one stat: cheaper than a failed open
            return None
        try:
            return pq.read_table(str(part), columns=["status"]).column("status")[0].as_py()
        except FileNotFoundError:  # compacted meanwhile
            return None
        except Exception:  # an unreadable part is not a finished run: the rerun rewrites it
            return ""

    def _refresh(self) -> None:
        """Read the compacted files not read yet. A folder whose mtime has not moved since a listing
        holds no new file, so a finished store is listed once (a large folder lists slowly: its
        directory keeps the size of the most parts it ever held)."""
        try:
            mtime = os.stat(self.runs_dir).st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self._listed_at:
            return
        for _ in range(_ATTEMPTS):
            try:
                for path in list_compacted(self.runs_dir):  # oldest first
                    if path.name not in self._seen:
                        self._read(path)
                break
            except FileNotFoundError:  # merged into a newer file meanwhile: list again
                continue
        # A change within the same clock tick as `mtime` would not move it: trust only an older one.
        self._listed_at = mtime if time.time_ns() - mtime > _SETTLED_NS else None

    def _read(self, path: Path) -> None:
        try:
            table = pq.read_table(str(path), columns=["run_id", "status"])
        except FileNotFoundError:
            raise
        except Exception:  # unreadable: its runs count as unfinished (readers name the file)
            self._seen.add(path.name)
            return
        when = compacted_time(path)
        for run_id, status in zip(table.column("run_id").to_pylist(), table.column("status").to_pylist()):
            if self._newest.get(run_id, (-1, ""))[0] < when:
                self._newest[run_id] = (when, status)
        self._seen.add(path.name)
        self.files_read += 1


_INDEXES: dict[str, FinishedIndex] = {}


def finished_index(runs_dir: Path) -> FinishedIndex:
    """This process's index of `runs_dir` (created on first use)."""
    key = os.path.abspath(runs_dir)
    if key not in _INDEXES:
        _INDEXES[key] = FinishedIndex(Path(key))
    return _INDEXES[key]
