from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_DATA = REPO / "tests" / "data"  # vendored cuts of the real files (scripts/make_test_data.py, tests/data/MANIFEST.md)

# Under pytest-xdist (`-n N`) each worker, and every CLI it starts, takes 1/N of the cores in torch
# threads, as the harness's own side-by-side launchers do: N workers at torch's default would
# oversubscribe the machine and run slower than one.
if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // _workers))


@pytest.fixture(scope="session")
def test_data() -> Path:
    """The vendored data dir: small cuts of the real files in the full data dir's layout, all the fast target reads."""
    return TEST_DATA


@pytest.fixture(scope="session")
def full_data() -> Path:
    """The full data dir named by HARNESS_DATA_DIR, for slow tests that need whole files; a one-line failure without it."""
    value = os.environ.get("HARNESS_DATA_DIR", "")
    path = Path(value).resolve() if value else None
    if path is None or path == TEST_DATA or not (path / "MANIFEST.md").is_file() or not (path / "gsm8k" / "train.jsonl").is_file():
        problem = f"HARNESS_DATA_DIR={value} is not a full data dir" if value else "HARNESS_DATA_DIR is not set"
        pytest.fail(f"{problem}: this slow test needs the full data; run e.g. HARNESS_DATA_DIR=../shared/data python -m pytest -m slow",
                    pytrace=False)
    return path


@pytest.fixture(scope="session")
def tiny_model():
    """tiny-random-llama as the harness loads it (a fresh copy per call of the returned factory)."""
    import yaml

    from harness.core.paths import CONF_DIR
    from harness.models.loading import load_model

    cfg = yaml.safe_load((CONF_DIR / "model" / "tiny-random-llama.yaml").read_text())
    return lambda: load_model(cfg, CONF_DIR)


@pytest.fixture(scope="module")
def bases():
    """tiny-random-llama loaded once per base dtype (fp32, bf16); `bases(dtype)` returns the loaded
    model and a fresh copy of its weights."""
    import copy

    import yaml

    from harness.core.paths import CONF_DIR
    from harness.models.loading import load_model

    cfg = yaml.safe_load((CONF_DIR / "model" / "tiny-random-llama.yaml").read_text())
    loaded = {dtype: load_model(cfg, CONF_DIR, dtype=dtype) for dtype in ("fp32", "bf16")}
    return lambda dtype: (loaded[dtype], copy.deepcopy(loaded[dtype].model))


def run_cli(args: list[str], results: Path, env_extra: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "harness", f"results_dir={results}", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )
