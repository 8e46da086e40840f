"""The method zoo: every registered method runs end to end through the real CLI."""

from __future__ import annotations

import pytest

import methods
from harness.cli import preflight
from harness.store.result_store import ResultStore
from tests.conftest import run_cli

GPU_ONLY = {"qlora"}  # needs CUDA + bitsandbytes; on CPU it stops with a one-line error by design


def _zoo_methods(sweep: str) -> set[str]:
    jobs = preflight.expand_jobs([f"+sweep={sweep}"])
    return {o.split("=", 1)[1] for job in jobs for o in job if o.startswith("method=")}


@pytest.mark.parametrize("sweep", ["method_zoo", "method_zoo_smollm"])
def test_zoo_covers_every_registered_method(sweep):
    assert _zoo_methods(sweep) == set(methods.names()) - GPU_ONLY


def test_model_fits_resize_only_what_the_tiny_model_cannot_hold():
    fitted = preflight._compose(["model=tiny-random-llama", "method=sorsa"])
    paper = preflight._compose(["model=smollm2-135m", "method=sorsa"])
    assert fitted.method.r == 4 and paper.method.r == 128
    assert preflight._compose(["model=tiny-random-llama", "method=sorsa", "method.r=2"]).method.r == 2  # CLI wins
    assert preflight._compose(["model=tiny-random-llama", "method=lora"]).method.r == 8  # no fit file: untouched


@pytest.mark.slow
def test_method_zoo_writes_one_finished_row_per_method(tmp_path, test_data):
    # two joblib workers: the CI machine's two cores, and the parallel launcher exercised on every method
    proc = run_cli(["+sweep=method_zoo", f"data.dir={test_data}", "+launcher=local_parallel"], tmp_path, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs, metrics, bad = ResultStore(tmp_path).read()
    assert bad == []
    assert sorted(runs["method"]) == sorted(set(methods.names()) - GPU_ONLY)
    assert set(runs["status"]) == {"finished"}, runs.loc[runs["status"] != "finished", ["method", "error"]]
    final = metrics[metrics["step"].isna()]
    assert set(final["run_id"]) == set(runs["run_id"])
    trained = runs[runs["method"] != "base"]  # the untouched base model trains and stores nothing
    assert (trained["trainable_params"] > 0).all() and (trained["adapter_bytes"] > 0).all()
