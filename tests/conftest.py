from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("HARNESS_TEST_DATA_DIR", REPO.parent / "shared" / "data"))

# Under pytest-xdist (`-n N`) each worker, and every CLI it starts, takes 1/N of the cores in torch
# threads, as the harness's own side-by-side launchers do: N workers at torch's default would
# oversubscribe the machine and run slower than one.
if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // _workers))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "gsm8k" / "train.jsonl").is_file():
        pytest.fail(f"test data missing: {SHARED_DATA} (set HARNESS_TEST_DATA_DIR to a folder in ../shared/data's layout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model():
    """tiny-random-llama as the harness loads it (a fresh copy per call of the returned factory)."""
    import yaml

    from harness.experiment import CONF_DIR
    from harness.models import load_model

    cfg = yaml.safe_load((CONF_DIR / "model" / "tiny-random-llama.yaml").read_text())
    return lambda: load_model(cfg, CONF_DIR)


def run_cli(args: list[str], results: Path, env_extra: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "harness", f"results_dir={results}", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )
