"""The report of a results folder: per task, the tables and figures, and the files they are written
to. The command (`python -m harness.report`) and the notebooks both go through here."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from harness.report.aggregate import config_summary
from harness.report.figures import config_colors, learning_forgetting_figure, loss_curve_figure, save_figure
from harness.report.labels import config_labels, short_label
from harness.report.load import COSTS, Results, load_results
from harness.report.pareto import pareto_figure
from harness.report.stats import CONFIDENCE
from harness.report.tables import format_comparisons, format_leaderboard, html_page, leaderboard, markdown, paired_comparisons

# Besides the headline, plotted against every cost: a likelihood metric still separates methods
# when exact match is flat (small models, short budgets).
SECONDARY_QUALITY = ("answer_ce",)


@dataclass
class TaskReport:
    task: str
    headline: str
    forgetting: str | None
    higher_is_better: dict[str, bool]
    confidence: float
    runs: pd.DataFrame
    curves: pd.DataFrame
    summary: pd.DataFrame  # aggregate.config_summary, plus `label`
    leaderboard: pd.DataFrame
    comparisons: pd.DataFrame

    def leaderboard_text(self) -> pd.DataFrame:
        return format_leaderboard(self.leaderboard, self.higher_is_better[self.headline], self.confidence)

    def comparisons_text(self) -> pd.DataFrame:
        return format_comparisons(self.comparisons, self.headline, self.confidence)

    @cached_property
    def leaderboard_markdown(self) -> str:
        """Made once: its file, index.md and the console show it (thousands of rows take seconds)."""
        return markdown(self.leaderboard_text())

    @cached_property
    def comparisons_markdown(self) -> str:
        return markdown(self.comparisons_text())

    def pareto_pairs(self) -> list[tuple[str, str]]:
        """(quality, cost) pairs for Pareto frontiers; forgetting counts as a cost."""
        qualities = [self.headline, *(m for m in SECONDARY_QUALITY if m != self.headline and f"{m}_mean" in self.summary)]
        costs = [*COSTS, *([self.forgetting] if self.forgetting else [])]
        return [(y, x) for y in qualities for x in costs]


def task_report(results: Results, task: str, metric: str | None = None, confidence: float = CONFIDENCE) -> TaskReport:
    """Tables of one task; `metric` picks the headline (default: the task's preferred one)."""
    headline = results.headline(task, metric)
    forgetting = results.forgetting_metric(task)
    runs = results.runs[results.runs["task"] == task]
    quantities = [*results.quality[task], *results.forgetting[task], *COSTS]
    summary = config_summary(runs, quantities, confidence)
    summary["label"] = config_labels(summary)
    board = leaderboard(summary, headline, results.higher_is_better[headline], forgetting)
    comparisons = paired_comparisons(runs, headline, results.higher_is_better[headline], confidence)
    curves = results.curves[results.curves["task"] == task]
    return TaskReport(task, headline, forgetting, results.higher_is_better, confidence, runs, curves, summary, board, comparisons)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def task_figures(report: TaskReport, colors: dict[str, tuple]) -> dict[str, Figure]:
    """Every figure of one task, by file stem."""
    t, hib, ci = report.task, report.higher_is_better, report.confidence
    figures = {
        f"{slug(t)}_pareto_{y}_vs_{x}": pareto_figure(report.summary, x, y, hib, colors, f"{t}: {short_label(y)} vs. {short_label(x)}", ci)
        for y, x in report.pareto_pairs()
    }
    if report.forgetting:
        figures[f"{slug(t)}_learning_vs_forgetting"] = learning_forgetting_figure(
            report.runs, report.summary, report.headline, report.forgetting, hib, colors, f"{t}: learning vs. forgetting", ci)
    if not report.curves.empty:
        figures[f"{slug(t)}_train_loss"] = loss_curve_figure(report.curves, colors, f"{t}: training loss", ci)
    return figures


@dataclass
class WrittenReport:
    out_dir: Path
    files: list[Path]
    problems: list[str]
    tasks: list[TaskReport]
    results: Results


def write_table(numbers: pd.DataFrame, text: pd.DataFrame, out_dir: Path, stem: str, title: str,
                text_markdown: str | None = None) -> list[Path]:
    """One table three ways: its numbers as CSV, its formatted text as markdown (`text_markdown`
    when it is made already) and as an HTML page."""
    paths = [out_dir / f"{stem}.{ext}" for ext in ("csv", "md", "html")]
    numbers.to_csv(paths[0], index=False)
    paths[1].write_text((markdown(text) if text_markdown is None else text_markdown) + "\n", encoding="utf-8")
    paths[2].write_text(html_page(text, title), encoding="utf-8")
    return paths


def selection_note(only: Mapping[str, Sequence[str]]) -> str:
    """What `--only` picked, in words ('' for every run)."""
    return "; ".join(f"{key} {' or '.join(values)}" for key, values in only.items())


def _index(results_dir: Path, problems: list[str], sections: list[tuple[TaskReport, list[str]]],
           only: Mapping[str, Sequence[str]]) -> str:
    lines = [f"# Report: {results_dir}", "", *([f"Runs of {selection_note(only)} only.", ""] if only else [])]
    lines += [f"- warning: {p}" for p in problems] + ([""] if problems else [])
    for report, stems in sections:
        lines += [f"## {report.task}", "", f"### Leaderboard: {short_label(report.headline)}", "",
                  report.leaderboard_markdown, ""]
        if not report.comparisons.empty:
            lines += ["### Paired comparisons (same seeds)", "", report.comparisons_markdown, ""]
        lines += ["### Figures", ""] + [f"![{s}]({s}.png) ([PDF]({s}.pdf))" for s in stems] + [""]
    return "\n".join(lines)


def write_report(results_dir: Path | str, out_dir: Path | str | None = None, metric: str | None = None,
                 confidence: float = CONFIDENCE, only: Mapping[str, Sequence[str]] | None = None) -> WrittenReport:
    """Write every table (CSV, markdown, HTML) and figure (PNG, PDF) of every task, and index.md,
    to `out_dir` (default: RESULTS_DIR/report); of the runs `only` picks (load.select), or all."""
    results_dir = Path(results_dir)
    out = Path(out_dir) if out_dir is not None else results_dir / "report"
    results = load_results(results_dir, only)
    out.mkdir(parents=True, exist_ok=True)
    colors = config_colors(results.runs["config"])
    files, sections = [], []
    for task in results.tasks:
        report = task_report(results, task, metric, confidence)
        files += write_table(report.leaderboard, report.leaderboard_text(), out, f"{slug(task)}_leaderboard",
                             f"{task}: leaderboard", report.leaderboard_markdown)
        if not report.comparisons.empty:
            files += write_table(report.comparisons, report.comparisons_text(), out, f"{slug(task)}_comparisons",
                                 f"{task}: paired comparisons", report.comparisons_markdown)
        figures = task_figures(report, colors)
        for stem, fig in figures.items():
            files += save_figure(fig, out, stem)
        sections.append((report, list(figures)))
    index = out / "index.md"
    index.write_text(_index(results_dir, results.problems, sections, only or {}), encoding="utf-8")
    return WrittenReport(out, [*files, index], results.problems, [report for report, _ in sections], results)
