"""What a task reads from a local data dir (`data.dir`, ../shared/data's layout), declared by the
task itself (`Task.local_datasets`) next to the loader that reads it: each file's path, the parser
its `local` loader uses, and how rows from the Hugging Face hub become that file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

Rows = list[dict]


@dataclass(frozen=True)
class HubRequest:
    """One `datasets.load_dataset(path, name, split=split, data_files=data_files)` call."""

    path: str
    name: str | None
    split: str
    data_files: str | None = None

    def describe(self) -> str:
        return " ".join(str(p) for p in (self.path, self.name, self.split, self.data_files) if p)


@dataclass(frozen=True)
class LocalFile:
    """A file under the data dir. `read(path)` is the parser the task's local loader uses (it raises
    on a file it cannot parse); `render(rows)` turns the rows of the `hub` requests, concatenated,
    into the file's bytes (no `hub`: the file can only be copied from another data dir).
    `required=False`: the task runs without the file (it uses it when present)."""

    relative: str
    read: Callable[[Path], Any]
    hub: tuple[HubRequest, ...] = ()
    render: Callable[[Rows], bytes] | None = None
    required: bool = True


@dataclass(frozen=True)
class LocalDataset:
    """Files fetched together (one line of `fetch`'s report), named like their folder."""

    name: str
    files: tuple[LocalFile, ...]


def jsonl_bytes(rows: Rows) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def json_array_bytes(rows: Rows) -> bytes:
    return (json.dumps(rows, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def json_render(relative: str) -> Callable[[Rows], bytes]:
    """The writer for a JSON rows file: JSON Lines for `.jsonl`, else one JSON array."""
    return jsonl_bytes if relative.endswith(".jsonl") else json_array_bytes


def read_json_rows(path: Path) -> Rows:
    """A JSON rows file as `json_render` writes it: JSON Lines for `.jsonl`, else one JSON array."""
    with open(path, encoding="utf-8") as f:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in f if line.strip()]
        return json.load(f)


def json_file(relative: str, hub: HubRequest | None, required: bool = True) -> LocalFile:
    """A file of JSON rows (an array, or JSON Lines by suffix) as the hub serves them."""
    return LocalFile(relative, read_json_rows, (hub,) if hub else (), json_render(relative), required)


def merge(datasets: Iterable[LocalDataset]) -> list[LocalDataset]:
    """Datasets by name, each file once (required when any asker requires it), in first-seen order."""
    by_name: dict[str, dict[str, LocalFile]] = {}
    for dataset in datasets:
        files = by_name.setdefault(dataset.name, {})
        for f in dataset.files:
            seen = files.get(f.relative)
            files[f.relative] = f if seen is None or (f.required and not seen.required) else seen
    return [LocalDataset(name, tuple(files.values())) for name, files in by_name.items()]
