"""Published reference tables (references/*.csv): every row is valid and cited, malformed files
fail with one line naming the file, line and fix, the noise-band verdicts follow their stated
formula, and `python -m harness.report --reference` renders our real runs next to a reference."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import methods
from harness.core.errors import HarnessError
from harness.report.claims import compare_claims, curve_values, is_claims_file
from harness.report.load import load_results
from harness.report.reference import (REFERENCES_DIR, REQUIRED, SOURCES_FILE, available, compare, load_reference,
                                      load_sources)
from tests.conftest import REPO, run_cli

CLAIMS = [n for n in available() if is_claims_file(REFERENCES_DIR / f"{n}.csv")]
REFERENCES = [n for n in available() if n not in CLAIMS]  # published numbers


def test_the_issue_s_references_are_all_there():
    assert set(REFERENCES) >= {"peft_metamathqa", "llm_adapters_math", "llm_adapters_commonsense", "pissa_vs_lora", "sorsa"}


@pytest.mark.parametrize("name", REFERENCES)
def test_every_row_is_valid_and_cited(name):
    raw = pd.read_csv(REFERENCES_DIR / f"{name}.csv", dtype=str, keep_default_na=False)
    table = load_reference(name)
    assert len(table) == len(raw) > 0
    assert (table[list(REQUIRED)].astype(str).apply(lambda c: c.str.strip() != "")).all().all()
    assert set(table["method"]) <= set(methods.names())
    accuracies = table["unit"].isin(["percent", "fraction"])  # the others are costs: bytes, seconds
    assert table.loc[accuracies, "published"].between(0, 1).all() and (table["published"] >= 0).all()
    percent = table["unit"] == "percent"
    np.testing.assert_allclose(table.loc[percent, "published"] * 100, raw.loc[percent, "value"].astype(float))
    assert set(table["source_id"]) <= set(load_sources().index)
    assert table["source"].str.len().gt(0).all()


def test_every_cited_source_is_used_and_pinned_to_a_commit():
    sources = load_sources()
    used = set().union(*(set(load_reference(n)["source_id"]) for n in REFERENCES + CLAIMS))
    assert set(sources.index) == used
    assert sources["commit"].str.fullmatch(r"[0-9a-f]{40}").all()


def _grid(table: pd.DataFrame, *keys: str) -> int:
    return len(table.drop_duplicates(list(keys)))


def test_tables_hold_the_rows_the_issue_asks_for():
    peft = load_reference("peft_metamathqa")
    assert set(peft["method"]) == {"lora", "full", "dora", "rslora", "ia3", "vera", "oft", "boft", "prompt_tuning", "prefix_tuning"}
    assert (peft["model"] == "llama-3.2-3b").all() and len(peft) == 10 * 4  # accuracy, peak memory, train time, size
    for suite, n_sets in (("llm_adapters_math", 4), ("llm_adapters_commonsense", 8)):
        table = load_reference(suite)
        assert set(table["model"]) == {"llama-7b", "llama-13b"}
        assert set(table["method"]) == {"lora", "series_adapter", "parallel_adapter", "prefix_tuning"}
        assert len(table) == _grid(table, "model", "method", "task") == 2 * 4 * n_sets  # complete, no duplicates
    sorsa = load_reference("sorsa")
    assert set(sorsa["method"]) == {"full", "lora", "pissa", "sorsa"}
    assert len(sorsa) == _grid(sorsa, "model", "method", "task", "metric") == 2 * 4 * 2
    pissa = load_reference("pissa_vs_lora")
    gsm8k = pissa[pissa["task"] == "metamathqa_gsm8k"]
    for model in ("llama-2-7b", "mistral-7b-v0.1"):
        assert set(gsm8k.loc[gsm8k["model"] == model, "method"]) == {"lora", "pissa"}
    assert gsm8k["source_id"].nunique() >= 2  # the authors' numbers and a re-measurement by others


# --- malformed files: one line naming the problem and the fix ---------------------------------------

@pytest.fixture
def ref_dir(tmp_path):
    shutil.copy(REFERENCES_DIR / SOURCES_FILE, tmp_path / SOURCES_FILE)
    shutil.copy(REFERENCES_DIR / "sorsa.csv", tmp_path / "good.csv")
    return tmp_path


def _damage(ref_dir, column: str, value: str, line: int = 3) -> None:
    table = pd.read_csv(ref_dir / "good.csv", dtype=str, keep_default_na=False)
    table.loc[line - 2, column] = value
    table.to_csv(ref_dir / "good.csv", index=False)


@pytest.mark.parametrize("column,value,expected", [
    ("method", "lora_xl", "line 3: method='lora_xl' is not a harness method"),
    ("value", "105", "line 3: value=105 is out of range for unit percent"),
    ("value", "n/a", "line 3: value='n/a' is not a number"),
    ("unit", "permille", "line 3: unit='permille'; use one of: percent, fraction"),
    ("source_id", "some_blog", "line 3: source_id='some_blog' is not cited in sources.csv"),
    ("metric", "", "line 3: empty metric"),
    ("n_eval_items", "-5", "line 3: n_eval_items='-5' must be a finite number >= 0"),
])
def test_a_bad_row_is_named_with_its_line_and_fix(ref_dir, column, value, expected):
    _damage(ref_dir, column, value)
    with pytest.raises(HarnessError) as err:
        load_reference("good", ref_dir)
    message = str(err.value)
    assert expected in message and "good.csv" in message and "\n" not in message


def test_missing_columns_unknown_names_and_duplicate_sources_are_one_line_errors(ref_dir):
    assert len(load_reference("good", ref_dir)) == 16
    with pytest.raises(HarnessError, match=r"unknown reference 'nope'; available: good \(files "):
        load_reference("nope", ref_dir)
    pd.read_csv(ref_dir / "good.csv").drop(columns=["unit", "task"]).to_csv(ref_dir / "good.csv", index=False)
    with pytest.raises(HarnessError, match=r"good.csv lacks the column\(s\) task, unit; add them"):
        load_reference("good", ref_dir)
    sources = pd.read_csv(ref_dir / SOURCES_FILE, dtype=str)
    pd.concat([sources, sources.iloc[:1]]).to_csv(ref_dir / SOURCES_FILE, index=False)
    with pytest.raises(HarnessError, match=r"lists source_id peft_lora_r32 more than once"):
        load_sources(ref_dir)


def test_the_cli_rejects_an_unknown_reference_before_writing_anything(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness.report", str(tmp_path), "--reference", "nope"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("error: unknown reference 'nope'; available: ") and "peft_metamathqa" in proc.stderr
    assert not (tmp_path / "report").exists()


# --- the noise band, against its stated formula ---------------------------------------------------

def _values(rows: list[tuple]) -> pd.DataFrame:
    columns = ["run_id", "method", "key", "metric", "value", "stderr", "run_task", "model", "budget", "variant"]
    return pd.DataFrame(rows, columns=columns)


def test_verdicts_follow_the_documented_noise_band(ref_dir):
    reference = load_reference("good", ref_dir)  # SORSA: Llama-2-7B LoRA GSM8K 42.30 % on 1319 items
    lora = reference[(reference["method"] == "lora") & (reference["model"] == "llama-2-7b")
                     & (reference["task"] == "metamathqa_gsm8k")]
    p = 0.4230
    seeds = [(f"r{i}", "lora", "metamathqa_gsm8k", "exact_match_answer_is", v, 0.02, "metamathqa_gsm8k", "llama-2-7b", "b", "")
             for i, v in enumerate([0.40, 0.43, 0.44])]
    far = [("x", "lora", "metamathqa_gsm8k", "exact_match_answer_is", 0.60, 0.01, "metamathqa_gsm8k~gsm8k_train", "tiny", "b", "")]
    table = compare(lora, _values(seeds + far), confidence=0.9)

    z = stats.norm.ppf(0.95)
    x = np.array([0.40, 0.43, 0.44])
    se_ours = math.sqrt(x.var(ddof=1) / 3 + 0.02**2)
    band = z * math.sqrt(se_ours**2 + p * (1 - p) / 1319)
    same = table[table["our_model"] == "llama-2-7b"].iloc[0]
    assert same["n_seeds"] == 3 and same["ours"] == pytest.approx(x.mean())
    assert same["band"] == pytest.approx(band) and same["ours_high"] - same["ours"] == pytest.approx(z * se_ours)
    assert same["verdict"] == "within noise" and same["differences"] == ""
    other = table[table["our_model"] == "tiny"].iloc[0]
    assert other["verdict"] == "above" and other["difference"] == pytest.approx(0.60 - p)
    assert "model: ours tiny, published llama-2-7b" in other["differences"] and "data set-up: ~gsm8k_train" in other["differences"]

    below = compare(lora, _values([(*seeds[0][:4], 0.30, 0.01, *seeds[0][6:])]), confidence=0.9).iloc[0]
    assert below["verdict"] == "below"
    nothing = compare(lora, _values([(*seeds[0][:1], "pissa", *seeds[0][2:])]))
    assert nothing["verdict"].tolist() == ["not run"] and math.isnan(nothing["ours"].iloc[0])


def test_suite_rows_match_per_dataset_metric_rows(ref_dir):
    shutil.copy(REFERENCES_DIR / "llm_adapters_math.csv", ref_dir / "math.csv")
    reference = load_reference("math", ref_dir)
    svamp = reference[(reference["task"] == "llm_adapters_math/svamp") & (reference["method"] == "lora")]
    ours = _values([("r", "lora", "llm_adapters_math/svamp", "accuracy", 0.5, 0.05, "llm_adapters_math~gsm8k_train", "llama-7b", "b", "")])
    row = compare(svamp, ours).set_index("published_model").loc["llama-7b"]
    assert row["verdict"] == "within noise" and row["differences"] == "data set-up: ~gsm8k_train"


# --- the side-by-side report on a real smoke sweep ---------------------------------------------------

@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory, test_data):
    root = tmp_path_factory.mktemp("results")
    # two seeds and a held-out loss every step, so the claims report has paired curves to test
    proc = run_cli(["+leaderboard=pissa_vs_lora_cpu", "+leaderboard/smoke=tiny", "seed=0,1", "train.eval_every=1"], root,
                   {"HARNESS_DATA_DIR": str(test_data)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def _report_cli(results, out, reference: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "harness.report", str(results), "--out", str(out), "--reference", reference],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_side_by_side_report_on_a_real_smoke_sweep(smoke_results, tmp_path):
    proc = _report_cli(smoke_results, tmp_path, "pissa_vs_lora")
    assert "== reference pissa_vs_lora: " in proc.stdout
    table = pd.read_csv(tmp_path / "reference_pissa_vs_lora.csv")
    assert (tmp_path / "reference_pissa_vs_lora.md").is_file() and (tmp_path / "reference_pissa_vs_lora.html").is_file()
    assert len(table[table["verdict"] == "not run"]) == len(load_reference("pissa_vs_lora").query("task != 'metamathqa_gsm8k'"))

    runs = pd.read_parquet(smoke_results / "runs")
    metrics = pd.read_parquet(smoke_results / "metrics")
    final = metrics[metrics["step"].isna()].merge(runs[["run_id", "method"]])
    compared = table[table["verdict"] != "not run"]
    assert set(compared["method"]) == {"lora", "pissa"} and len(compared) == 8  # every GSM8K row, once each
    assert sorted(compared["metric"].unique()) == ["exact_match_answer_is", "exact_match_flexible"]
    for row in compared.itertuples():
        assert row.n_seeds == 2
        ours = final[(final["method"] == row.method) & (final["metric"] == row.metric)]
        assert row.ours == pytest.approx(ours["value"].mean())
        assert row.our_model == "tiny-random-llama" and row.our_task == "metamathqa_gsm8k~gsm8k_train"
        assert f"published {row.published_model}" in row.differences and "~gsm8k_train" in row.differences
        assert row.verdict in ("within noise", "above", "below")


@pytest.mark.slow
def test_published_costs_next_to_a_real_smoke_sweep(smoke_results, tmp_path):
    proc = _report_cli(smoke_results, tmp_path, "peft_metamathqa")
    table = pd.read_csv(tmp_path / "reference_peft_metamathqa.csv", keep_default_na=False)
    lora = table[(table["method"] == "lora") & (table["verdict"] != "not run")].set_index("metric")
    assert set(lora.index) == {"exact_match_answer_is", "peak_mem_bytes", "train_time_s", "adapter_bytes"}
    for metric in ("peak_mem_bytes", "train_time_s"):  # measured on this CPU, published on an L40S
        assert lora.loc[metric, "verdict"] == "not comparable" and lora.loc[metric, "band"] == ""
        assert "published 1x NVIDIA L40S" in lora.loc[metric, "differences"]
    runs = pd.read_parquet(smoke_results / "runs")
    assert float(lora.loc["adapter_bytes", "ours"]) == runs.loc[runs["method"] == "lora", "adapter_bytes"].mean()
    assert lora.loc["adapter_bytes", "verdict"] == "below"  # a 2-layer random model's adapter is smaller
    assert "not comparable" in proc.stdout


# --- published claims (a `claim` column): paired by seed along the curves ------------------------------

def test_the_cpu_scale_claims_file_is_valid_and_cited():
    assert CLAIMS == ["pissa_vs_lora_cpu"]
    claims = load_reference("pissa_vs_lora_cpu")
    assert set(claims["metric"]) == {"val_loss", "train_loss"} and set(claims["method"]) == {"pissa"}
    assert all(steps == [10, 20, 30, 40] for steps in claims["steps"])


@pytest.mark.parametrize("column,value,expected", [
    ("direction", "faster", "line 2: direction='faster'; use one of: lower, higher"),
    ("steps", "ten", "line 2: steps='ten' and window='1' must be whole numbers"),
    ("baseline", "lora_xl", "line 2: baseline='lora_xl' is not a harness method"),
    ("source_id", "blog", "line 2: source_id='blog' is not cited"),
])
def test_a_bad_claim_is_named_with_its_line_and_fix(ref_dir, column, value, expected):
    claims = pd.read_csv(REFERENCES_DIR / "pissa_vs_lora_cpu.csv", dtype=str, keep_default_na=False)
    claims.loc[0, column] = value
    claims.to_csv(ref_dir / "claims.csv", index=False)
    with pytest.raises(HarnessError, match=re.escape(expected)):
        load_reference("claims", ref_dir)


def _curves(a: dict[int, list[float]], b: dict[int, list[float]]) -> pd.DataFrame:
    """Curve rows of two methods: seed -> values at steps 1, 2, ..."""
    rows = [(f"{m}{seed}", m, "val_loss", step + 1, v, "t", "tiny", "smoke", "", seed)
            for m, curves in (("pissa", a), ("lora", b)) for seed, values in curves.items() for step, v in enumerate(values)]
    return pd.DataFrame(rows, columns=["run_id", "method", "metric", "step", "value", "task", "model", "budget", "variant", "seed"])


def _claim(steps: list[int], window: int = 1, direction: str = "lower") -> pd.DataFrame:
    return pd.DataFrame([{"claim": "c", "statement": "s", "method": "pissa", "baseline": "lora", "metric": "val_loss",
                          "direction": direction, "steps": steps, "window": window, "source_id": "x"}])


def test_claim_verdicts_follow_the_paired_t_interval():
    pissa = {0: [2.0, 1.5, 1.0], 1: [2.1, 1.7, 1.2], 2: [1.9, 1.4, 0.9]}
    lora = {0: [2.0, 1.9, 1.8], 1: [2.2, 2.0, 1.9], 2: [1.8, 1.8, 1.7]}
    table = compare_claims(_claim([1, 3, 5]), _curves(pissa, lora), confidence=0.95).set_index("step")
    d = np.array([1.0 - 1.8, 1.2 - 1.9, 0.9 - 1.7])
    low, high = stats.t.interval(0.95, df=2, loc=d.mean(), scale=d.std(ddof=1) / math.sqrt(3))
    at3 = table.loc[3]
    assert at3["verdict"] == "holds" and at3["n_seeds"] == 3
    assert (at3["difference"], at3["difference_low"], at3["difference_high"]) == pytest.approx((d.mean(), low, high))
    assert at3["method_mean"] == pytest.approx(np.mean([1.0, 1.2, 0.9]))
    assert table.loc[1, "verdict"] == "inconclusive"  # step 1: differences 0, -0.1, +0.1
    assert table.loc[5, "verdict"] == "not run"  # no run reached step 5
    higher = compare_claims(_claim([3], direction="higher"), _curves(pissa, lora)).iloc[0]
    assert higher["verdict"] == "contradicted"
    one_seed = compare_claims(_claim([3]), _curves({0: pissa[0]}, {0: lora[0]})).iloc[0]
    assert one_seed["verdict"] == "too few seeds"


def test_a_window_averages_the_steps_ending_at_the_claimed_step():
    pissa = {0: [3.0, 1.0, 2.0], 1: [3.0, 1.0, 2.0]}
    lora = {0: [3.0, 3.0, 3.0], 1: [3.0, 3.0, 3.1]}
    row = compare_claims(_claim([3], window=2), _curves(pissa, lora)).iloc[0]
    assert row["method_mean"] == pytest.approx(1.5) and row["baseline_mean"] == pytest.approx((3.0 + 3.0 + 3.0 + 3.1) / 4)


@pytest.mark.slow
def test_claims_report_on_a_real_smoke_sweep(smoke_results, tmp_path):
    proc = _report_cli(smoke_results, tmp_path, "pissa_vs_lora_cpu")
    assert "== reference pissa_vs_lora_cpu: 0 holds, 0 inconclusive, 0 contradicted, 0 too few seeds, 8 not run" in proc.stdout
    assert (tmp_path / "reference_pissa_vs_lora_cpu.html").is_file()  # 3 smoke steps never reach the claimed steps

    curves = curve_values(load_results(smoke_results))
    table = compare_claims(_claim([1, 3]), curves).set_index("step")
    runs, metrics = pd.read_parquet(smoke_results / "runs"), pd.read_parquet(smoke_results / "metrics")
    val = metrics[metrics["metric"] == "val_loss"].merge(runs[["run_id", "method", "seed"]])
    for step in (1, 3):
        at = val[val["step"] == step].pivot(index="seed", columns="method", values="value")
        assert len(at) == 2 and table.loc[step, "n_seeds"] == 2
        assert table.loc[step, "difference"] == pytest.approx((at["pissa"] - at["lora"]).mean())
        assert table.loc[step, "verdict"] in ("holds", "inconclusive", "contradicted")
