"""`python -m harness.data fetch|check`: through the real CLI, fetching from the vendored data dir into
a new folder that a real run then reads, and checking complete, partial, corrupt and damaged
folders; the hub path in-process, with `datasets.load_dataset` serving rows of the vendored files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.hashing import hash_file
from harness.store.result_store import ResultStore
from tests.conftest import REPO, run_cli

# One of each kind of file: JSON Lines, GLUE tsv (QNLI: train optional), MMLU csv, text, LLM-Adapters json.
TASKS = ["gsm8k", "glue_qnli", "mmlu", "general_text", "general_suite"]


def data_cli(*args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # no hub here: the HF cache is tried, then --from
    return subprocess.run([sys.executable, "-m", "harness.data", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def lines(proc: subprocess.CompletedProcess) -> dict[str, str]:
    """stdout's lines but the summary (the last), by dataset or by task/probe name."""
    out = {}
    for line in proc.stdout.splitlines()[:-1]:
        words = line.split()
        out[words[1] if words[0] in ("task", "probe") else words[0]] = line
    return out


@pytest.fixture(scope="module")
def fetched(tmp_path_factory, test_data) -> tuple[Path, subprocess.CompletedProcess]:
    to = tmp_path_factory.mktemp("fetch") / "new" / "data"  # a folder that does not exist yet
    proc = data_cli("fetch", "--to", to, "--from", test_data, "--tasks", *TASKS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return to, proc


def copy_of(fetched_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(fetched_dir, tmp_path / "data"))


def test_fetch_copies_each_dataset_once_and_records_checksums(fetched, test_data):
    to, proc = fetched
    by_name = lines(proc)
    # The general suite's MMLU subjects and the mmlu task share one dataset line; ARC comes from the suite.
    assert set(by_name) == {"gsm8k", "glue/QNLI", "mmlu", "wikitext2", "llm_adapters/ARC-Easy", "llm_adapters/ARC-Challenge"}
    assert "fetched: 2 files from --from" in by_name["gsm8k"] and "fetched: 171 files" in by_name["mmlu"]
    assert "optional glue/QNLI/train.tsv not in --from" in by_name["glue/QNLI"]
    assert proc.stdout.splitlines()[-1] == f"6 of 6 datasets fetched into {to} (checksums: {to / 'checksums.json'})"
    written = {p.relative_to(to).as_posix() for p in to.rglob("*") if p.is_file()} - {"checksums.json"}
    manifest = json.loads((to / "checksums.json").read_text())["files"]
    assert set(manifest) == written and len(written) == 2 + 1 + 171 + 1 + 2
    for relative, entry in manifest.items():
        assert entry["sha256"] == hash_file(to / relative) == hash_file(test_data / relative)
        assert entry["bytes"] == (to / relative).stat().st_size
        assert entry["source"] == f"copy of {test_data.resolve() / relative}" and entry["fetched"]


def test_check_says_every_named_task_can_run_from_the_fetched_folder(fetched):
    to, _ = fetched
    proc = data_cli("check", to, "--tasks", *TASKS, "kl_drift")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    by_name = lines(proc)
    assert [by_name[n].split()[2] for n in [*TASKS, "kl_drift"]] == ["ok"] * 6
    assert "ok (1 file)" in by_name["glue_qnli"] and "reads no data" in by_name["kl_drift"]
    assert proc.stdout.splitlines()[-1] == f"6 of 6 can run from {to}"


def test_a_run_reads_the_fetched_folder(fetched, tmp_path):
    to, _ = fetched
    proc = run_cli(["task=gsm8k", f"data.dir={to}", "data.order=[local]", "model=tiny-random-llama", "budget=smoke",
                    "task.n_eval=2", "task.max_new_tokens=4", "forgetting.probes=[general_text]"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs, metrics, _ = ResultStore(tmp_path).read()
    assert runs["status"].tolist() == ["finished"]
    assert json.loads(runs["data_json"].iloc[0])["source"] == "local"
    assert {"exact_match_strict", "general_ce_before"} <= set(metrics["metric"])


def test_check_names_the_missing_file_of_a_partial_folder(fetched, tmp_path):
    data = copy_of(fetched[0], tmp_path)
    (data / "gsm8k" / "test.jsonl").unlink()
    proc = data_cli("check", data, "--tasks", "gsm8k", "mmlu")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    by_name = lines(proc)
    assert "CANNOT RUN: missing 1: gsm8k/test.jsonl" in by_name["gsm8k"]
    assert " ok " in by_name["mmlu"]
    assert proc.stdout.splitlines()[-1].endswith(f"python -m harness.data fetch --to {data} --tasks gsm8k")


def test_check_finds_a_file_changed_since_it_was_fetched(fetched, tmp_path):
    data = copy_of(fetched[0], tmp_path)
    changed = data / "mmlu" / "test" / "anatomy_test.csv"  # a subject of the mmlu task, not of the general suite
    text = changed.read_text()
    changed.write_text(text.replace("A", "B", 1))  # same size, still parses: only the checksum can tell
    proc = data_cli("check", data, "--tasks", "mmlu", "general_suite")
    assert proc.returncode == 1
    by_name = lines(proc)
    assert "CANNOT RUN: corrupt 1: mmlu/test/anatomy_test.csv (sha256 differs from the manifest)" in by_name["mmlu"]
    assert " ok " in by_name["general_suite"]


def test_check_finds_binary_garbage_in_a_folder_without_manifest(fetched, tmp_path):
    data = copy_of(fetched[0], tmp_path)
    (data / "checksums.json").unlink()  # e.g. a data dir copied by hand: only parsing can tell
    (data / "gsm8k" / "train.jsonl").write_bytes(bytes(range(256)) * 8)
    proc = data_cli("check", data, "--tasks", "gsm8k")
    assert proc.returncode == 1
    assert "CANNOT RUN: unparsable 1: gsm8k/train.jsonl (UnicodeDecodeError" in lines(proc)["gsm8k"]


def test_check_lists_every_task_config_and_probe(test_data):
    proc = data_cli("check", test_data)  # no --tasks: everything; some tasks' data are not vendored
    assert proc.returncode == 1
    by_name = lines(proc)
    names = sorted(p.stem for p in (REPO / "conf" / "task").glob("*.yaml"))
    assert set(names) | {"general_text", "general_suite", "kl_drift"} <= set(by_name)
    assert "CANNOT RUN: missing 2: glue/MNLI/train.tsv, glue/MNLI/dev_matched.tsv" in by_name["glue_mnli"]
    assert " ok " in by_name["gsm8k"] and " ok " in by_name["general_suite"]


def test_fetch_says_why_no_source_has_a_dataset(tmp_path, test_data):
    proc = data_cli("fetch", "--to", tmp_path / "data", "--from", test_data, "--tasks", "glue_mnli")
    assert proc.returncode == 1
    line = lines(proc)["glue/MNLI"]
    assert "NOT FETCHED: hub: HF_HUB_OFFLINE is set; hf-cache: load_dataset('nyu-mll/glue', 'mnli') failed" in line
    assert f"--from {test_data.resolve()}: {test_data.resolve()}/glue/MNLI/train.tsv does not exist" in line
    assert not (tmp_path / "data" / "glue").exists() and not list((tmp_path / "data").glob(".*partial*"))


def test_fetch_refuses_a_corrupt_source(fetched, tmp_path):
    source = copy_of(fetched[0], tmp_path)
    (source / "gsm8k" / "test.jsonl").write_text("{}\n")  # its manifest still records the real file
    proc = data_cli("fetch", "--to", tmp_path / "out", "--from", source, "--tasks", "gsm8k")
    assert proc.returncode == 1
    assert "gsm8k/test.jsonl is corrupt (3 bytes, the manifest says" in lines(proc)["gsm8k"]


@pytest.mark.parametrize(("args", "needle"), [
    (["fetch", "--to", "{tmp}/d", "--tasks", "gsm8k", "nope"], "error: unknown task or probe 'nope'; valid: glue_cola,"),
    (["fetch", "--to", "{tmp}/a_file/d", "--tasks", "gsm8k"], "error: cannot write to --to {tmp}/a_file/d (Not a directory); choose a folder"),
    (["fetch", "--to", "{tmp}/d", "--from", "{tmp}/absent"], "error: --from {tmp}/absent is not a folder; give a data dir"),
    (["check", "{tmp}/absent"], "error: data dir {tmp}/absent is not a folder; give a data dir"),
])
def test_bad_input_is_one_line_error(tmp_path, args, needle):
    (tmp_path / "a_file").write_text("")
    proc = data_cli(*(a.format(tmp=tmp_path) for a in args))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and proc.stderr.startswith(needle.format(tmp=tmp_path))
    assert proc.stdout == "" and not (tmp_path / "d").exists()


@pytest.mark.parametrize("via", ["hub", "hf-cache"])
def test_hub_rows_become_files_the_tasks_own_loaders_read(tmp_path, test_data, monkeypatch, via):
    """load_dataset serves, per request a file declares, the rows of the vendored file (in the hub's
    schema, as the task's reader returns them): what fetch writes must load into the same items."""
    import datasets

    import harness.models.hub
    from harness.data.fetch import fetch_dataset, hub_source
    from harness.data.layout import HubRequest, merge
    from harness.data.needs import needs

    names = ["gsm8k", "glue_cola", "glue_mrpc", "glue_rte", "glue_stsb", "glue_qnli", "mmlu", "general_text", "general_suite"]
    wanted = needs(names)
    served = {}
    for dataset in merge(d for need in wanted for d in need.datasets):
        for file in dataset.files:
            if (test_data / file.relative).is_file():
                rows = file.read(test_data / file.relative)
                if isinstance(rows, str):  # WikiText: the hub has one row per line
                    rows = [{"text": line} for line in rows.splitlines(keepends=True)]
                (request,) = file.hub
                served[request] = rows
    calls = []

    def load_dataset(path, name=None, split=None, data_files=None, **_):
        calls.append(HubRequest(path, name, split, data_files))
        if calls[-1] not in served:  # QNLI's train split: not vendored, so "not on the hub" here
            raise FileNotFoundError(f"no {calls[-1]}")
        return served[calls[-1]]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    if via == "hub":
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
        monkeypatch.setattr(harness.models.hub, "hub_reachable", lambda: True)
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    to = tmp_path / "data"
    outcomes = [fetch_dataset(d, to, [hub_source(offline=False), hub_source(offline=True)])
                for d in merge(d for need in wanted for d in need.datasets)]
    assert [o.source for o in outcomes] == [via] * len(outcomes), [o.line() for o in outcomes]
    assert HubRequest("openai/gsm8k", "main", "train") in calls and HubRequest("cais/mmlu", "anatomy", "validation") in calls
    manifest = json.loads((to / "checksums.json").read_text())["files"]
    assert manifest["gsm8k/test.jsonl"]["source"] == f"{via}: openai/gsm8k main test"
    assert not (to / "glue" / "QNLI" / "train.tsv").exists()  # optional, and the hub "lacks" it
    for need in wanted:
        assert need.load(str(to)) == need.load(str(test_data)), need.name
