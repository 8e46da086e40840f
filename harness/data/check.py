"""Can a task or probe run from a data dir? Each file it reads must be there, match the checksum
manifest where the manifest records it, and parse with the task's own reader; then the task's own
loader must load it from the local source alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.data import manifest
from harness.data.needs import Need

SHOWN = 3  # files named per kind of problem; the rest are counted


@dataclass
class Verdict:
    """What stops `need` from running from the data dir (nothing: it can run)."""

    need: Need
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    unparsable: list[str] = field(default_factory=list)
    load_error: str | None = None
    present: int = 0  # files found (optional ones included)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt or self.unparsable or self.load_error)

    def line(self) -> str:
        head = f"{self.need.kind:<5} {self.need.name:<26}"
        if self.ok:
            n = self.present
            return f"{head} ok ({n} file{'s' * (n != 1)})" if n else f"{head} ok (reads no data)"
        problems = [_listed(what, files) for what, files in
                    (("missing", self.missing), ("corrupt", self.corrupt), ("unparsable", self.unparsable)) if files]
        if self.load_error:
            problems.append(f"its loader fails: {self.load_error}")
        return f"{head} CANNOT RUN: " + "; ".join(problems)


def _listed(what: str, files: list[str]) -> str:
    more = f" and {len(files) - SHOWN} more" if len(files) > SHOWN else ""
    return f"{what} {len(files)}: {', '.join(files[:SHOWN])}{more}"


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def check(need: Need, root: Path) -> Verdict:
    recorded = manifest.read_manifest(root)
    verdict = Verdict(need)
    for file in {f.relative: f for d in need.datasets for f in d.files}.values():
        path = root / file.relative
        if not path.is_file():
            if file.required:
                verdict.missing.append(file.relative)
            continue
        verdict.present += 1
        problem = manifest.mismatch(path, recorded.get(file.relative))
        if problem:
            verdict.corrupt.append(f"{file.relative} ({problem})")
            continue
        try:
            file.read(path)
        except Exception as exc:  # whatever the parser raises, the file cannot be used
            verdict.unparsable.append(f"{file.relative} ({_one_line(exc)})")
    if verdict.ok:
        try:
            need.load(str(root))
        except Exception as exc:  # the task's own loader: any failure means the run would fail too
            verdict.load_error = _one_line(exc)
    return verdict
