"""`python -m harness.results query` through the real CLI: filters, chosen columns, joined metric
values, CSV and markdown, one-line errors; and the DuckDB views of docs/results.md against the same
store (compacted and loose files, a forced rerun, an orphan metrics part)."""

from __future__ import annotations

import datetime as dt
import io
import re
import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.store.parts import list_parts
from harness.store.result_store import METRICS_SCHEMA, ResultStore
from tests.conftest import REPO

# (run_id, method, seed, status, lr, gsm8k exact_match_flexible); run ids that look like numbers stay text
RUNS = [("0000000000000001", "lora", 0, "finished", 1e-4, 0.25), ("0000000000000002", "lora", 1, "finished", 2e-4, 0.5),
        ("00000000000000a3", "lora", 2, "failed", 1e-4, None), ("00000000000000b4", "pissa", 0, "finished", 3e-4, 0.75)]


def _metric(task: str, metric: str, value: float, step=None) -> dict:
    return {"task": task, "metric": metric, "value": value, "stderr": 0.01, "n": 4, "higher_is_better": True,
            "metric_version": f"{metric}/v1", "step": step}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    store = ResultStore(root)
    now = dt.datetime.now(dt.timezone.utc)
    for i, (run_id, method, seed, status, lr, value) in enumerate(RUNS):
        if i == 2:
            store.compact()  # the first two runs from a compacted file, the others from their parts
        row = {"run_id": run_id, "status": status, "method": method, "model": "tiny", "task": "gsm8k", "budget": "smoke",
               "seed": seed, "lr": lr, "started_at": now, "ended_at": now, "error": "RuntimeError: boom" if value is None else None}
        metrics = [] if value is None else [_metric("gsm8k", "exact_match_flexible", value), _metric("gsm8k", "train_loss", 9.0, 1),
                                            _metric("forgetting/general_text", "forgetting_ce_delta", -value)]
        store.write(row, metrics)
    return root


def query(results, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.results", "query", str(results), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def test_filters_columns_and_metrics_as_csv(results):
    proc = query(results, "--method", "lora", "--status", "finished", "--columns", "run_id,method,seed,lr",
                 "--metric", "gsm8k/exact_match_flexible,forgetting/general_text/forgetting_ce_delta", "--format", "csv")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    table = pd.read_csv(io.StringIO(proc.stdout), dtype={"run_id": str})
    assert list(table.columns) == ["run_id", "method", "seed", "lr", "gsm8k/exact_match_flexible",
                                   "forgetting/general_text/forgetting_ce_delta"]
    assert table.values.tolist() == [["0000000000000001", "lora", 0, 1e-4, 0.25, -0.25],
                                     ["0000000000000002", "lora", 1, 2e-4, 0.5, -0.5]]


def test_a_piped_query_defaults_to_csv_and_failed_runs_have_empty_metric_cells(results):
    proc = query(results, "--method", "lora", "--metric", "exact_match_flexible")  # bare: the run's own task
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "run_id,status,method,model,task,budget,seed,lr,exact_match_flexible"
    assert lines[3] == "00000000000000a3,failed,lora,tiny,gsm8k,smoke,2,0.0001,"


def test_filters_that_exist_but_match_nothing_together_give_an_empty_table(results):
    proc = query(results, "--status", "failed", "--method", "pissa", "--columns", "run_id,method")
    assert proc.returncode == 0 and proc.stdout == "run_id,method\n", proc.stderr


def test_markdown_keeps_run_ids_as_text(results):
    proc = query(results, "--columns", "run_id,method,status", "--metric", "gsm8k/exact_match_flexible", "--format", "markdown")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert re.fullmatch(r"\| run_id +\| method +\| status +\| gsm8k/exact_match_flexible +\|", lines[0])
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert cells == [["0000000000000001", "lora", "finished", "0.25"], ["0000000000000002", "lora", "finished", "0.5"],
                     ["00000000000000a3", "lora", "failed", ""], ["00000000000000b4", "pissa", "finished", "0.75"]]


@pytest.mark.parametrize("args, message", [
    (["--columns", "run_id,nonsense"], r"error: unknown column 'nonsense' in --columns; runs columns are: run_id, status, "),
    (["--method", "lora,lorra"], r"error: --method 'lorra' matches no run in .*; method values there: lora, pissa$"),
    (["--status", "done"], r"error: --status 'done' is not a run status; use finished or failed$"),
    (["--metric", "gsm8k/accuracy"], r"error: --metric 'gsm8k/accuracy' matches no final metric in .*; metrics there: .*gsm8k/exact_match_flexible"),
    (["--metric", "forgetting_ce_delta"], r"error: --metric 'forgetting_ce_delta' is on no run's own task; name the task: forgetting/general_text/forgetting_ce_delta$"),
    (["--format", "xml"], r"error: argument --format: invalid choice: 'xml' .*\(see `python -m harness.results query --help`\)$"),
    (["--seed", "1"], r"error: unrecognized arguments: --seed 1 \(see `python -m harness.results --help`\)$"),
])
def test_bad_input_is_one_line(results, args, message):
    proc = query(results, *args)
    assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert re.match(message, proc.stderr.strip()), proc.stderr


def test_a_folder_without_runs_is_one_line(tmp_path):
    proc = query(tmp_path / "nowhere")
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: {tmp_path / 'nowhere'} holds no runs/ folder; " \
        "pass the results_dir a sweep wrote to"


def _views_sql() -> str:
    text = (REPO / "docs" / "results.md").read_text()
    return re.search(r"<!-- duckdb-views.*?```sql\n(.*?)```", text, re.S).group(1)


def test_the_documented_duckdb_views_read_what_the_store_reads(results, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    import shutil

    root = tmp_path / "results"
    shutil.copytree(results, root)
    for table in ("runs", "metrics"):  # one compacted file of an earlier version's name (`_compacted-`), one of today's
        (old,) = list_parts(root / table).compacted
        old.rename(old.with_name("_" + old.name))
    newer = ResultStore(tmp_path / "newer")
    newer.write({"run_id": "0000000000000002", "status": "finished", "method": "dora", "seed": 1, "lr": 1e-4,
                 "started_at": dt.datetime.now(dt.timezone.utc), "ended_at": dt.datetime.now(dt.timezone.utc)},
                [_metric("gsm8k", "exact_match_flexible", 0.5)])
    newer.compact()
    for table in ("runs", "metrics"):
        (new,) = list_parts(tmp_path / "newer" / table).compacted
        new.rename(root / table / new.name)
    store = ResultStore(root)
    now = dt.datetime.now(dt.timezone.utc)
    # a forced rerun of a compacted run (its own part wins) and metrics of a run killed before its runs row
    store.write({"run_id": "0000000000000001", "status": "finished", "method": "lora", "seed": 0, "lr": 5e-4,
                 "started_at": now, "ended_at": now}, [_metric("gsm8k", "exact_match_flexible", 0.9)])
    pq.write_table(pa.Table.from_pylist([{**_metric("gsm8k", "exact_match_flexible", 1.0), "run_id": "killed"}],
                                        schema=METRICS_SCHEMA), root / "metrics" / "killed.parquet")
    runs, metrics, _ = store.read()
    con = duckdb.connect()
    con.execute(_views_sql().replace("'results/", f"'{root}/"))
    sql_runs = con.sql("SELECT run_id, status, lr FROM runs ORDER BY run_id").df()
    sql_metrics = con.sql("SELECT run_id, task, metric, value, step FROM metrics ORDER BY run_id, task, metric").df()
    assert sql_runs.values.tolist() == runs[["run_id", "status", "lr"]].sort_values("run_id").values.tolist()
    expected = metrics[["run_id", "task", "metric", "value", "step"]].sort_values(["run_id", "task", "metric"])
    assert sql_metrics.astype(object).where(sql_metrics.notna(), None).values.tolist() == \
        expected.astype(object).where(expected.notna(), None).values.tolist()
    assert sql_runs.set_index("run_id").loc["0000000000000001", "lr"] == 5e-4 and "killed" not in set(sql_metrics["run_id"])
