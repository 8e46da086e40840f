"""Published reference tables (references/*.csv): every row is valid and cited, malformed files
fail with one line naming the file, line and fix, the noise-band verdicts follow their stated
formula, and `python -m harness.report --reference` renders our real runs next to a reference."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import methods
from harness.errors import HarnessError
from harness.report.reference import (REFERENCES_DIR, REQUIRED, SOURCES_FILE, available, compare, load_reference,
                                      load_sources)
from tests.conftest import REPO, run_cli

REFERENCES = available()


def test_the_issue_s_references_are_all_there():
    assert set(REFERENCES) >= {"peft_metamathqa", "llm_adapters_math", "llm_adapters_commonsense", "pissa_vs_lora", "sorsa"}


@pytest.mark.parametrize("name", REFERENCES)
def test_every_row_is_valid_and_cited(name):
    raw = pd.read_csv(REFERENCES_DIR / f"{name}.csv", dtype=str, keep_default_na=False)
    table = load_reference(name)
    assert len(table) == len(raw) > 0
    assert (table[list(REQUIRED)].astype(str).apply(lambda c: c.str.strip() != "")).all().all()
    assert set(table["method"]) <= set(methods.names())
    assert table["published"].between(0, 1).all()
    percent = table["unit"] == "percent"
    np.testing.assert_allclose(table.loc[percent, "published"] * 100, raw.loc[percent, "value"].astype(float))
    assert set(table["source_id"]) <= set(load_sources().index)
    assert table["source"].str.len().gt(0).all()


def test_every_cited_source_is_used_and_pinned_to_a_commit():
    sources = load_sources()
    used = set().union(*(set(load_reference(n)["source_id"]) for n in REFERENCES))
    assert set(sources.index) == used
    assert sources["commit"].str.fullmatch(r"[0-9a-f]{40}").all()


def _grid(table: pd.DataFrame, *keys: str) -> int:
    return len(table.drop_duplicates(list(keys)))


def test_tables_hold_the_rows_the_issue_asks_for():
    peft = load_reference("peft_metamathqa")
    assert set(peft["method"]) == {"lora", "full", "dora", "rslora", "ia3", "vera", "oft", "boft", "prompt_tuning", "prefix_tuning"}
    assert (peft["model"] == "llama-3.2-3b").all() and len(peft) == 10
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
    seeds = [(f"r{i}", "lora", "metamathqa_gsm8k", "exact_match_flexible", v, 0.02, "metamathqa_gsm8k", "llama-2-7b", "b", "")
             for i, v in enumerate([0.40, 0.43, 0.44])]
    far = [("x", "lora", "metamathqa_gsm8k", "exact_match_flexible", 0.60, 0.01, "metamathqa_gsm8k~gsm8k_train", "tiny", "b", "")]
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
def smoke_results(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("results")
    proc = run_cli(["+leaderboard=pissa_vs_lora_cpu", "+leaderboard/smoke=tiny"], root, {"HARNESS_DATA_DIR": str(shared_data)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


@pytest.mark.slow
def test_side_by_side_report_on_a_real_smoke_sweep(smoke_results, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness.report", str(smoke_results), "--out", str(tmp_path),
                           "--reference", "pissa_vs_lora"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "== reference pissa_vs_lora: " in proc.stdout
    table = pd.read_csv(tmp_path / "reference_pissa_vs_lora.csv")
    assert (tmp_path / "reference_pissa_vs_lora.md").is_file() and (tmp_path / "reference_pissa_vs_lora.html").is_file()
    assert len(table[table["verdict"] == "not run"]) == len(load_reference("pissa_vs_lora").query("task != 'metamathqa_gsm8k'"))

    runs = pd.read_parquet(smoke_results / "runs")
    metrics = pd.read_parquet(smoke_results / "metrics")
    flexible = metrics[(metrics["metric"] == "exact_match_flexible") & metrics["step"].isna()].merge(runs[["run_id", "method"]])
    compared = table[table["verdict"] != "not run"]
    assert set(compared["method"]) == {"lora", "pissa"} and len(compared) == 8  # every GSM8K row, once each
    for row in compared.itertuples():
        assert row.ours == pytest.approx(flexible.loc[flexible["method"] == row.method, "value"].mean())
        assert row.our_model == "tiny-random-llama" and row.our_task == "metamathqa_gsm8k~gsm8k_train"
        assert f"published {row.published_model}" in row.differences and "~gsm8k_train" in row.differences
        assert row.verdict in ("within noise", "above", "below")
