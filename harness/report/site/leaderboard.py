"""A task's leaderboard page: the report's leaderboard (tables.leaderboard: ranks shared where the
intervals overlap, mean ± interval of the headline and forgetting, costs) as a table that sorts by
any column and filters by method, family, model and budget, each method linked to its
configuration's page; below it the report's paired comparisons. Both also as CSV."""

from __future__ import annotations

import pandas as pd

from harness.report.build import TaskReport
from harness.report.labels import short_label
from harness.report.site.html import Link, anchor, note, page, section, text
from harness.report.site.method_info import MethodInfo
from harness.report.site.names import config_file, task_file
from harness.report.site.output import SiteFolder
from harness.report.site.table import interactive_table

FILTERS = ("Method", "Family", "Model", "Budget")


def _interval_columns(cells: pd.DataFrame) -> tuple[str, str]:
    """The headline's and forgetting's columns of tables.format_leaderboard: its two `(mean ± CI)` ones."""
    headline, forgetting = [c for c in cells.columns if c.endswith("CI)")]
    return headline, forgetting


def _leaderboard_table(report: TaskReport, families: dict[str, str], site: SiteFolder) -> str:
    board = report.leaderboard.assign(task=report.task)
    board["family"] = board["method"].map(families)
    csv = site.write_csv(task_file(report.task, "leaderboard", "csv"), board.drop(columns="task"))
    cells = report.leaderboard_text()
    cells.insert(cells.columns.get_loc("Method") + 1, "Family", board["family"].tolist())
    headline, forgetting = _interval_columns(cells)
    sort_values = {"Rank": board["rank"], headline: board["mean"], "Trainable params": board["trainable_params"],
                   "Peak memory (MiB)": board["peak_mem_mib"], "Train time (s)": board["train_time_s"],
                   forgetting: board["forgetting_mean"]}
    links = {"Method": [config_file(row) for row in board.itertuples()]}
    return interactive_table("leaderboard", cells, sort_values, links, FILTERS, csv.name)


def _comparisons_table(report: TaskReport, pages: dict[tuple, str], site: SiteFolder) -> str:
    comparisons = report.comparisons
    csv = site.write_csv(task_file(report.task, "comparisons", "csv"), comparisons)
    cells = report.comparisons_text()
    difference = next(c for c in cells.columns if c.startswith("A - B"))
    links = {side: [pages.get((r.model, r.budget, getattr(r, side.lower()))) for r in comparisons.itertuples()] for side in ("A", "B")}
    return interactive_table("comparisons", cells, {difference: comparisons["difference"], "p (paired t)": comparisons["p_value"]},
                             links, ("Model", "Budget", "Verdict"), csv.name)


def _unranked(report: TaskReport) -> str:
    """Configurations without a headline value are not ranked (tables.leaderboard); their pages still exist."""
    summary = report.summary
    missing = summary[summary[f"{report.headline}_n"] == 0]
    if missing.empty:
        return ""
    links = ", ".join(anchor(row.label, config_file(row)) for row in missing.itertuples())
    return note(f"Not ranked (no {text(report.headline)} value): {links}")


def leaderboard_page(report: TaskReport, info: dict[str, MethodInfo], nav: list[Link], site: SiteFolder) -> None:
    families = {name: entry.family for name, entry in info.items()}
    pages = {(r.model, r.budget, r.config): config_file(r) for r in report.summary.itertuples()}
    body = [_leaderboard_table(report, families, site), _unranked(report)]
    if not report.comparisons.empty:
        body.append(section(
            "Paired comparisons (same seeds)",
            note("Configurations of the same model and budget, paired by seed: the difference A - B with its "
                 f"{report.confidence:.0%} interval, the paired t-test, and <em>within noise</em> where the interval "
                 "contains zero."),
            _comparisons_table(report, pages, site)))
    lead = (f"One row per configuration, best first on {text(short_label(report.headline))}, with the mean ± "
            f"{report.confidence:.0%} confidence interval over seeds. Ranks separate only what the intervals separate: "
            "configurations whose intervals overlap share a rank. Click a header to sort, pick a value to filter; "
            "a method opens its configuration's page.")
    site.write_text(task_file(report.task, "leaderboard"),
                    page(f"{report.task}: leaderboard", "\n".join(body), nav, lead=lead))
