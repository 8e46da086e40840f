"""The files of one table folder: atomic writes, folder locks, listing, and reading many parts at once.

A folder holds loose parts (`<run_id>.parquet`, one per run) and compacted files
(`compacted-<time_ns>-<token>.parquet`, the time zero-padded). Each run's rows come from one file:
its loose part when there is one, else the newest compacted file holding it. Folders compacted by
earlier versions hold `_compacted-...` files, which pyarrow's and pandas' folder readers skip (a
leading `_` marks metadata to them); the store reads them alike, and `python -m harness.results
compact` merges them into a file of the new name.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from harness.core import atomic

COMPACTED_PREFIX = "compacted-"
LEGACY_COMPACTED_PREFIX = "_compacted-"  # earlier versions' name: read, never written


def is_compacted(name: str) -> bool:
    return name.startswith((COMPACTED_PREFIX, LEGACY_COMPACTED_PREFIX))


def compacted_time(path: Path) -> int:
    """The time_ns in a compacted file's name."""
    return int(path.name.removeprefix("_").removeprefix(COMPACTED_PREFIX).split("-")[0])


def _by_time(paths: list[Path]) -> list[Path]:
    """Compacted files, oldest first (ties, within one clock tick, by name)."""
    return sorted(paths, key=lambda p: (compacted_time(p), p.name))


def write_atomic(table: pa.Table, path: Path) -> None:
    """Temp file `.<stem>.*.tmp` in the same folder, fsync, rename: readers see the whole part or
    none of it (tests kill at the fault point `mid_part`, which leaves a stale temp file behind)."""
    atomic.write_atomic(path, lambda f: pq.write_table(table, f), f".{path.stem}.", "mid_part")


@contextmanager
def locked(folder: Path, mode: int, wait: bool = True) -> Iterator[bool]:
    """flock on a folder itself (no lock file to leave behind; the kernel releases it even when the
    holder is killed). Yields whether the lock is held: with `wait=False` a busy lock yields False."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, mode if wait else mode | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


def identity(path: Path) -> tuple[int, int, int]:
    """Parts are replaced only by rename: an unchanged identity means unchanged contents."""
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


class Listing(NamedTuple):
    loose: list[Path]  # by name
    compacted: list[Path]  # newest first


def list_parts(folder: Path) -> Listing:
    """The folder's readable files; temp files (`.<name>.<random>.tmp`) are never listed."""
    try:
        names = [e.name for e in os.scandir(folder)]
    except (FileNotFoundError, NotADirectoryError):  # no store there (yet), or a file in the way
        return Listing([], [])
    names = sorted(n for n in names if n.endswith(".parquet") and not n.startswith("."))
    compacted = _by_time([folder / n for n in names if is_compacted(n)])[::-1]
    return Listing([folder / n for n in names if not is_compacted(n)], compacted)


def list_compacted(folder: Path) -> list[Path]:
    """Only the compacted files, oldest first: cheaper than `list_parts` when loose parts are many."""
    try:
        names = [e.name for e in os.scandir(folder) if is_compacted(e.name) and e.name.endswith(".parquet")]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return _by_time([folder / n for n in names])


class Unreadable(NamedTuple):
    path: Path
    error: str  # the exception's type

    def __str__(self) -> str:
        return f"{self.path} ({self.error})"


def read_files(paths: Sequence[Path], schema: pa.Schema, columns: list[str] | None = None) -> tuple[pa.Table, list[Unreadable]]:
    """Rows of every file in one dataset scan, and the unreadable files, whose rows are left out.
    A file that vanished raises FileNotFoundError: the caller lists again."""
    columns = columns or schema.names
    if not paths:
        return pa.schema([schema.field(c) for c in columns]).empty_table(), []
    try:  # by name, never through Python file objects (apache/arrow#33975: an abort at exit)
        return ds.dataset([str(p) for p in paths], schema=schema, format="parquet").to_table(columns=columns), []
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError):
        pass  # a damaged file: read one by one to name it and keep the others
    tables, bad = [], []
    for path in paths:
        try:
            tables.append(pq.read_table(str(path), schema=schema, columns=columns))
        except FileNotFoundError:
            raise
        except Exception as exc:
            bad.append(Unreadable(path, type(exc).__name__))
    if not tables:
        return pa.schema([schema.field(c) for c in columns]).empty_table(), bad
    return pa.concat_tables(tables), bad


def newest_rows(loose: pa.Table, compacted: Sequence[pa.Table]) -> pa.Table:
    """One table in which each run's rows come from one file: from `loose` (the loose parts) when
    it holds the run, else from the first of `compacted` (newest first) that does. Needs `run_id`."""
    kept, taken = [loose], pc.unique(loose.column("run_id"))
    for table in compacted:
        if len(taken):
            table = table.filter(pc.invert(pc.is_in(table.column("run_id"), value_set=taken)))
        if table.num_rows:
            kept.append(table)
            taken = pa.concat_arrays([taken, pc.unique(table.column("run_id"))])
    return pa.concat_tables(kept[::-1])  # oldest first, loose parts last
