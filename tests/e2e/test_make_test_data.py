"""The vendored test data (tests/data): every file as its MANIFEST.md says, under the size cap, and
rebuilt byte for byte by scripts/make_test_data.py from the full data dir."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from tests.conftest import REPO, TEST_DATA

SCRIPT = REPO / "scripts" / "make_test_data.py"
MAX_TOTAL_BYTES = 5_000_000  # issue 14: at most 5 MB vendored


def manifest_rows() -> dict[str, tuple[int, str]]:
    """file -> (bytes, sha256) from tests/data/MANIFEST.md's file table."""
    rows = {}
    for line in (TEST_DATA / "MANIFEST.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 10 and cells[9].startswith("`"):
            rows[cells[0]] = (int(cells[8].replace(",", "")), cells[9].strip("`"))
    return rows


def vendored_files() -> dict[str, bytes]:
    return {p.relative_to(TEST_DATA).as_posix(): p.read_bytes()
            for p in sorted(TEST_DATA.rglob("*")) if p.is_file() and p.name != "MANIFEST.md"}


def test_every_vendored_file_matches_its_manifest_row_and_the_total_is_capped():
    rows, files = manifest_rows(), vendored_files()
    assert len(files) > 100 and sorted(rows) == sorted(files)
    for path, data in files.items():
        assert (len(data), hashlib.sha256(data).hexdigest()) == rows[path], path
    total = sum(len(d) for d in files.values())
    assert total <= MAX_TOTAL_BYTES
    assert f"Total: {len(files)} files, {total:,} bytes" in (TEST_DATA / "MANIFEST.md").read_text(encoding="utf-8")


def test_the_script_refuses_a_folder_that_is_not_a_full_data_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, str(SCRIPT), "--from", str(tmp_path / "empty"), "--to", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and proc.stderr.strip().count("\n") == 0
    assert "is not a full data dir" in proc.stderr and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_regenerating_from_the_full_data_dir_reproduces_tests_data(full_data, tmp_path):
    out = tmp_path / "data"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--from", str(full_data), "--to", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rebuilt = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    vendored = {**vendored_files(), "MANIFEST.md": (TEST_DATA / "MANIFEST.md").read_bytes()}
    assert sorted(rebuilt) == sorted(vendored)
    assert [p for p in vendored if rebuilt[p] != vendored[p]] == []
