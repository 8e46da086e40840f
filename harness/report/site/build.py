"""`write_site`: the whole site of a results folder. Per task the report's TaskReport
(harness/report/build.py) feeds a leaderboard page, a Pareto page, a learning-versus-forgetting page,
a training-curves page and a page per configuration; with references, a references page; an index
links them all. The command (`python -m harness.report RESULTS --site OUT`) goes through here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.report.build import TaskReport, selection_note, task_report
from harness.report.labels import short_label
from harness.report.load import load_results
from harness.report.reference import WrittenReference
from harness.report.site.configs import config_pages
from harness.report.site.html import Link, anchor, note, page, section, text
from harness.report.site.leaderboard import leaderboard_page
from harness.report.site.marks import hex_colors
from harness.report.site.method_info import method_info
from harness.report.site.names import INDEX, REFERENCES, task_file
from harness.report.site.output import SiteFolder, plotly_js_version
from harness.report.site.references import references_page
from harness.report.site.views import curves_page, forgetting_page, pareto_page
from harness.report.stats import CONFIDENCE

VIEWS = (("leaderboard", "Leaderboard"), ("pareto", "Pareto frontiers"), ("forgetting", "Learning vs. forgetting"),
         ("curves", "Training curves"))


@dataclass
class WrittenSite:
    out_dir: Path
    files: list[Path]
    problems: list[str]
    tasks: list[TaskReport]
    references: list[WrittenReference] = field(default_factory=list)

    @property
    def index(self) -> Path:
        return self.out_dir / INDEX

    def leaderboard(self, task: str) -> Path:
        return self.out_dir / task_file(task, "leaderboard")


def task_nav(task: str, references: bool) -> list[Link]:
    return [Link("Index", INDEX), *(Link(f"{task}: {name}" if view == "leaderboard" else name, task_file(task, view))
                                     for view, name in VIEWS), *([Link("References", REFERENCES)] if references else [])]


def _index(results_dir: Path, problems: list[str], reports: list[TaskReport], references: list[WrittenReference],
           confidence: float, only: Mapping[str, Sequence[str]]) -> str:
    parts = [note('<span class="warning">warning: ' + text(p) + "</span>") for p in problems]
    for report in reports:
        views = "".join(f"<li>{anchor(name, task_file(report.task, view))}</li>" for view, name in VIEWS)
        facts = (f"{len(report.summary)} configurations, {len(report.runs)} runs; headline: {text(short_label(report.headline))}"
                 f"; forgetting: {text(short_label(report.forgetting).removeprefix('Forgetting: ')) if report.forgetting else 'not measured'}.")
        parts.append(section(report.task, note(facts), f'<ul class="tasks">{views}</ul>'))
    if references:
        parts.append(section("References", note(anchor("Published numbers and claims", REFERENCES) + ": "
                                                + "; ".join(f"{text(r.name)}: {text(r.summary)}" for r in references) + ".")))
    parts.append(note(f"Intervals: {confidence:.0%} confidence over seeds. Figures: plotly.js {text(plotly_js_version())}, "
                      "loaded from this folder: the site opens from disk with no network."))
    lead = f"Results folder: <code>{text(results_dir)}</code>" + (f"; runs of {text(selection_note(only))} only" if only else "")
    nav = [Link("Index", INDEX), *([Link("References", REFERENCES)] if references else [])]
    return page("PEFT benchmark report", "\n".join(parts), nav, lead=lead)


def write_site(results_dir: Path | str, out_dir: Path | str, metric: str | None = None, confidence: float = CONFIDENCE,
               references: list[str] | tuple[str, ...] = (), only: Mapping[str, Sequence[str]] | None = None) -> WrittenSite:
    """Write the site of the runs `only` picks (load.select; default all) to `out_dir` (open
    `out_dir`/index.html). An unwritable `out_dir` is a HarnessError before anything is read; so is
    a results folder with nothing to report."""
    site = SiteFolder(out_dir)
    results_dir = Path(results_dir)
    results = load_results(results_dir, only)
    reports = [task_report(results, task, metric, confidence) for task in results.tasks]
    site.write_assets()
    colors = hex_colors(results.runs["config"])
    info = method_info(sorted(results.runs["method"].unique()))
    for report in reports:
        nav = task_nav(report.task, bool(references))
        leaderboard_page(report, info, nav, site)
        pareto_page(report, colors, nav, site)
        forgetting_page(report, colors, nav, site)
        curves_page(report, colors, nav, site)
        config_pages(report, info, nav, site)
    top = [Link("Index", INDEX), Link("References", REFERENCES)]
    written = references_page(results, list(references), confidence, top, site) if references else []
    site.write_text(INDEX, _index(results_dir, results.problems, reports, written, confidence, only or {}))
    return WrittenSite(site.root, site.files, results.problems, reports, written)
