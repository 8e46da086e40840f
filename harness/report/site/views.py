"""A task's figure pages: Pareto (each quality metric against the cost the reader picks),
learning versus forgetting, and the training curves; each figure's points also as a CSV."""

from __future__ import annotations

import pandas as pd

from harness.report.aggregate import STATS
from harness.report.build import TaskReport
from harness.report.figures import crowded
from harness.report.labels import BASE_METHOD, short_label
from harness.report.load import CONFIG_KEYS
from harness.report.site.charts import curve_charts, learning_forgetting_chart
from harness.report.site.html import Link, anchor, note, page, section, text
from harness.report.site.marks import figure_html
from harness.report.site.names import config_file, task_file
from harness.report.site.output import SiteFolder
from harness.report.site.pareto_chart import pareto_chart


def config_links(report: TaskReport) -> dict[str, str]:
    """Each configuration's page, by its `config` name, relative to a page in the site's root."""
    return {row.config: config_file(row) for row in report.summary.itertuples()}


def _points(summary: pd.DataFrame, quantities: list[str]) -> pd.DataFrame:
    """The numbers a figure plots: each configuration's keys and, per quantity, its STATS."""
    columns = [*CONFIG_KEYS, "config", "n_seeds", *(f"{q}_{s}" for q in dict.fromkeys(quantities) for s in STATS)]
    return summary[[c for c in columns if c in summary]]


def pareto_page(report: TaskReport, colors: dict[str, str], nav: list[Link], site: SiteFolder) -> None:
    pairs = report.pareto_pairs()
    qualities = list(dict.fromkeys(y for y, _ in pairs))
    costs = list(dict.fromkeys(x for _, x in pairs))
    csv = site.write_csv(task_file(report.task, "pareto", "csv"), _points(report.summary, [*qualities, *costs]))
    pages = config_links(report)
    body = []
    for i, quality in enumerate(qualities):
        fig = pareto_chart(report.summary, quality, costs, report.higher_is_better, colors, pages, report.confidence,
                           f"{report.task}: {short_label(quality)}")
        body.append(section(short_label(quality), figure_html(fig, f"pareto-{i}")))
    base = ("The black star and dotted line are the base model, trained on nothing (a cost of zero, such as its trainable "
            "parameters, is off a log axis; its line stays). " if (report.summary["method"] == BASE_METHOD).any() else "")
    bars = (f"coloured by method ({len(report.summary)} configurations: no error bars, a mark's hover text has its "
            f"{report.confidence:.0%} interval)" if crowded(report.summary)
            else f"error bars its {report.confidence:.0%} interval over seeds")
    lead = (f"Every configuration at its means, {bars}; the buttons pick the cost on the x axis. The dashed line is the "
            f"Pareto frontier: the configurations no other beats on both axes. {base}Hover a mark for its numbers, click it "
            f"for its page. Points: {anchor('CSV', csv.name)}.")
    site.write_text(task_file(report.task, "pareto"), page(f"{report.task}: Pareto frontiers", "\n".join(body), nav, plots=True, lead=lead))


def forgetting_page(report: TaskReport, colors: dict[str, str], nav: list[Link], site: SiteFolder) -> None:
    learning, forgetting = report.headline, report.forgetting
    if forgetting is None:
        body = note("These runs measured no forgetting (no forgetting probe ran), so there is nothing to plot.")
    else:
        csv = site.write_csv(task_file(report.task, "forgetting", "csv"), _points(report.summary, [learning, forgetting]))
        fig = learning_forgetting_chart(report.runs, report.summary, learning, forgetting, report.higher_is_better, colors,
                                        config_links(report), report.confidence, f"{report.task}: learning vs. forgetting")
        body = figure_html(fig, "learning-forgetting") + note(f"Points: {anchor('CSV', csv.name)}.")
    lead = (f"What a method learned ({text(short_label(learning))}) against what it forgot "
            f"({text(short_label(forgetting or 'forgetting'))}, measured against the base model, so the base sits at "
            "zero forgetting). Faint dots are single runs, marks the configurations' means with their intervals.")
    site.write_text(task_file(report.task, "forgetting"), page(f"{report.task}: learning vs. forgetting", body, nav, plots=True, lead=lead))


def curves_page(report: TaskReport, colors: dict[str, str], nav: list[Link], site: SiteFolder) -> None:
    curves = report.curves
    if curves.empty:
        body = note("No training-loss curves: these runs recorded no train_loss per step.")
    else:
        by_step = curves[["task", "model", "budget", "method", "variant", "config", "seed", "step", "value"]]
        csv = site.write_csv(task_file(report.task, "curves", "csv"), by_step.rename(columns={"value": "train_loss"}))
        charts = curve_charts(curves, colors, report.task, report.confidence)
        body = "\n".join(section(heading, figure_html(fig, f"curve-{i}"), level=3) for i, (heading, fig) in enumerate(charts))
        body += note(f"Every run's loss per step: {anchor('CSV', csv.name)}.")
    lead = (f"Training loss per optimizer step: per configuration the mean over its seeds, the band its "
            f"{report.confidence:.0%} interval. The base model trains nothing and has no curve.")
    site.write_text(task_file(report.task, "curves"), page(f"{report.task}: training curves", body, nav, plots=True, lead=lead))
