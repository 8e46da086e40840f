"""One page per configuration (task x model x budget x method x variant): what it is (family, paper
link, hardware), its summary over seeds (the report's config summary: mean ± interval of every
quantity), its value in every seed's run, and the resolved config its runs ran with
(`runs.config_json`). Both tables also as CSV, next to the page."""

from __future__ import annotations

import json
import math

import pandas as pd

from harness.report.build import TaskReport
from harness.report.labels import label
from harness.report.load import CONFIG_KEYS
from harness.report.site.html import Link, anchor, note, page, section, text
from harness.report.site.marks import interval_text
from harness.report.site.method_info import MethodInfo
from harness.report.site.names import config_file
from harness.report.site.output import SiteFolder
from harness.report.site.table import interactive_table

RUN_COLUMNS = ("seed", "run_id", "train_steps", "stop_reason", "lr")  # shown for every run, before its quantities
SEED_AXIS_NOTE = ("The seed is the one setting that differs between this configuration's runs (it also sets "
                  "train.data_seed and train.init_seed); shown: the config of the run with seed {seed}.")


def quantities(summary: pd.DataFrame) -> list[str]:
    """The quantities the config summary holds, in its order (quality, forgetting, costs)."""
    return [c[: -len("_mean")] for c in summary.columns if c.endswith("_mean")]


def _number(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:,.0f}" if float(value).is_integer() and abs(value) >= 1000 else f"{value:.6g}"
    return str(value)


def _summary_table(row: pd.Series, names: list[str], confidence: float, csv_name: str) -> tuple[pd.DataFrame, str]:
    rows = pd.DataFrame({
        "quantity": names, "label": [label(q) for q in names],
        **{stat: [row[f"{q}_{stat}"] for q in names] for stat in ("mean", "low", "high", "std", "n")},
    })
    cells = pd.DataFrame({"Quantity": rows["label"], f"Mean ± {confidence:.0%} CI": [interval_text(row, q) for q in names],
                          "Std over seeds": [_number(s) for s in rows["std"]], "Seeds with a value": rows["n"].astype(int)})
    return rows, interactive_table("summary", cells, {cells.columns[1]: rows["mean"], "Std over seeds": rows["std"]},
                                   csv_href=csv_name)


def _runs_table(runs: pd.DataFrame, names: list[str], csv_name: str) -> tuple[pd.DataFrame, str]:
    columns = [*(c for c in RUN_COLUMNS if c in runs), *names, "hardware"]
    values = runs[columns].sort_values("seed")
    cells = pd.DataFrame({label(c) if c in names else c: [_number(v) for v in values[c]] for c in columns})
    sort_values = {label(c): values[c] for c in names if pd.api.types.is_numeric_dtype(values[c])}
    return values, interactive_table("runs", cells, sort_values, csv_href=csv_name)


def _facts(row: pd.Series, info: MethodInfo) -> str:
    paper = (anchor(info.paper, info.paper_url, external=True) if info.paper_url else text(info.paper or "not recorded"))
    facts = [("Task", text(row["task"])), ("Method", text(row["method"])), ("Family", text(info.family)),
             ("Paper", paper), ("Variant", text(row["variant"] or "none (the method's defaults)")),
             ("Model", text(row["model"])), ("Budget", text(row["budget"])), ("Seeds", text(row["n_seeds"])),
             ("Hardware", text(row["hardware"]))]
    return "<dl>" + "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts) + "</dl>"


def _resolved_config(runs: pd.DataFrame) -> str:
    first = runs.sort_values("seed").iloc[0]
    config = json.dumps(json.loads(first["config_json"]), indent=2, sort_keys=True)
    return note(text(SEED_AXIS_NOTE.format(seed=first["seed"]))) + f"<pre>{text(config)}</pre>"


def config_pages(report: TaskReport, info: dict[str, MethodInfo], nav: list[Link], site: SiteFolder) -> None:
    """Write every configuration's page and its two CSVs (`<page>_summary.csv`, `<page>_runs.csv`)."""
    names = quantities(report.summary)
    runs_by_config = dict(list(report.runs.groupby(list(CONFIG_KEYS), sort=False, dropna=False)))
    for _, row in report.summary.iterrows():
        runs = runs_by_config[tuple(row[key] for key in CONFIG_KEYS)]
        stem = config_file(row, "")[:-1]  # configs/<name>, without the dot
        name = stem.split("/")[-1]
        summary_rows, summary_html = _summary_table(row, names, report.confidence, f"{name}_summary.csv")
        site.write_csv(f"{stem}_summary.csv", summary_rows)
        run_values, runs_html = _runs_table(runs, names, f"{name}_runs.csv")
        site.write_csv(f"{stem}_runs.csv", run_values)
        body = [_facts(row, info[row["method"]]),
                section(f"Summary over seeds ({report.confidence:.0%} intervals)", summary_html),
                section("Every seed's run", runs_html),
                section("Resolved config", _resolved_config(runs))]
        site.write_text(config_file(row), page(f"{row['task']}: {row['label']}", "\n".join(body), nav, depth=1))
