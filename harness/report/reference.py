"""Published numbers next to ours: `python -m harness.report RESULTS_DIR --reference NAME`.

A reference is `references/<NAME>.csv`, one row per published number (columns: REQUIRED plus the
optional spread / n_runs / n_eval_items / version_spread / hardware / notes), every `source_id`
cited in `references/sources.csv`. Values keep the unit they were published in (`percent` or
`fraction` for a metric, which is a fraction in our tables; `bytes` or `seconds` for a cost).

Matching: a reference row is compared with every configuration of ours (method x model x task x
budget x variant) with the same method, task and metric. A reference task is a run's task, or
`<suite>/<dataset>` for a suite whose runs write one row per dataset (`llm_adapters_math/svamp`).
Our task matches on its base name: it may carry marks of a different data set-up
(`metamathqa_gsm8k~gsm8k_train`: a substitute training pool; `...[gsm8k_testslice]`: evaluation
items from a test slice). A different model or such a mark is listed in the `differences`
column: the row is still compared, never passed off as the same experiment. Reference rows
without a match are listed as `not run`.

Costs: a row whose metric is one of our cost columns (COST_METRICS: `peak_mem_bytes`,
`train_time_s`, `adapter_bytes` of the runs table) is compared with that column. Time and memory
depend on the machine: such a row names the published `hardware` as `hardware_key` writes it
(`1x NVIDIA L40S`), our runs are grouped by hardware as well, and a configuration of ours on other
hardware is `not comparable` (no band, no verdict). A file size is compared on any hardware.

Noise band, for a published value p and one configuration of ours with k seeds:
    se_ours = sqrt(s**2 / k + e**2)   s: std of the metric across seeds (0 for one seed),
                                      e: mean over its runs of the metric's standard error over items
                                      (0 for a cost)
    se_pub  = spread / sqrt(n_runs)   where the source reports a spread across runs, else
              sqrt(p (1 - p) / n)     the binomial standard error of an accuracy on its n items,
              0                       where neither is known (noted in `differences`)
    v       = version_spread          the std of the source's own re-runs of the same configuration
                                      (same seed and hardware, other software versions: drift), 0
                                      where the source has none
    band    = z * sqrt(se_ours**2 + se_pub**2 + v**2), z the two-sided normal quantile of `confidence`.
Verdict: `within noise` when |ours - p| <= band, else `above` / `below` the published number.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from scipy import special

from harness.core.errors import HarnessError
from harness.report.build import write_table
from harness.report.claims import CLAIM_COLUMNS, check_claims, claims_summary, compare_claims, curve_values, format_claims, is_claims_file
from harness.report.load import CONFIG_KEYS, Results
from harness.report.stats import CONFIDENCE
from harness.report.tables import format_interval

REFERENCES_DIR = Path(__file__).resolve().parents[2] / "references"
METHOD_CONFIGS = Path(__file__).resolve().parents[2] / "conf" / "method"
SOURCES_FILE = "sources.csv"
REQUIRED = ("source_id", "model", "model_hub_id", "method", "published_method", "task", "metric", "value", "unit")
OPTIONAL_NUMBERS = ("spread", "n_runs", "n_eval_items", "version_spread")
SOURCE_COLUMNS = ("source_id", "title", "arxiv_id", "repository", "path", "commit", "location")
UNIT_SCALE = {"percent": 100.0, "fraction": 1.0, "bytes": 1.0, "seconds": 1.0}  # published value / scale = ours
METRIC_UNITS = ("percent", "fraction")  # a metric's value and spreads are at most UNIT_SCALE
# Our runs-table cost columns a published cost is compared with: (unit, whether it depends on the hardware)
COST_METRICS = {"peak_mem_bytes": ("bytes", True), "train_time_s": ("seconds", True), "adapter_bytes": ("bytes", False)}
TASK_MARKS = re.compile(r"[\[~]")  # where a task name's data-set-up marks begin


def available(directory: Path = REFERENCES_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.csv") if p.name != SOURCES_FILE)


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise HarnessError(f"{path} is not a readable CSV ({str(exc).splitlines()[0]}); fix the file") from None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise HarnessError(f"{path} lacks the column(s) {', '.join(missing)}; add them (see references/README.md)")
    return table


def load_sources(directory: Path = REFERENCES_DIR) -> pd.DataFrame:
    path = directory / SOURCES_FILE
    if not path.is_file():
        raise HarnessError(f"{path} is missing; every reference cites its sources there (see references/README.md)")
    sources = _read_csv(path, SOURCE_COLUMNS)
    duplicated = sorted(set(sources.loc[sources["source_id"].duplicated(), "source_id"]))
    if duplicated:
        raise HarnessError(f"{path} lists source_id {', '.join(duplicated)} more than once; keep one row per source")
    return sources.set_index("source_id")


def _number(text: str, path: Path, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise HarnessError(f"{path} line {line}: {column}={text!r} is not a number; fix the value") from None
    if not math.isfinite(value) or value < 0:
        raise HarnessError(f"{path} line {line}: {column}={text!r} must be a finite number >= 0")
    return value


def _check_row(row: pd.Series, line: int, path: Path, known_methods: set[str], sources: pd.DataFrame) -> dict:
    empty = [c for c in REQUIRED if not row[c].strip()]
    if empty:
        raise HarnessError(f"{path} line {line}: empty {', '.join(empty)}; every published number needs them")
    cost = COST_METRICS.get(row["metric"])
    units = (cost[0],) if cost else METRIC_UNITS
    if row["unit"] not in units:
        raise HarnessError(f"{path} line {line}: unit={row['unit']!r}; use one of: {', '.join(units)}"
                           + (f" (the unit of our {row['metric']})" if cost else ""))
    if cost and cost[1] and not row.get("hardware", "").strip():
        raise HarnessError(f"{path} line {line}: {row['metric']} depends on the machine; name the published one in the "
                           f"hardware column as our reports write it (e.g. '1x NVIDIA L40S')")
    if row["method"] not in known_methods:
        raise HarnessError(f"{path} line {line}: method={row['method']!r} is not a harness method; use the registry name "
                           f"the published one maps to (python -m methods lists them) and keep the paper's in published_method")
    if row["source_id"] not in sources.index:
        raise HarnessError(f"{path} line {line}: source_id={row['source_id']!r} is not cited in {SOURCES_FILE}; add it there")
    value = _number(row["value"], path, line, "value")
    numbers = {c: _number(row[c], path, line, c) if row.get(c, "").strip() else math.nan for c in OPTIONAL_NUMBERS}
    for column, number in (("value", value), ("version_spread", numbers["version_spread"])):
        if row["unit"] in METRIC_UNITS and number > UNIT_SCALE[row["unit"]]:
            raise HarnessError(f"{path} line {line}: {column}={row[column]} is out of range for unit {row['unit']} "
                               f"(at most {UNIT_SCALE[row['unit']]:g})")
    return {**row.to_dict(), **numbers, "value": value, "published": value / UNIT_SCALE[row["unit"]]}


def load_reference(name: str, directory: Path = REFERENCES_DIR) -> pd.DataFrame:
    """The validated rows of `references/<name>.csv`, with `published` (the value in our unit: a
    fraction, or bytes / seconds for a cost) and the citation of each row's source. Raises
    HarnessError naming the file, line and fix."""
    path = directory / f"{name}.csv"
    if name == Path(SOURCES_FILE).stem or not path.is_file():
        raise HarnessError(f"unknown reference {name!r}; available: {', '.join(available(directory)) or 'none'} "
                           f"(files {directory}/<NAME>.csv)")
    sources = load_sources(directory)
    claims = is_claims_file(path)
    table = _read_csv(path, CLAIM_COLUMNS if claims else REQUIRED)
    if table.empty:
        raise HarnessError(f"{path} has no rows; add the published numbers or delete the file")
    # The registry's names without importing every method (torch, peft): one conf/method yaml per
    # registered method, which tests/unit/config/test_config.py holds to the registry.
    known = {p.stem for p in METHOD_CONFIGS.glob("*.yaml")}
    if claims:
        checked = check_claims(table, path, known, set(sources.index))
        checked.insert(0, "reference", name)
        return checked
    rows = [_check_row(row, i + 2, path, known, sources) for i, row in table.iterrows()]  # line 1 is the header
    checked = pd.DataFrame(rows)
    cited = sources.loc[checked["source_id"]]
    checked["source"] = [f"{s.repository}@{s.commit[:12]} {s.path}: {s.location}" for s in cited.itertuples()]
    checked.insert(0, "reference", name)
    return checked


def base_task(task: str) -> str:
    """The task name without its data-set-up marks (`metamathqa_gsm8k~gsm8k_train` -> `metamathqa_gsm8k`)."""
    return TASK_MARKS.split(task)[0]


def our_values(results: Results) -> pd.DataFrame:
    """Long form, one row per finished run x final metric, and per run x cost column (COST_METRICS,
    without an error over items): the run's configuration (CONFIG_KEYS) and `hardware`, `key` (the
    task as references name it), metric, value and its standard error over items."""
    metrics = results.metrics  # as the leaderboards: newest metric versions only
    final = metrics[metrics["step"].isna()][["run_id", "task", "metric", "value", "stderr"]]
    runs = results.runs[["run_id", *CONFIG_KEYS, "hardware"]].rename(columns={"task": "run_task"})
    values = final.merge(runs, on="run_id")
    suite = values["task"] != values["run_task"]  # a suite's per-dataset rows carry the dataset as their task
    bases = values["run_task"].map(base_task)
    values["key"] = bases.where(~suite, bases + "/" + values["task"])
    costs = results.runs.melt(id_vars=["run_id"], value_vars=[c for c in COST_METRICS if c in results.runs],
                              var_name="metric").dropna(subset=["value"]).merge(runs, on="run_id")
    costs = costs.assign(task=costs["run_task"], stderr=math.nan, key=costs["run_task"].map(base_task))
    return pd.concat([values, costs], ignore_index=True)


@dataclass(frozen=True)
class Ours:
    mean: float
    se: float
    n_seeds: int
    item_se_known: bool


def _ours(values: pd.DataFrame) -> Ours:
    """One configuration's runs (one row per seed) of one metric."""
    x = values["value"].astype(float)
    k = len(x)
    seed_var = float(x.var(ddof=1)) if k > 1 else 0.0
    item = values["stderr"].astype(float)
    item_se = float(item.mean()) if item.notna().any() else 0.0
    return Ours(float(x.mean()), math.sqrt(seed_var / k + item_se**2), k, bool(item.notna().any()))


def _published_se(ref: pd.Series) -> float:
    if not math.isnan(ref["spread"]):
        return ref["spread"] / UNIT_SCALE[ref["unit"]] / math.sqrt(ref["n_runs"] if ref["n_runs"] > 0 else 1)
    if not math.isnan(ref["n_eval_items"]) and ref["n_eval_items"] > 0:
        p = ref["published"]
        return math.sqrt(p * (1 - p) / ref["n_eval_items"])
    return math.nan


def _version_spread(ref: pd.Series) -> float:
    """The std of the source's own re-runs in our unit (drift across software versions); 0 where unknown."""
    spread = ref.get("version_spread", math.nan)
    return 0.0 if math.isnan(spread) else spread / UNIT_SCALE[ref["unit"]]


def _differences(ref: pd.Series, config: pd.Series, ours: Ours, se_pub: float) -> str:
    cost = ref["metric"] in COST_METRICS
    notes = []
    if config["model"] != ref["model"]:
        notes.append(f"model: ours {config['model']}, published {ref['model']} ({ref['model_hub_id']})")
    marks = config["run_task"][len(base_task(config["run_task"])):]
    if marks:
        notes.append(f"data set-up: {marks}")
    if "hardware" in config and config["hardware"] != ref["hardware"]:
        notes.append(f"hardware: ours {config['hardware']}, published {ref['hardware']}")
    if math.isnan(se_pub) and math.isnan(ref.get("version_spread", math.nan)):
        notes.append("published uncertainty unknown (no spread, " + ("no re-runs)" if cost else "no item count)"))
    if not ours.item_se_known and not cost:
        notes.append("our item-level error unknown")
    return "; ".join(notes)


def compare(reference: pd.DataFrame, values: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per (reference row x matching configuration of ours, `values` from our_values);
    a `not run` row for a reference row nothing of ours matches."""
    z = float(special.ndtri(0.5 + confidence / 2))  # scipy.stats.norm.ppf, without importing scipy.stats
    values = values[values["value"].notna()]
    keys = ["run_task", "model", "budget", "variant"]
    rows = []
    for _, ref in reference.iterrows():
        base = {c: ref[c] for c in ("reference", "source_id", "published_method", "method", "metric")}
        base.update(published_task=ref["task"], published_model=ref["model"], published=ref["published"], source=ref["source"])
        matched = values[(values["method"] == ref["method"]) & (values["key"] == ref["task"]) & (values["metric"] == ref["metric"])]
        if matched.empty:
            rows.append({**base, "verdict": "not run"})
            continue
        by_hardware = COST_METRICS.get(ref["metric"], ("", False))[1]  # time and memory: one group per machine
        group_keys = keys + ["hardware"] if by_hardware else keys
        for key, config_values in matched.groupby(group_keys, sort=True):
            config = pd.Series(dict(zip(group_keys, key)))
            ours = _ours(config_values)
            se_pub = _published_se(ref)
            row = {**base, "our_task": config["run_task"], "our_model": config["model"], "budget": config["budget"],
                   "variant": config["variant"], "n_seeds": ours.n_seeds, "ours": ours.mean,
                   "ours_low": ours.mean - z * ours.se, "ours_high": ours.mean + z * ours.se,
                   "differences": _differences(ref, config, ours, se_pub)}
            if by_hardware and config["hardware"] != ref["hardware"]:
                rows.append({**row, "verdict": "not comparable"})  # costs on other hardware are shown, not judged
                continue
            band = z * math.sqrt(ours.se**2 + (0.0 if math.isnan(se_pub) else se_pub**2) + _version_spread(ref)**2)
            difference = ours.mean - ref["published"]
            verdict = "within noise" if abs(difference) <= band else ("above" if difference > 0 else "below")
            rows.append({**row, "difference": difference, "band": band, "verdict": verdict})
    columns = ["reference", "source_id", "published_method", "method", "published_task", "metric", "published_model",
               "published", "our_task", "our_model", "budget", "variant", "n_seeds", "ours", "ours_low", "ours_high",
               "difference", "band", "verdict", "differences", "source"]
    return pd.DataFrame(rows).reindex(columns=columns)


def format_comparison(table: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    def cell(value, fmt):
        return "" if pd.isna(value) else format(value, fmt)

    number = [".6g" if m in COST_METRICS else ".4f" for m in table["metric"]]  # bytes and seconds: no fixed decimals
    return pd.DataFrame({
        "Method": [f"{m} ({p})" for m, p in zip(table["method"], table["published_method"])],
        "Task": table["published_task"], "Metric": table["metric"],
        "Published model": table["published_model"], "Our model": table["our_model"].fillna(""),
        "Budget": table["budget"].fillna(""), "Seeds": [cell(n, ".0f") for n in table["n_seeds"]],
        "Published": [cell(p, f) for p, f in zip(table["published"], number)],
        f"Ours (mean ± {confidence:.0%} CI)": [
            "" if pd.isna(r.ours) else format_interval(r.ours, r.ours_low, r.ours_high, int(r.n_seeds)) for r in table.itertuples()],
        "Ours - published (± band)": [
            "" if pd.isna(r.difference) else f"{r.difference:+{f}} (± {r.band:{f}})"
            for r, f in zip(table.itertuples(), number)],
        "Verdict": table["verdict"], "Differences": table["differences"].fillna(""), "Source": table["source"],
    })


def summary_line(table: pd.DataFrame) -> str:
    counts = table["verdict"].value_counts()
    shown = ("within noise", "above", "below", "not comparable", "not run")
    return ", ".join(f"{counts.get(v, 0)} {v}" for v in shown if v != "not comparable" or v in counts)


@dataclass
class WrittenReference:
    name: str
    table: pd.DataFrame  # compare()'s or compare_claims()' rows
    text: pd.DataFrame  # their formatted form, without the `not run` rows (those are in the CSV)
    summary: str  # verdict counts
    files: list[Path]


def write_references(results: Results, out_dir: Path | str | None, names: list[str],
                     confidence: float = CONFIDENCE) -> list[WrittenReference]:
    """`reference_<NAME>.{csv,md,html}` in out_dir (default RESULTS_DIR/report) for each reference:
    published numbers next to ours, or published claims (harness/report/claims.py) tested on ours."""
    if not names:
        return []
    references = {name: load_reference(name) for name in names}  # every file is checked before anything is written
    out = Path(out_dir) if out_dir is not None else results.root / "report"
    kinds = {"claim" in reference.columns for reference in references.values()}  # True: a claims file
    values = our_values(results) if False in kinds else None
    curves = curve_values(results) if True in kinds else None
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, reference in references.items():
        if "claim" in reference.columns:
            table = compare_claims(reference, curves, confidence)
            text, summary, title = format_claims(table[table["verdict"] != "not run"], confidence), claims_summary(table), \
                f"{name}: published claims tested on our runs"
        else:
            table = compare(reference, values, confidence)
            text, summary, title = format_comparison(table[table["verdict"] != "not run"], confidence), summary_line(table), \
                f"{name}: our runs next to the published numbers"
        files = write_table(table, text, out, f"reference_{name}", title)
        written.append(WrittenReference(name, table, text, summary, files))
    return written
