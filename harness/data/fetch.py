"""Write datasets into a local data dir from the first source that serves them: the Hugging Face
hub, the HF cache (the same `datasets.load_dataset` calls in offline mode), or another data dir
(`--from`, copied). Hub rows become files in the local layout by each file's `render`; every file is
parsed by its task's own reader before it is renamed into place, a dataset's files all from one
source; the checksum manifest records each file written."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from harness.data import manifest
from harness.data.files import temp_beside
from harness.data.layout import LocalDataset, LocalFile
from harness.data.sources import SourceUnavailable, hub_loader


@dataclass(frozen=True)
class Source:
    """Where files can come from: `unusable()` says why not at all (or None); `produce(file, tmp)`
    writes the file's content to `tmp` and returns its provenance, or raises SourceUnavailable."""

    name: str
    unusable: Callable[[], str | None]
    produce: Callable[[LocalFile, Path], str]


@contextmanager
def hf_cache_only() -> Iterator[None]:
    """`datasets` and `huggingface_hub` in offline mode (the HF cache only), as HF_HUB_OFFLINE=1 at
    start-up would make them: both read that variable when imported, so their flags are set too."""
    import datasets.config
    import huggingface_hub.constants

    saved = (os.environ.get("HF_HUB_OFFLINE"), datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE)
    os.environ["HF_HUB_OFFLINE"] = "1"
    datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        env, datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved
        datasets.config.HF_DATASETS_OFFLINE = datasets.config.HF_HUB_OFFLINE
        if env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = env


def hub_source(offline: bool) -> Source:
    """The hub itself, or (offline) the HF cache, through `datasets.load_dataset`."""
    from harness.models.hub import hub_reachable, offline_by_env

    name = "hf-cache" if offline else "hub"

    def unusable() -> str | None:
        if offline:
            return None
        if offline_by_env():
            return "HF_HUB_OFFLINE is set"
        return None if hub_reachable() else "the Hugging Face hub is unreachable"

    def produce(file: LocalFile, tmp: Path) -> str:
        if not file.hub or file.render is None:
            raise SourceUnavailable("not on the hub; copy it from a data dir that has it (--from DIR)")
        with hf_cache_only() if offline else nullcontext():
            rows = [row for r in file.hub for row in hub_loader(r.path, r.name, r.split, r.data_files)()]
        tmp.write_bytes(file.render(rows))
        return f"{name}: " + "; ".join(r.describe() for r in file.hub)

    return Source(name, unusable, produce)


def copy_source(root: Path) -> Source:
    """Another data dir in the same layout; a file its own manifest records must match it."""
    recorded = manifest.read_manifest(root)

    def produce(file: LocalFile, tmp: Path) -> str:
        path = root / file.relative
        if not path.is_file():
            raise SourceUnavailable(f"{path} does not exist")
        problem = manifest.mismatch(path, recorded.get(file.relative))
        if problem:
            raise SourceUnavailable(f"{path} is corrupt ({problem})")
        shutil.copyfile(path, tmp)
        return f"copy of {path}"

    return Source(f"--from {root}", lambda: None, produce)


@dataclass
class Outcome:
    """One dataset's result: the source that served it (None: none did) and what was said."""

    dataset: LocalDataset
    source: str | None
    detail: str

    def line(self) -> str:
        return f"{self.dataset.name:<34} {'fetched' if self.source else 'NOT FETCHED'}: {self.detail}"


def _stage(dataset: LocalDataset, to: Path, source: Source) -> tuple[list[tuple[LocalFile, Path, str]], list[str]]:
    """Every file of `dataset` from `source` in a temp file beside its target, parsed by its reader:
    ([(file, temp, provenance)], optional files it lacks). SourceUnavailable (temps removed) on a miss."""
    staged, lacking = [], []
    try:
        for file in dataset.files:
            tmp = temp_beside(to / Path(file.relative).name)  # in `to`: a failed dataset leaves no folders
            try:
                provenance = source.produce(file, tmp)
                file.read(tmp)
            except SourceUnavailable:
                tmp.unlink()
                if file.required:
                    raise
                lacking.append(file.relative)
                continue
            except Exception as exc:  # rows it cannot render, or a file its reader cannot parse
                tmp.unlink()
                raise SourceUnavailable(f"{file.relative} is unusable ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from exc
            staged.append((file, tmp, provenance))
    except BaseException:
        for _, tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    return staged, lacking


def fetch_dataset(dataset: LocalDataset, to: Path, sources: list[Source]) -> Outcome:
    """`dataset` into `to` from the first source that has all its required files; the manifest
    records what was written."""
    misses = []
    for source in sources:
        reason = source.unusable()
        if reason:
            misses.append(f"{source.name}: {reason}")
            continue
        try:
            staged, lacking = _stage(dataset, to, source)
        except SourceUnavailable as miss:
            misses.append(f"{source.name}: {miss}")
            continue
        entries = {}
        for file, tmp, provenance in staged:
            target = to / file.relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
            entries[file.relative] = manifest.entry(target, provenance)
        manifest.record(to, entries)
        detail = f"{len(staged)} file{'s' * (len(staged) != 1)} from {source.name}"
        return Outcome(dataset, source.name, detail + "".join(f"; optional {x} not in {source.name}" for x in lacking))
    return Outcome(dataset, None, "; ".join(misses))
