"""The committed leaderboard (leaderboards/cpu_smollm2_sst2/): its results are what its README says
they are (the base model and 16 methods covering every family, 3 seeds each, at one compute budget;
six methods at 0.45 % trainable parameters), real runs of the commit the README names, and the
methods separate; its reports are what the README's commands make of those results today; and the
site built from them works offline in Chromium (slow target)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.report.build import task_report
from harness.report.load import load_results
from harness.report.site.method_info import method_info
from tests.conftest import REPO
from tests.e2e.browser import Visit

LEADERBOARD = Path("leaderboards") / "cpu_smollm2_sst2"  # relative to the repository, as the README's commands are
RESULTS = LEADERBOARD / "results"
TASK = "glue_sst2"
COMPUTE, PARAMS = "steps100", "params_0.45pct_steps100"
REPORTS = {"compute": COMPUTE, "params": PARAMS}  # report/<name>/: the runs of one budget
PARAM_MATCHED = {"lora", "pissa", "vera", "loha", "prefix_tuning", "series_adapter"}
TARGET_PCT, TOLERANCE = 0.45, 0.05  # conf/budget/params_0.45pct.yaml
POINTS = ".scatterlayer .trace .points path.point"


def readme() -> str:
    return (REPO / LEADERBOARD / "README.md").read_text()


def report_command(budget: str, out: Path | str) -> list[str]:
    return ["python", "-m", "harness.report", str(RESULTS), "--out", str(out), "--only", f"budget={budget}"]


@pytest.fixture(scope="module")
def results():
    return load_results(REPO / RESULTS)


def test_its_runs_are_real_runs_of_the_commit_its_readme_names(results):
    runs = results.runs
    assert results.problems == []
    (sha,) = set(runs["git_sha"])
    assert f"`{sha}`" in readme() and not runs["git_dirty"].any()
    assert set(runs["status"]) == {"finished"} and runs["hardware_json"].str.contains('"device_type":"cpu"').all()
    assert runs["data_json"].str.contains('"eval_sha256"').all() and set(runs["model"]) == {"smollm2-135m"}
    assert pd.read_parquet(REPO / RESULTS / "runs")["run_id"].is_unique  # plain pandas reads the compacted folder


def test_the_compute_budget_has_every_family_three_seeds_each_and_the_methods_separate(results):
    compute = results.runs[results.runs["budget"] == COMPUTE]
    seeds = compute.groupby("method")["seed"].apply(sorted)
    assert len(seeds) == 17 and "base" in seeds and all(s == [0, 1, 2] for s in seeds)
    import methods

    every_family = {methods.get(name).family for name in methods.names()}
    assert {info.family for info in method_info(list(seeds.index)).values()} == every_family
    board = task_report(load_results(REPO / RESULTS, {"budget": [COMPUTE]}), TASK).leaderboard
    best, worst = board.iloc[0], board.iloc[-1]
    assert best["ci_low"] > worst["ci_high"]  # the spread exceeds the 95 % intervals
    assert board["rank"].nunique() >= 3


def test_the_parameter_budget_matches_its_target_within_tolerance(results):
    params = results.runs[results.runs["budget"] == PARAMS]
    assert set(params["method"]) == PARAM_MATCHED
    assert (params.groupby("method")["seed"].apply(sorted).map(tuple) == (0, 1, 2)).all()
    assert ((params["trainable_pct"] / TARGET_PCT - 1).abs() <= TOLERANCE).all()


@pytest.mark.parametrize("name", REPORTS)
def test_its_report_is_what_the_readme_command_makes(name, tmp_path):
    committed = REPO / LEADERBOARD / "report" / name
    assert " ".join(report_command(REPORTS[name], LEADERBOARD / "report" / name)) in readme()
    proc = subprocess.run([sys.executable, *report_command(REPORTS[name], tmp_path)[1:]], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in committed.iterdir())
    for made in tmp_path.iterdir():
        if made.suffix in (".md", ".csv"):  # figures differ in their bytes (fonts, metadata), never in their numbers
            assert made.read_text() == (committed / made.name).read_text(), f"{made.name}: rerun the README's command"


@pytest.mark.slow
def test_its_site_opens_offline_with_a_row_and_a_mark_per_configuration(browser, tmp_path):
    site = tmp_path / "site"
    command = ["python", "-m", "harness.report", str(RESULTS), "--site", str(LEADERBOARD / "site")]
    assert " ".join(command) in readme()
    proc = subprocess.run([sys.executable, *command[1:-1], str(site)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = task_report(load_results(REPO / RESULTS), TASK).summary
    visit = Visit(browser, site)
    page = visit.open(f"{TASK}_leaderboard.html")
    assert len(visit.rows("leaderboard")) == len(summary) == 17 + len(PARAM_MATCHED)
    page.select_option('select[data-table="leaderboard"][data-filter="Budget"]', PARAMS)
    assert sorted(visit.column("leaderboard", "Method")) == sorted(PARAM_MATCHED)
    page = visit.open(f"{TASK}_pareto.html")
    plot = page.locator(".js-plotly-plot").first
    plot.locator(".updatemenu-button", has_text="Peak training memory").click()
    assert plot.locator(POINTS).count() == len(summary)
    visit.context.close()
    assert visit.requests == [] and visit.errors == []
