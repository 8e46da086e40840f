"""Rebuild tests/data, the small real-data fixtures of the fast test target, from a full data dir.

    python scripts/make_test_data.py --from ../shared/data [--to tests/data]

Every vendored file is a cut of the file at the same path in the full data dir (same layout, same
format, so the harness's loaders read it unchanged): the first rows of a table, the first items of a
JSON array re-serialised in the original's style, or the whole file. CUTS below declares each cut
once; the script checks each source against the full dir's MANIFEST.md (its sha256), writes the cuts
and writes tests/data/MANIFEST.md (origin, licence, cut, rows, bytes, sha256) from the same table.
Output is deterministic: the same full dir gives the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import hashlib
import io
import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAX_TOTAL_BYTES = 5_000_000  # the vendored folder's size cap (issue 14)
MANIFEST_TITLE = "# MANIFEST: the vendored test data\n"


@dataclass(frozen=True)
class Cut:
    """How one file (or every file a glob pattern matches) is cut: `first` rows, then rows `extra` by index.

    kind: lines (physical lines), tsv (the header line, then lines), csv (records as a CSV reader
    parses them, kept byte for byte), json (items of the top-level array, re-serialised as the
    original is written), copy (the whole file).
    """

    pattern: str
    kind: str
    first: int | None = None
    extra: tuple[int, ...] = ()
    why: str = ""


ARC_E_OVERLAP = "ARC-Easy's 2 train/test duplicates (train 1087, 2246 = test 242, 493), kept so overlap removal is tested"

# The first matching row wins, so a file-specific row goes before the pattern that would also match it.
CUTS: tuple[Cut, ...] = (
    Cut("gsm8k/train.jsonl", "lines", 200, why="k-shot draws, 3 smoke steps x batch 4, lr-search validation carve"),
    Cut("gsm8k/test.jsonl", "lines", 200, why="the task's default n_eval (100); reference-solution checks"),
    Cut("mmlu/dev/*_dev.csv", "copy", why="all 5 dev rows: the 5-shot prompts"),
    Cut("mmlu/val/*_val.csv", "csv", 5, why="the local training pool (val)"),
    Cut("mmlu/test/college_physics_test.csv", "csv", 21, why="test row 20 repeats val row 0: the dropped-duplicate check"),
    Cut("mmlu/test/*_test.csv", "csv", 8, why="the general-suite probe (up to 6 items per subject) and per-subject runs"),
    Cut("glue/CoLA/train.tsv", "lines", 200, why="headerless; smoke training"),
    Cut("glue/CoLA/dev.tsv", "lines", 100, why="headerless; n_eval up to 16"),
    Cut("glue/SST-2/train.tsv", "tsv", 200, why="smoke training"),
    Cut("glue/SST-2/dev.tsv", "tsv", 100, why="n_eval up to 16"),
    Cut("glue/MRPC/train.tsv", "tsv", 100, why="smoke training"),
    Cut("glue/MRPC/dev.tsv", "tsv", 50, why="n_eval up to 16; row 1 has unbalanced quotes"),
    Cut("glue/MRPC/LICENSE-MSR-SSLA.htm", "copy", why="MRPC's licence"),
    Cut("glue/RTE/train.tsv", "tsv", 100, why="smoke training"),
    Cut("glue/RTE/dev.tsv", "tsv", 50, why="n_eval up to 16"),
    Cut("glue/STS-B/train.tsv", "tsv", 100, why="smoke training"),
    Cut("glue/STS-B/dev.tsv", "tsv", 50, why="n_eval up to 16"),
    Cut("glue/STS-B/LICENSE.txt", "copy", why="STS-B's licence"),
    Cut("glue/QNLI/dev.tsv", "tsv", 1050, why="the default carve evaluates within dev[:1000] and trains on the rest"),
    Cut("wikitext2/test.txt", "lines", 300, why="about 89,000 characters of general text (calibration reads 20,000)"),
    Cut("llm_adapters/dataset/ARC-Easy/test.json", "json", 60, (242, 493), why="the general suite's 50 items; " + ARC_E_OVERLAP),
    Cut("llm_adapters/dataset/ARC-Easy/train.json", "json", 40, (1087, 2246), why="a substitute training pool; " + ARC_E_OVERLAP),
    Cut("llm_adapters/dataset/*/train.json", "json", 40, why="a substitute training pool (train_limit 64, 3 smoke steps)"),
    Cut("llm_adapters/dataset/*/test.json", "json", 60, why="n_eval up to 50; answer-extraction checks"),
    Cut("probes/icl/boolq.jsonl", "lines", 40, (2417,),
        why="lm-eval's boolq offline; item 2417's passage has a line starting \"Question: \""),
)
COPIED = ("gsm8k/", "mmlu/", "glue/", "wikitext2/test.txt", "llm_adapters/dataset/", "probes/icl/boolq.jsonl")  # what the fast tests read
SKIPPED = ("llm_adapters/dataset/mathqa/",)  # an optional extra set no test reads


@dataclass(frozen=True)
class Origin:
    """A file's row in the full data dir's MANIFEST.md."""

    repository: str
    commit: str
    source_path: str
    rows: str
    sha256: str
    licence: str


def read_origins(manifest: Path) -> tuple[dict[str, Origin], dict[str, str]]:
    """(file -> its origin, repository -> full commit) from the full data dir's MANIFEST.md tables."""
    origins, commits = {}, {}
    for line in manifest.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 8 and cells[2].startswith("`") and cells[6].startswith("`"):
            origins[cells[0]] = Origin(cells[1], cells[2].strip("`"), cells[3].strip("`"), cells[4], cells[6].strip("`"), cells[7])
        elif len(cells) == 4 and re.fullmatch(r"`[0-9a-f]{40}`", cells[1]):
            commits[cells[0]] = cells[1].strip("`")
    return origins, commits


def cut_for(relative: str) -> Cut | None:
    if relative.startswith(SKIPPED) or not relative.startswith(COPIED):
        return None
    return next((c for c in CUTS if fnmatch.fnmatchcase(relative, c.pattern)), None)


def pick(items: list, cut: Cut) -> list:
    missing = [i for i in cut.extra if i >= len(items)]
    if missing:
        raise SystemExit(f"error: {cut.pattern} has {len(items)} rows, so no row {missing[0]}; fix CUTS in {__file__}")
    return items[: cut.first] + [items[i] for i in cut.extra]


def lines_of(text: str) -> list[str]:
    """Physical lines, each with its "\\n" (only "\\n" ends a line, as in the loaders' line reads)."""
    return list(io.StringIO(text, newline="\n"))


def csv_records(text: str) -> list[str]:
    """The CSV records of `text` as they are written in it (quoted line breaks included)."""
    lines = lines_of(text)
    consumed = 0

    def feed():
        nonlocal consumed
        for line in lines:
            consumed += 1
            yield line

    records, start = [], 0
    for _ in csv.reader(feed()):
        records.append("".join(lines[start:consumed]))
        start = consumed
    return records


def json_style(items: list) -> str:
    return json.dumps(items, indent=4)


def cut_file(source: Path, cut: Cut) -> tuple[bytes, int | None]:
    """(the vendored bytes, their row count as the full MANIFEST counts rows; None for licence files)."""
    raw = source.read_bytes()
    if cut.kind == "copy":  # licence files have no rows; the other whole files are MMLU dev CSVs
        return raw, None if "LICENSE" in source.name else len(csv_records(raw.decode("utf-8")))
    text = raw.decode("utf-8")
    if cut.kind == "lines":
        kept = pick(lines_of(text), cut)
        return "".join(kept).encode("utf-8"), len(kept)
    if cut.kind == "tsv":
        header, *lines = lines_of(text)
        kept = pick(lines, cut)
        return (header + "".join(kept)).encode("utf-8"), len(kept)
    if cut.kind == "csv":
        kept = pick(csv_records(text), cut)
        return "".join(kept).encode("utf-8"), len(kept)
    if cut.kind == "json":
        items = json.loads(text)
        if json_style(items) != text:
            raise SystemExit(f"error: {source} is not written as json.dumps(indent=4) writes it; "
                             f"teach json_style in {__file__} its style before cutting it")
        kept = pick(items, cut)
        return json_style(kept).encode("utf-8"), len(kept)
    raise SystemExit(f"error: unknown cut kind {cut.kind!r} for {cut.pattern}")


def describe(cut: Cut, full_rows: str) -> str:
    if cut.kind == "copy":
        return "whole file"
    unit = {"lines": "lines", "tsv": "rows after the header line", "csv": "records", "json": "array items"}[cut.kind]
    text = f"first {cut.first:,} {unit}"
    if cut.extra:
        text += f", then items {', '.join(map(str, cut.extra))}"
    return f"{text} (of {full_rows})"


def _written_by_this_script(folder: Path) -> bool:
    manifest = folder / "MANIFEST.md"
    return manifest.is_file() and manifest.read_text(encoding="utf-8").startswith(MANIFEST_TITLE)


def build(source_dir: Path, target_dir: Path) -> list[dict]:
    """Write every cut into target_dir (emptied first); one dict per vendored file, in path order."""
    manifest = source_dir / "MANIFEST.md"
    if not manifest.is_file():
        raise SystemExit(f"error: {source_dir} is not a full data dir (no MANIFEST.md); pass --from ../shared/data")
    origins, commits = read_origins(manifest)
    entries = []
    for relative in sorted(origins):
        cut = cut_for(relative)
        if cut is None:
            continue
        source, origin = source_dir / relative, origins[relative]
        if not source.is_file() or hashlib.sha256(source.read_bytes()).hexdigest() != origin.sha256:
            raise SystemExit(f"error: {source} is missing or differs from its MANIFEST.md sha256; use an unchanged full data dir")
        data, rows = cut_file(source, cut)
        entries.append({"path": relative, "cut": cut, "origin": origin, "full_commit": commits.get(origin.repository, ""),
                        "data": data, "rows": rows})
    unused = [c.pattern for c in CUTS if not any(e["cut"] is c for e in entries)]
    if unused:
        raise SystemExit(f"error: no file in {source_dir} matches CUTS entry {unused[0]}; fix CUTS in {__file__}")
    if target_dir.exists():
        if any(target_dir.iterdir()) and not _written_by_this_script(target_dir):
            raise SystemExit(f"error: {target_dir} is not empty and holds no MANIFEST.md of this script; "
                             "pass --to a new folder or tests/data")
        shutil.rmtree(target_dir)
    for e in entries:
        path = target_dir / e["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(e["data"])
    return entries


def render_manifest(entries: list[dict]) -> str:
    total = sum(len(e["data"]) for e in entries)
    out = io.StringIO()
    out.write(MANIFEST_TITLE + "\n")
    out.write("Small cuts of the real public files in the full data dir (`../shared/data` on the project's machines), "
              "in the same layout and formats, so the harness's loaders read them unchanged. The fast test target "
              "reads only this folder. Written by `scripts/make_test_data.py` (do not edit by hand): "
              "`python scripts/make_test_data.py --from ../shared/data` rebuilds this folder byte for byte; "
              "every cut is declared once in that script's `CUTS` table.\n\n")
    out.write("Origin (repository, commit, path) and licence are those the full data dir's MANIFEST.md gives for the "
              "whole file. Rows are counted as there: `.jsonl` and `.txt` lines, `.json` array items, `.csv` records, "
              "GLUE `.tsv` lines after the header (CoLA has none); licence files n/a. Cuts of a JSON array are the "
              "chosen items re-serialised exactly as the originals are written (`json.dumps(indent=4)`); every other "
              "cut is a byte prefix of the original, ending at a line or record boundary, followed by the extra "
              "lines its cut names, as they are written.\n\n")
    out.write(f"Total: {len(entries)} files, {total:,} bytes ({total / 1e6:.2f} MB; the cap is {MAX_TOTAL_BYTES / 1e6:.0f} MB).\n\n")
    out.write("## Sources\n\n| repository | commit |\n|---|---|\n")
    for repository, commit in sorted({(e["origin"].repository, e["full_commit"]) for e in entries}):
        out.write(f"| {repository} | `{commit}` |\n")
    out.write("\n## Files\n\n| file | repository | commit | path in repository | licence | cut | why this size | rows | bytes | sha256 |\n")
    out.write("|---|---|---|---|---|---|---|---|---|---|\n")
    for e in entries:
        o, cut = e["origin"], e["cut"]
        rows = "n/a" if e["rows"] is None else f"{e['rows']:,}"
        out.write(f"| {e['path']} | {o.repository} | `{o.commit}` | `{o.source_path}` | {o.licence} | "
                  f"{describe(cut, o.rows)} | {cut.why} | {rows} | {len(e['data']):,} | "
                  f"`{hashlib.sha256(e['data']).hexdigest()}` |\n")
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path, required=True, help="a full data dir (with its MANIFEST.md)")
    parser.add_argument("--to", dest="target", type=Path, default=REPO / "tests" / "data", help="default: tests/data")
    args = parser.parse_args(argv)
    source, target = args.source.resolve(), args.target.resolve()
    if source == target or source in target.parents:
        raise SystemExit("error: --to must lie outside --from")
    entries = build(source, target)
    (target / "MANIFEST.md").write_text(render_manifest(entries), encoding="utf-8")
    total = sum(len(e["data"]) for e in entries)
    print(f"wrote {len(entries)} files, {total:,} bytes, and MANIFEST.md to {target}")
    if total > MAX_TOTAL_BYTES:
        print(f"error: {total:,} bytes exceed the {MAX_TOTAL_BYTES:,}-byte cap; cut harder in CUTS", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
