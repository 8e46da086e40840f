"""GLUE on the real GLUE tsv files: parsing, splits, the STS-B protocol, a CLI run into parquet."""

from __future__ import annotations

import math

import pytest
from omegaconf import OmegaConf

from harness import tasks
from harness.cli import preflight
from harness.core.errors import HarnessError
from harness.scoring.loglik import ChoiceScore
from harness.store.result_store import ResultStore
from harness.tasks.base import EvalContext
from harness.tasks.glue import SPECS
from tests.conftest import run_cli


def glue(key: str, *overrides: str):
    cfg = preflight._compose([f"task=glue_{key}", *overrides]).task
    return tasks.build(OmegaConf.to_container(cfg, resolve=True))


GLUE_LABELS = {"sst2": {0, 1}, "mrpc": {0, 1}, "rte": {0, 1}, "cola": {0, 1}, "stsb": None}
GLUE_FOLDERS = {"sst2": "SST-2", "mrpc": "MRPC", "rte": "RTE", "cola": "CoLA", "stsb": "STS-B", "qnli": "QNLI"}


def tsv_rows(data_dir, key: str, split: str) -> int:
    """Data rows of a GLUE tsv, counted as lines (CoLA has no header line)."""
    lines = (data_dir / "glue" / GLUE_FOLDERS[key] / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
    return len(lines) - (key != "cola")


def check_local_splits(data_dir, key: str, n_train: int, n_dev: int) -> None:
    data = glue(key).load({"dir": str(data_dir), "order": ["local"]})
    assert (data.name, len(data.train), len(data.eval)) == (f"glue_{key}", n_train, n_dev)
    spec = next(s for s in SPECS if s.key == key)
    assert all(set(x) == set(spec.columns) and all(isinstance(v, str) and v for k, v in x.items() if k != "label")
               for x in data.train + data.eval)
    if GLUE_LABELS[key]:
        assert {x["label"] for x in data.eval} == GLUE_LABELS[key]
    else:
        assert all(0.0 <= x["label"] <= 5.0 for x in data.eval)


@pytest.mark.parametrize("key", sorted(GLUE_LABELS))
def test_local_splits_read_every_row_of_the_vendored_files(test_data, key):
    check_local_splits(test_data, key, tsv_rows(test_data, key, "train"), tsv_rows(test_data, key, "dev"))


@pytest.mark.slow
@pytest.mark.parametrize("key,n_train,n_dev", [
    ("sst2", 67349, 872), ("mrpc", 3668, 408), ("rte", 2490, 277), ("cola", 8551, 1043), ("stsb", 5749, 1500),
])
def test_local_splits_match_the_official_sizes(full_data, key, n_train, n_dev):
    check_local_splits(full_data, key, n_train, n_dev)


def test_mrpc_quotes_are_text(test_data):
    """MRPC has unbalanced quotes: parsed as CSV quoting, rows would merge and the count drop."""
    data = glue("mrpc").load({"dir": str(test_data), "order": ["local"]})
    assert data.eval[0]["sentence2"].startswith('"The foodservice pie business')


def check_qnli_carve(data_dir, n_dev: int) -> None:
    data = glue("qnli").load({"dir": str(data_dir), "order": ["local"]})
    assert data.name == "glue_qnli_devslice" and len(data.eval) == 1000 and len(data.train) == n_dev - 1000
    key = lambda x: (x["question"], x["sentence"])
    assert not {key(x) for x in data.train} & {key(x) for x in data.eval}
    assert {x["label"] for x in data.eval} == {0, 1}


def test_qnli_has_no_local_train_split_so_it_carves_dev(test_data):
    check_qnli_carve(test_data, tsv_rows(test_data, "qnli", "dev"))


@pytest.mark.slow
def test_qnli_carve_of_the_full_dev_split(full_data):
    check_qnli_carve(full_data, 5463)


def test_missing_train_split_without_carve_is_one_line_error(test_data):
    with pytest.raises(HarnessError) as err:
        glue("qnli", "task.sources.local.carve=null").load({"dir": str(test_data), "order": ["local"]})
    message = str(err.value)
    assert "QNLI/train.tsv does not exist" in message and "no training split for glue_qnli" in message
    assert "\n" not in message


def test_few_shot_is_rejected(test_data):
    with pytest.raises(HarnessError, match="zero-shot"):
        glue("sst2", "task.num_fewshot=2").load({"dir": str(test_data), "order": ["local"]})


def test_stsb_prediction_is_the_expected_score(test_data):
    task = glue("stsb", "task.n_eval=3")
    data = task.load({"dir": str(test_data), "order": ["local"]})
    # Item 0: all mass on " 5"; item 1: " 1" and " 2" equally likely; item 2: uniform over 0..5.
    logprobs = [[-50.0] * 5 + [0.0], [-50.0, math.log(0.5), math.log(0.5), -50.0, -50.0, -50.0], [-1.0] * 6]
    scores = [[ChoiceScore(lp, False, 1) for lp in row] for row in logprobs]
    ctx = EvalContext(None, None, None, 0)
    rows = {m.metric: m for m in task.metrics(ctx, data, scores)}
    assert [round(s["value"], 6) for s in ctx.samples] == [5.0, 1.5, 2.5]
    golds = [x["label"] for x in data.eval]
    assert rows["pearson"].version == "glue_stsb/pearson/v1" and rows["pearson"].n == 3
    from scipy.stats import pearsonr

    assert rows["pearson"].value == pytest.approx(pearsonr([5.0, 1.5, 2.5], golds)[0], abs=1e-6)


def test_missing_data_exits_with_one_line_and_no_rows(tmp_path):
    proc = run_cli(["model=tiny-random-llama", "task=glue_sst2", "budget=smoke", "data.order=[local]",
                    f"data.dir={tmp_path}/nowhere"], tmp_path)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "no data for task glue_sst2" in lines[0]
    assert str(tmp_path / "nowhere" / "glue" / "SST-2" / "dev.tsv") in lines[0] and "HARNESS_DATA_DIR" in lines[0]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "metrics").exists()


def test_cli_runs_write_glue_rows(tmp_path, test_data):
    """CoLA (MCC), MRPC (acc, F1) and STS-B (Pearson, Spearman) through the real CLI, one process."""
    proc = run_cli(["hydra.mode=MULTIRUN", "model=tiny-random-llama", "task=glue_cola,glue_mrpc,glue_stsb", "budget=smoke",
                    "task.n_eval=8", "forgetting.probe=none", "data.order=[local]"],
                   tmp_path, {"HARNESS_DATA_DIR": str(test_data)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs, metrics, bad = ResultStore(tmp_path).read()
    assert bad == [] and sorted(runs["task"]) == ["glue_cola", "glue_mrpc", "glue_stsb"]
    final = metrics[metrics["step"].isna()]
    got = {(t, m) for t, m in zip(final["task"], final["metric"])}
    assert {("glue_cola", "mcc"), ("glue_cola", "acc"), ("glue_mrpc", "f1"), ("glue_mrpc", "acc"),
            ("glue_stsb", "pearson"), ("glue_stsb", "spearman")} <= got
    acc = final[(final["metric"] == "acc")]
    assert set(acc["n"]) == {8} and acc["value"].between(0, 1).all()
    assert final[final["metric"].isin(["mcc", "pearson", "spearman"])]["value"].between(-1, 1).all()
    samples = ResultStore(tmp_path).read_samples()
    assert len(samples[(samples["task"] == "glue_stsb") & (samples["metric"] == "expected_score")]) == 8
