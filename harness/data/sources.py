"""Try a dataset's sources in the configured order; explain every miss when none works.

Each task supplies one loader per source kind (`hub`, `local`, `package`); a loader returns its
items or raises `SourceUnavailable` with a reason. The order comes from `data.order` in the
config, so moving between the hub, a local data dir and packaged fallbacks never needs code edits.
Files in a local data dir are read through `read_local`: a missing file is a miss (the next source
is tried), a damaged one (binary garbage, a cut-off download) a one-line error naming the file.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable, Mapping, Sequence, TypeVar

from harness.core.errors import HarnessError

T = TypeVar("T")


class SourceUnavailable(Exception):
    """This source cannot serve the data here; the message says why and how to provide it."""


class DataMissing(HarnessError):
    """No source could serve a dataset (optional data, e.g. a forgetting probe's, may be skipped)."""


def first_available(what: str, loaders: Mapping[str, Callable[[], T]], order: Sequence[str]) -> tuple[str, T]:
    unknown = [kind for kind in order if kind not in ("hub", "local", "package")]
    if unknown:
        raise HarnessError(f"data.order has unknown source {', '.join(unknown)}; valid: hub, local, package")
    tried = []
    for kind in order:
        loader = loaders.get(kind)
        if loader is None:
            tried.append(f"{kind}: not offered for {what}")
            continue
        try:
            return kind, loader()
        except SourceUnavailable as miss:
            tried.append(f"{kind}: {miss}")
    raise DataMissing(f"no data for {what}; tried " + "; ".join(tried))


def hub_loader(path: str, name: str | None, split: str, data_files: str | None = None) -> Callable[[], list[dict]]:
    """`datasets.load_dataset(path, name, split=split)`; `data_files` serves files published outside a
    hub dataset repo (e.g. `path="json"` and the raw URL of a file pinned to a commit)."""

    def load() -> list[dict]:
        from harness.models.hub import hub_usable

        if not hub_usable():
            raise SourceUnavailable("the Hugging Face hub is unreachable (set HF_HUB_OFFLINE=1 to use the HF cache)")
        import datasets

        try:
            return [dict(row) for row in datasets.load_dataset(path, name, split=split, data_files=data_files)]
        except Exception as exc:  # datasets raises many kinds; the message is what matters
            what = f"{path!r}, {name!r}" + (f", data_files={data_files!r}" if data_files else "")
            raise SourceUnavailable(f"load_dataset({what}) failed: {str(exc).splitlines()[0]}") from exc

    return load


def local_path(data_dir: str | None, relative: str) -> Path:
    """`<data.dir>/<relative>` when that file exists, else SourceUnavailable saying how to provide it."""
    if not data_dir:
        raise SourceUnavailable("data.dir is not set (set HARNESS_DATA_DIR or data.dir=PATH)")
    path = Path(data_dir).expanduser() / relative
    if not path.is_file():
        raise SourceUnavailable(f"{path} does not exist (set data.dir or HARNESS_DATA_DIR to a folder in ../shared/data's layout)")
    return path


# What parsing a damaged file raises: UnicodeDecodeError and json.JSONDecodeError are ValueErrors;
# rows of the wrong shape end in IndexError/KeyError (LookupError) or TypeError.
PARSE_ERRORS = (ValueError, csv.Error, LookupError, TypeError)


def read_local(data_dir: str | None, relative: str, parse: Callable[[Path], T]) -> T:
    """`parse(<data.dir>/<relative>)`. A missing file is SourceUnavailable (`local_path`); a file that
    cannot be decoded or parsed is a HarnessError naming it and how to replace it."""
    path = local_path(data_dir, relative)
    try:
        return parse(path)
    except PARSE_ERRORS as exc:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise HarnessError(f"{path} is damaged and cannot be read ({reason}); replace it with a good copy, e.g. "
                           f"`python -m harness.data fetch --to {data_dir}`") from exc
