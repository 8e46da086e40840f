"""`python -m harness.report RESULTS --site OUT` on a real sweep (tiny-random-llama: lora, ia3 and the base
model, two seeds, three steps), opened from file:// in Chromium (playwright driving the system's browser)
with every http(s) request aborted: none is attempted, the console stays clean, the leaderboard shows the
report's own cells and sorts and filters, every Pareto plot has a mark per configuration and its cost
buttons change the x axis, points hover and open their configuration's page, and every table's CSV is
beside it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.report.build import task_report
from harness.report.load import load_results
from tests.conftest import REPO, run_cli
from tests.e2e.browser import Visit

# The slow target: it needs Chromium (.ci/run installs Debian's), which the README's test command
# must not require of a fresh clone.
pytestmark = pytest.mark.slow

# As small as a real sweep gets: 3 steps of 2 short sequences, 2 evaluation items, a 2-prompt KL probe.
SWEEP = ["hydra.mode=MULTIRUN", "model=tiny-random-llama", "method=lora,ia3,none", "seed=0,1", "budget=smoke",
         "train.batch_size=2", "train.max_seq_len=64", "task.n_eval=2", "task.max_new_tokens=4", "forgetting.probes=[kl_drift]",
         "forgetting.kl_drift.n_prompts=2", "forgetting.kl_drift.new_tokens=4", "eval.latency_tokens=0"]
CONFIGS = 3  # lora, ia3, base
COSTS = ("Trainable parameters", "Peak training memory", "Training time", "Forgetting: KL drift from base")
POINTS = ".scatterlayer .trace .points path.point"


def run_report(results: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.report", str(results), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def results(tmp_path_factory, test_data) -> Path:
    root = tmp_path_factory.mktemp("results")
    proc = run_cli(SWEEP, root, {"HARNESS_DATA_DIR": str(test_data)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


@pytest.fixture(scope="module")
def site(results, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    proc = run_report(results, "--site", str(out), "--reference", "pissa_vs_lora_cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"(open {out / 'index.html'} in a browser)" in proc.stdout
    assert not (results / "report").exists()  # --site alone writes the site, not the markdown report
    return out


@pytest.fixture
def visit(browser, site):
    opened = Visit(browser, site)
    yield opened
    opened.context.close()
    assert opened.requests == []  # nothing left the machine
    assert opened.errors == []  # a clean console


def test_every_page_opens_offline_and_its_local_links_resolve(visit, site):
    pages = sorted(str(p.relative_to(site)) for p in site.rglob("*.html") if not p.name.startswith("reference_"))
    assert {"index.html", "gsm8k_leaderboard.html", "gsm8k_pareto.html", "gsm8k_forgetting.html", "gsm8k_curves.html",
            "references.html"} <= set(pages)
    assert len(list((site / "configs").glob("*.html"))) == CONFIGS
    for name in pages:
        page = visit.open(name)
        for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))"):
            if not href.startswith("https://"):
                assert (site / name).parent.joinpath(href).resolve().is_file(), (name, href)
    assert (site / "plotly.min.js").stat().st_size > 1_000_000  # plotly.js beside the pages, not from a CDN
    for name in ("gsm8k_pareto.html", "gsm8k_forgetting.html", "gsm8k_curves.html"):
        assert 'src="plotly.min.js"' in (site / name).read_text() and "cdn" not in (site / name).read_text().lower()


def test_the_leaderboard_shows_the_reports_cells_and_sorts_and_filters(visit, results):
    page = visit.open("gsm8k_leaderboard.html")
    report = task_report(load_results(results), "gsm8k")
    expected = report.leaderboard_text()
    assert len(visit.rows("leaderboard")) == CONFIGS == len(expected)
    headline = next(c for c in expected.columns if c.endswith("CI)"))
    assert visit.column("leaderboard", headline) == expected[headline].tolist()  # the same intervals ...
    assert visit.column("leaderboard", "Rank") == [str(r) for r in expected["Rank"]]  # ... and shared ranks
    page.click('#leaderboard th[data-name="Trainable params"]')
    assert visit.column("leaderboard", "Method") == ["base", "ia3", "lora"]  # 0, 384, 16,384
    page.click('#leaderboard th[data-name="Trainable params"]')
    assert visit.column("leaderboard", "Method") == ["lora", "ia3", "base"]
    page.select_option('select[data-table="leaderboard"][data-filter="Family"]', "scaling")
    assert visit.column("leaderboard", "Method") == ["ia3"]
    assert page.text_content('.rows-shown[data-table="leaderboard"]') == "1 of 3 rows"
    page.select_option('select[data-table="leaderboard"][data-filter="Family"]', "")
    page.select_option('select[data-table="leaderboard"][data-filter="Budget"]', "smoke")
    page.fill('input[data-table="leaderboard"][data-search]', "lora")
    assert visit.column("leaderboard", "Method") == ["lora"]
    page.fill('input[data-table="leaderboard"][data-search]', "")
    assert len(visit.rows("leaderboard")) == CONFIGS
    assert len(visit.rows("comparisons")) == len(report.comparisons) == 3  # every pair of three, same seeds


def test_each_pareto_plot_has_a_mark_per_configuration_and_a_cost_selector(visit):
    page = visit.open("gsm8k_pareto.html")
    plots = page.locator(".js-plotly-plot")
    assert plots.count() == 2  # the headline (exact match) and answer cross-entropy
    for i in range(plots.count()):
        plot = plots.nth(i)
        assert plot.locator(".updatemenu-button").all_text_contents() == list(COSTS)
        assert plot.locator(".g-xtitle text").text_content() == "Trainable parameters (count), lower is better"
        # the base model's zero parameters are off the log axis: its dotted reference line stands in
        assert plot.locator(POINTS).count() == CONFIGS - 1
        assert "base model" in plot.locator(".annotation-text").all_text_contents()
        front = plot.evaluate("p => p.data.find(t => t.name === 'Pareto frontier').x")
        assert front and min(front) > 0  # ... and off its frontier, which would run to the axis' edge
        plot.locator(".updatemenu-button", has_text="Peak training memory").click()
        assert plot.locator(".g-xtitle text").text_content() == "Peak training memory (MiB), lower is better"
        assert plot.locator(POINTS).count() == CONFIGS  # the base as a star among the others
        assert plot.locator(".scatterlayer .trace .js-line").count() >= 1  # the frontier
    point = plots.nth(1).locator(POINTS).first
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    hover = page.locator(".hoverlayer .hovertext").first.text_content()
    assert "Answer cross-entropy" in hover and "Peak training memory" in hover and "95% CI over 2 seeds" in hover
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_url("**/configs/gsm8k_*.html")


def test_learning_vs_forgetting_and_training_curves_draw(visit):
    page = visit.open("gsm8k_forgetting.html")
    assert page.locator(POINTS).count() == 2 * CONFIGS + CONFIGS  # every run, and every configuration's means
    assert page.locator(".g-xtitle text").text_content().startswith("Forgetting: KL drift from base")
    page = visit.open("gsm8k_curves.html")
    assert page.locator(".js-plotly-plot").count() == 1  # one model x budget
    assert sorted(page.locator(".legendtext").all_text_contents()) == ["ia3 (2 seeds)", "lora (2 seeds)"]
    assert page.locator(".scatterlayer .trace .js-line").count() >= 2


def test_a_configuration_page_has_its_config_seeds_and_paper(visit, site, results):
    page = visit.open("gsm8k_leaderboard.html")
    page.click('#leaderboard a:text-is("lora")')
    page.wait_for_url("**/configs/gsm8k_lora_*.html")
    assert page.get_attribute('a:text-matches("LoRA: Low-Rank Adaptation")', "href") == "https://arxiv.org/abs/2106.09685"
    runs = pd.read_parquet(results / "runs")
    lora = runs[runs["method"] == "lora"].sort_values("seed")
    assert visit.column("runs", "seed") == ["0", "1"] and visit.column("runs", "run_id") == lora["run_id"].tolist()
    shown = json.loads(page.text_content("pre"))
    assert shown == json.loads(lora["config_json"].iloc[0]) and shown["method"]["name"] == "lora"
    csv = pd.read_csv(Path(page.url.removeprefix("file://")).with_name(Path(page.url).stem + "_runs.csv"))
    assert csv["train_time_s"].tolist() == pytest.approx(lora["train_time_s"].tolist())
    base = next((site / "configs").glob("gsm8k_base_*.html")).read_text()
    assert "none: the pretrained model as it is" in base and "arxiv.org" not in base


def test_every_table_links_its_csv(visit, site):
    for name in ["gsm8k_leaderboard.html", "references.html", *(f"configs/{p.name}" for p in (site / "configs").glob("*.html"))]:
        page = visit.open(name)
        tables = page.eval_on_selector_all("table.interactive", "ts => ts.map(t => t.id)")
        links = page.eval_on_selector_all(".controls a, .note a", "as => as.map(a => a.getAttribute('href'))")
        csvs = [href for href in links if href.endswith(".csv")]
        assert csvs and len(csvs) >= len(tables), name
        for table, href in zip(tables, csvs):
            data = pd.read_csv((site / name).parent / href)
            if table in ("leaderboard", "comparisons", "runs", "summary"):
                assert len(data) == len(visit.rows(table)), (name, table)
    assert "0 holds" in (site / "references.html").read_text()  # the claim verdicts of pissa_vs_lora_cpu


def test_an_unwritable_site_folder_is_a_one_line_error(results, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    proc = run_report(results, "--site", str(blocker / "site"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == (f"error: --site {blocker / 'site'}: cannot write there (Not a directory); "
                                   "pass a folder you can create and write to")
