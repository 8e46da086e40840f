"""The guides "Adding a method" and "Adding a task", followed word for word: their code blocks become
the files they say to write, in a copy of the repository, and the commands they give run through the
real CLI with the outcomes the guides promise."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

GUIDES = REPO / "docs" / "guides"


def _blocks(guide: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (GUIDES / guide).read_text(), re.S)


@pytest.fixture(scope="module")
def repo_with_guides(tmp_path_factory):
    """A copy of the repository with the guide's method and task added, exactly as written there."""
    root = tmp_path_factory.mktemp("guides") / "repo"
    shutil.copytree(REPO, root, ignore=shutil.ignore_patterns(".git", "results", "site", "__pycache__", "*.egg-info"))
    (method_py,), (method_yaml,) = _blocks("adding-a-method.md", "python"), _blocks("adding-a-method.md", "yaml")
    (task_py,), (task_yaml,) = _blocks("adding-a-task.md", "python"), _blocks("adding-a-task.md", "yaml")
    (root / "methods" / "head_tuning.py").write_text(method_py)
    (root / "conf" / "method" / "head_tuning.yaml").write_text(method_yaml)
    (root / "harness" / "tasks" / "arc_easy_words.py").write_text(task_py)
    (root / "conf" / "task" / "arc_easy_words.yaml").write_text(task_yaml)
    return root


def _run(root, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", *args], cwd=root, env=env, capture_output=True, text=True, timeout=600)


def test_a_method_added_by_the_guide_is_listed_runs_and_refuses_bad_options(repo_with_guides, tmp_path):
    root = repo_with_guides
    listed = _run(root, "methods")
    assert re.search(r"^head_tuning +selective +native +unmerged +baseline \(no paper\)$", listed.stdout, re.M), listed.stdout
    proc = _run(root, "harness", "method=head_tuning", "model=tiny-random-llama", "budget=smoke", "task.n_eval=2",
                "forgetting.probes=[]", "forgetting.target_gain=false", f"results_dir={tmp_path}", "data.dir=tests/data")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^\[done \w+\] head_tuning tiny-random-llama gsm8k smoke seed=0 .*answer_ce=", proc.stdout, re.M), proc.stdout
    assert len(list((tmp_path / "runs").glob("*.parquet"))) == 1
    bad = _run(root, "harness", "method=head_tuning", "method.head=", "model=tiny-random-llama")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: method.head='' is invalid: name the output module, e.g. lm_head"


def test_a_task_added_by_the_guide_is_checked_runs_and_refuses_bad_options(repo_with_guides, tmp_path):
    root = repo_with_guides
    check = _run(root, "harness.data", "check", "tests/data", "--tasks", "arc_easy_words")
    assert check.returncode == 0 and re.search(r"^task +arc_easy_words +ok \(2 files\)$", check.stdout, re.M), check.stdout
    proc = _run(root, "harness", "task=arc_easy_words", "model=tiny-random-llama", "budget=smoke", "method=lora",
                "forgetting.probes=[]", "forgetting.target_gain=false", "data.dir=tests/data", "data.order=[local]",
                f"results_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^\[done \w+\] lora tiny-random-llama arc_easy_words smoke seed=0 .*: acc=0\.\d{4} ", proc.stdout, re.M), proc.stdout
    bad = _run(root, "harness", "task=arc_easy_words", "task.n_eval=-1", "model=tiny-random-llama")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: task.n_eval=-1 is invalid: it must be an integer >= 1, or null"
