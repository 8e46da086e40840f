"""`python -m harness.report` on a real results folder (the smoke sweep with two seeds, run once for
this module): its tables equal a pandas recomputation from the parquet, every figure is written as
PNG and PDF, damaged part files are named while the rest is reported, and the notebooks run headless."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys

import matplotlib.image
import nbformat
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from nbclient import NotebookClient
from scipy import stats as sp

from harness.report.build import task_report
from harness.report.figures import config_colors
from harness.report.load import load_results
from harness.report.pareto import frontier, pareto_figure, pareto_mask
from tests.conftest import REPO, run_cli

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
# Exact match is 0 for every run of a random model; answer CE differs between seeds and methods.
HEADLINE = "answer_ce"
COSTS = ("trainable_params", "peak_mem_mib", "train_time_s", "forgetting_ce_delta")


def run_report(results, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.report", str(results), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def results(tmp_path_factory, test_data):
    root = tmp_path_factory.mktemp("results")
    proc = run_cli(["+sweep=smoke", "seed=0,1"], root, {"HARNESS_DATA_DIR": str(test_data)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


@pytest.fixture(scope="module")
def report(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    proc = run_report(results, "--out", str(out), "--metric", HEADLINE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def per_run(results) -> pd.DataFrame:
    """Straight from the parquet with pandas: one row per run, its final metrics as columns."""
    runs = pd.read_parquet(results / "runs")
    metrics = pd.read_parquet(results / "metrics")
    final = metrics[metrics["step"].isna()]
    run_task = final["run_id"].map(runs.set_index("run_id")["task"])
    own = (final["task"] == run_task) | final["task"].isin(["forgetting/general_text", "forgetting/kl_drift"])
    return runs.join(final[own].pivot(index="run_id", columns="metric", values="value"), on="run_id")


def test_leaderboard_equals_pandas_recomputation(results, report):
    out, proc = report
    board = pd.read_csv(out / "gsm8k_leaderboard.csv").set_index("method")
    grouped = per_run(results).groupby("method")
    n, mean, std = grouped[HEADLINE].count(), grouped[HEADLINE].mean(), grouped[HEADLINE].std()
    half = sp.t.ppf(0.975, n - 1) * std / np.sqrt(n)
    expected = {
        "n_seeds": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half,
        "trainable_params": grouped["trainable_params"].mean(), "peak_mem_mib": grouped["peak_mem_bytes"].mean() / 2**20,
        "train_time_s": grouped["train_time_s"].mean(), "forgetting_mean": grouped["forgetting_ce_delta"].mean(),
    }
    assert sorted(board.index) == ["lora", "pissa"] and (board["metric"] == HEADLINE).all()
    for column, values in expected.items():
        pd.testing.assert_series_equal(board[column], values.reindex(board.index).astype(float), check_names=False,
                                       check_dtype=False, rtol=1e-9)
    lora, pissa = board.loc["lora"], board.loc["pissa"]
    overlap = lora["ci_low"] <= pissa["ci_high"] and pissa["ci_low"] <= lora["ci_high"]
    assert sorted(board["rank"]) == ([1, 1] if overlap else [1, 2])
    assert board["rank"].is_monotonic_increasing  # best first
    markdown, html = (out / "gsm8k_leaderboard.md").read_text(), (out / "gsm8k_leaderboard.html").read_text()
    assert html.startswith("<!doctype html>") and "<table" in html
    for method, row in board.iterrows():
        line = next(line for line in markdown.splitlines() if f"| {method} " in line)
        mean_text, half_text = re.search(r"(-?[\d.]+) ± ([\d.]+)", line).groups()  # the headline cell
        rounding = 0.5 * 10.0 ** -len(mean_text.partition(".")[2]) + 1e-12
        assert abs(float(mean_text) - row["mean"]) <= rounding
        assert abs(float(half_text) - (row["ci_high"] - row["ci_low"]) / 2) <= rounding
        assert f"{mean_text} ± {half_text}" in html and f"{mean_text} ± {half_text}" in proc.stdout


def test_paired_comparison_equals_scipy(results, report):
    out, _ = report
    comparison = pd.read_csv(out / "gsm8k_comparisons.csv").iloc[0]
    by_seed = per_run(results).pivot(index="seed", columns="method", values=HEADLINE)
    expected = sp.ttest_rel(by_seed["lora"], by_seed["pissa"])
    ci = expected.confidence_interval(0.95)
    assert (comparison["a"], comparison["b"], comparison["n_seeds"]) == ("lora", "pissa", 2)
    assert comparison["difference"] == pytest.approx((by_seed["lora"] - by_seed["pissa"]).mean())
    assert (comparison["ci_low"], comparison["ci_high"]) == pytest.approx((ci.low, ci.high))
    assert comparison["p_value"] == pytest.approx(expected.pvalue)
    assert bool(comparison["within_noise"]) == (ci.low <= 0 <= ci.high)


def test_every_figure_is_written_as_png_and_pdf(report):
    out, _ = report
    stems = [f"gsm8k_pareto_{HEADLINE}_vs_{cost}" for cost in COSTS] + ["gsm8k_learning_vs_forgetting", "gsm8k_train_loss"]
    assert sorted(p.stem for p in out.glob("*.png")) == sorted(stems)
    for stem in stems:
        image = matplotlib.image.imread(out / f"{stem}.png")
        assert image.shape[0] >= 600 and image.shape[1] >= 1000  # 200 dpi
        assert (image[..., :3] < 0.8).mean() > 0.01  # drawn on, not blank
        pdf = out / f"{stem}.pdf"
        assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 5000
    index = (out / "index.md").read_text()
    assert all(f"({stem}.png)" in index for stem in stems)


def test_pareto_frontier_points_are_labelled(results):
    loaded = load_results(results)
    assert loaded.headline("gsm8k") == "exact_match_flexible"  # the default headline where it was measured
    report = task_report(loaded, "gsm8k", HEADLINE)
    for cost in COSTS:
        fig = pareto_figure(report.summary, cost, HEADLINE, report.higher_is_better, config_colors(loaded.runs["config"]), "t")
        labelled = "\n".join(text.get_text() for text in fig.axes[0].texts).split("\n")
        assert sorted(labelled) == sorted(frontier(report.summary, cost, HEADLINE, report.higher_is_better)["label"])
        assert fig.axes[0].get_xlabel().endswith("lower is better")


def test_pareto_mask_is_direction_aware():
    memory, accuracy = [100, 200, 50, 300, math.nan], [0.5, 0.6, 0.4, 0.6, 0.9]
    assert pareto_mask(memory, accuracy, False, True).tolist() == [True, True, True, False, False]
    assert pareto_mask(memory, accuracy, True, True).tolist() == [False, False, False, True, False]
    assert pareto_mask(memory, accuracy, False, False).tolist() == [False, False, True, False, False]


def test_damaged_parts_are_named_and_the_rest_reported(results, tmp_path):
    damaged = tmp_path / "results"
    shutil.copytree(results, damaged, ignore=shutil.ignore_patterns("sweeps", "cache"))
    runs = pd.read_parquet(damaged / "runs")
    corrupt = damaged / "metrics" / f"{runs.loc[runs['method'] == 'pissa', 'run_id'].iloc[0]}.parquet"
    corrupt.write_bytes(b"not a parquet file")
    missing = damaged / "metrics" / f"{runs.loc[runs['method'] == 'lora', 'run_id'].iloc[0]}.parquet"
    missing.unlink()
    proc = run_report(damaged, "--metric", HEADLINE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert all(line.startswith("warning: ") for line in lines), proc.stderr  # one line each, no traceback
    assert any(str(corrupt) in line and "delete them and rerun" in line for line in lines), proc.stderr
    assert any(str(missing) in line and "missing" in line for line in lines), proc.stderr
    board = pd.read_csv(damaged / "report" / "gsm8k_leaderboard.csv").set_index("method")
    assert board["n_seeds"].to_dict() == {"lora": 1, "pissa": 1}
    assert (damaged / "report" / "gsm8k_train_loss.png").is_file()


def test_rows_of_an_older_metric_version_are_never_compared(results, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(results, copy, ignore=shutil.ignore_patterns("sweeps", "cache"))
    runs = pd.read_parquet(copy / "runs")
    part = copy / "metrics" / f"{runs.loc[runs['method'] == 'lora', 'run_id'].iloc[0]}.parquet"
    table = pq.read_table(part)
    rows = table.to_pandas()
    rows.loc[rows["metric"] == HEADLINE, "metric_version"] = f"gsm8k/{HEADLINE}/v2"
    pq.write_table(pa.Table.from_pandas(rows, schema=table.schema, preserve_index=False), part)
    loaded = load_results(copy)
    assert any(p.startswith(f"gsm8k/{HEADLINE}: left out 3 rows") and f"gsm8k/{HEADLINE}/v1" in p for p in loaded.problems)
    board = task_report(loaded, "gsm8k", HEADLINE).leaderboard
    assert board[["method", "n_seeds"]].values.tolist() == [["lora", 1]]


def test_runs_record_their_hardware_and_costs_from_different_machines_are_flagged(results, tmp_path):
    runs = pd.read_parquet(results / "runs")
    for info in map(json.loads, runs["hardware_json"]):
        assert info["device_type"] == "cpu" and info["gpu_count"] == 0 and info["cpu_model"] and info["torch_threads"] >= 1
    assert runs["gpu_hours"].isna().all()  # CPU runs held no GPU
    copy = tmp_path / "results"
    shutil.copytree(results, copy, ignore=shutil.ignore_patterns("sweeps", "cache"))
    part = copy / "runs" / f"{runs.loc[(runs['method'] == 'lora') & (runs['seed'] == 1), 'run_id'].iloc[0]}.parquet"
    table = pq.read_table(part)
    row = table.to_pandas()
    gpu = {"device_type": "cuda", "gpu_count": 1, "gpus": [{"name": "NVIDIA H100 80GB HBM3"}], "torch_threads": 16}
    row["hardware_json"] = json.dumps(gpu)
    pq.write_table(pa.Table.from_pandas(row, schema=table.schema, preserve_index=False), part)
    loaded = load_results(copy)
    assert any(p.startswith("train time and peak memory pool runs on different hardware for: ") and "lora" in p
               and "1x NVIDIA H100 80GB HBM3" in p and "pissa" not in p for p in loaded.problems), loaded.problems
    board = task_report(loaded, "gsm8k", HEADLINE).leaderboard_text().set_index("Method")
    assert "1x NVIDIA H100 80GB HBM3" in board.loc["lora", "Hardware"] and "cpu: " in board.loc["lora", "Hardware"]
    assert "H100" not in board.loc["pissa", "Hardware"]


def test_only_reports_the_runs_it_picks_and_names_a_value_no_run_has(results, tmp_path):
    proc = run_report(results, "--out", str(tmp_path / "pissa"), "--metric", HEADLINE, "--only", "method=pissa")
    assert proc.returncode == 0, proc.stderr[-3000:]
    board = pd.read_csv(tmp_path / "pissa" / "gsm8k_leaderboard.csv")
    assert board["method"].tolist() == ["pissa"] and board["n_seeds"].tolist() == [2]
    assert "Runs of method pissa only." in (tmp_path / "pissa" / "index.md").read_text()
    proc = run_report(results, "--out", str(tmp_path / "both"), "--metric", HEADLINE, "--only", "method=pissa",
                      "--only", "method=lora", "--only", "budget=smoke")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(pd.read_csv(tmp_path / "both" / "gsm8k_leaderboard.csv")["method"]) == ["lora", "pissa"]
    for only, error in (("method=dora", "--only method=dora: no finished run has method dora; these have: lora, pissa"),
                        ("colour=red", "--only colour=red: write KEY=VALUE[,VALUE...] with KEY one of task, model, budget, "
                                       "method, e.g. --only budget=steps100")):
        proc = run_report(results, "--out", str(tmp_path / "none"), "--only", only)
        assert proc.returncode == 2 and proc.stderr.strip() == f"error: {error}", proc.stderr
        assert not (tmp_path / "none").exists()


def test_nothing_to_report_is_a_one_line_error(tmp_path):
    proc = run_report(tmp_path / "nowhere")
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: {tmp_path / 'nowhere'} has no runs/ folder; " \
        "pass the results_dir a sweep wrote to (default: results)"
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    proc = run_report(tmp_path / "empty")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: no finished runs with metrics in")


def test_notebooks_are_stored_without_outputs():
    assert [p.name for p in NOTEBOOKS] == ["leaderboard.ipynb", "paper_figures.ipynb", "pareto.ipynb"]
    for path in NOTEBOOKS:
        code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        assert code and all(not c.outputs and c.execution_count is None for c in code), path


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_headless(path, results, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_RESULTS_DIR", str(results))
    monkeypatch.setenv("HARNESS_FIGURES_DIR", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the kernel imports this checkout's harness, whatever is installed
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    shown = {kind for o in outputs for kind in o.get("data", {})}
    assert ("text/html" if path.stem == "leaderboard" else "image/png") in shown
    if path.stem == "paper_figures":
        assert sorted(p.stem for p in tmp_path.glob("*.pdf")) == sorted(p.stem for p in tmp_path.glob("*.png"))
        assert any(p.stem == "gsm8k_train_loss" for p in tmp_path.glob("*.pdf"))


def test_intervals_show_two_significant_digits_of_the_half_width_and_no_rounding_noise():
    from harness.report.tables import format_interval

    assert format_interval(0.5, 0.4, 0.6, 3) == "0.50 ± 0.10"
    assert format_interval(1.2077, 1.1981, 1.2173, 3) == "1.2077 ± 0.0096"
    assert format_interval(0.05, 0.05 - 2e-17, 0.05 + 2e-17, 3) == "0.05 ± 0"  # three seeds of 1/20 each
    assert format_interval(0.3, float("nan"), float("nan"), 1) == "0.3 (n=1, no CI)"
