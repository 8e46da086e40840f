"""metamathqa_math: the MATH gold-answer reader, MetaMath's answer extraction and the MATH paper's
equivalence on MATH-style strings; data sources and training pools; one real CLI run on
tiny-random-llama over a handful of hand-written items (no copy of MATH is available offline)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from harness.core.errors import HarnessError
from harness.core.paths import CONF_DIR
from harness.data.sources import DataMissing
from harness.store.result_store import ResultStore
from harness.tasks import build
from harness.tasks.math_answers import extract_answer, is_correct, is_equiv, last_boxed, normalize
from tests.conftest import run_cli

TASK_CFG = yaml.safe_load((CONF_DIR / "task" / "metamathqa_math.yaml").read_text())

# Hand-written items in both accepted row formats (MATH release / MetaMath's MATH_test.jsonl).
ITEMS = [
    {"problem": "What is $\\frac{1}{4} + \\frac{1}{4}$?", "level": "Level 1", "type": "Prealgebra",
     "solution": "Adding gives $\\frac{2}{4} = \\boxed{\\frac{1}{2}}$."},
    {"problem": "Solve $2x + 10 = 0$.", "level": "Level 1", "type": "Algebra",
     "solution": "Subtract 10 and divide by 2: $x = \\boxed{-5}$."},
    {"problem": "For which $x$ is $x - 3 \\le 0$?", "level": "Level 2", "type": "Intermediate Algebra",
     "solution": "Exactly when $x \\le 3$, so $x \\in \\boxed{(-\\infty, 3]}$."},
    {"problem": "How many ways can 3 books be ordered on a shelf?", "level": "Level 1", "type": "Counting & Probability",
     "solution": "There are $3! = \\boxed{6}$ orders."},
    {"instruction": "What is the remainder when 17 is divided by 5?", "output": "Since $17 = 3 \\cdot 5 + 2$, it is $\\boxed{2}$."},
    {"instruction": "Find the length of the diagonal of a unit square.", "output": "By Pythagoras it is $\\boxed{\\sqrt{2}}$."},
]


def _data_dir(tmp_path, test_data, items=ITEMS):
    (tmp_path / "math").mkdir(parents=True)
    (tmp_path / "math" / "test.jsonl").write_text("".join(json.dumps(x) + "\n" for x in items))
    (tmp_path / "gsm8k").symlink_to(test_data / "gsm8k")
    return tmp_path


def _task(**overrides):
    return build({**TASK_CFG, **overrides})


@pytest.mark.parametrize("solution,gold", [
    ("So $x = \\boxed{5}$.", "5"),
    ("The value is $\\boxed{\\frac{\\sqrt{3}}{2}}$.", "\\frac{\\sqrt{3}}{2}"),  # nested braces
    ("First $\\boxed{1}$, then the answer $\\boxed{\\{1, 2\\}}$ as a set.", "\\{1, 2\\}"),  # the last box
    ("Hence $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}$", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("The answer is $\\fbox{7}$.", "7"),
    ("$\\boxed{1}$ and later $\\fbox{2}$", "1"),  # \fbox only where there is no \boxed
    ("so the total is $\\boxed 42$.", "42"),
    ("no box here", None),
    ("$\\boxed{x + {1}$", None),  # braces never close
])
def test_gold_is_the_last_boxed_content(solution, gold):
    assert last_boxed(solution) == gold


@pytest.mark.parametrize("output,answer", [
    ("We add them.\nThe answer is: 5", "5"),
    ("The answer is: 5.", "5"),
    ("The answer is: 3.5", "3.5"),
    ("The answer is: \\frac{1}{2}.\nThen more text", "\\frac{1}{2}"),
    ("The answer is: 3. Checking again. The answer is: -7", "-7"),  # the last one
    ("The answer is: (-\\infty, 3]", "(-\\infty, 3]"),
    ("The answer is: ", ""),
    ("The answer is 5", None),  # no colon: not MetaMath's phrase
    ("the answer is: 5", None),  # case matters
])
def test_extraction_follows_metamath(output, answer):
    assert extract_answer(output) == answer


@pytest.mark.parametrize("prediction,gold", [
    ("\\frac12", "\\frac{1}{2}"), ("\\dfrac{1}{2}", "\\frac{1}{2}"), ("1/2", "\\frac{1}{2}"),
    ("0.5", "\\frac{1}{2}"), (".5", "\\frac{1}{2}"), ("\\tfrac1{72}", "\\frac{1}{72}"),
    ("-5", "-5"), (" -5 ", "-5"), ("x = -5", "-5"), ("k=3", "3"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
    ("(-\\infty,3]", "(-\\infty, 3]"), ("\\left[ 2, 5 \\right)", "[2,5)"),
    ("10\\text{ cm}", "10"), ("90^\\circ", "90"), ("90^{\\circ}", "90"), ("\\$18.90", "18.90"),
    ("50\\%", "50"), ("\\sqrt2", "\\sqrt{2}"), ("2\\sqrt3", "2\\sqrt{3}"),
    ("\\!10", "10"), ("0.25", ".25"),
])
def test_equivalent_answers(prediction, gold):
    assert is_equiv(prediction, gold)


@pytest.mark.parametrize("prediction,gold", [
    ("5", "-5"), ("12", "1.2"), ("10.0", "10"), ("\\frac{2}{4}", "\\frac{1}{2}"), ("0.50", "\\frac{1}{2}"),
    ("[2, 5)", "(2, 5)"), ("x^2", "x^3"), ("A", "\\text{(A)}"), ("50%", "50"),
    ("-3/4", "-\\frac{3}{4}"),  # string rules: -3/4 becomes \frac{-3}{4}
    ("\\sqrt 2", "\\sqrt{2}"),  # upstream's \sqrt fix runs before spaces go
    ("xy = 5", "5"),  # a left-hand side of three characters stays
    (None, "5"),
])
def test_answers_that_must_not_match(prediction, gold):
    assert not is_equiv(prediction, gold)


def test_rules_that_cannot_apply_compare_the_raw_strings():
    assert normalize("x/2") is None and normalize("1\\text{ m}\\text{ s}") is None and normalize("2\\sqrt") is None
    assert is_equiv("x/2", "x/2") and not is_equiv("x/2", "x / 2")
    assert normalize("") == "" and normalize("\\frac1") == "\\frac1"


def test_outputs_score_through_extraction_and_equivalence():
    assert is_correct("Adding, we get 2/4.\nThe answer is: \\dfrac{1}{2}", "\\frac{1}{2}")
    assert not is_correct("Adding, we get \\boxed{\\frac{1}{2}}", "\\frac{1}{2}")  # no "The answer is: "


def test_local_items_in_both_formats_in_hash_order(tmp_path, test_data):
    data_dir = _data_dir(tmp_path / "a", test_data)
    data = _task(train_pool="gsm8k_train", n_eval=4).load({"dir": str(data_dir), "order": ["local"]})
    assert data.name == "metamathqa_math~gsm8k_train" and data.identity["source"] == "local"
    assert len(data.eval) == 4 and data.identity["n_test_set"] == 6
    golds = {x["problem"]: x["answer"] for x in build({**TASK_CFG, "train_pool": None, "n_eval": None}).load(
        {"dir": str(data_dir), "order": ["local"]}).eval}
    assert golds["Solve $2x + 10 = 0$."] == "-5" and golds["Find the length of the diagonal of a unit square."] == "\\sqrt{2}"
    # the same subset whatever the file order
    again = _task(train_pool="gsm8k_train", n_eval=4).load(
        {"dir": str(_data_dir(tmp_path / "b", test_data, ITEMS[::-1])), "order": ["local"]})
    assert again.eval == data.eval and again.identity["eval_sha256"] == data.identity["eval_sha256"]
    subjects = {x["id"].split("/")[0] for x in build({**TASK_CFG, "train_pool": None, "n_eval": None}).load(
        {"dir": str(data_dir), "order": ["local"]}).eval}
    assert subjects == {"prealgebra", "algebra", "intermediate_algebra", "counting_and_probability", "unknown"}
    # the substitute pool: GSM8K train in MetaMathQA's answer form, the training prompt without the CoT cue
    gsm8k_train = (test_data / "gsm8k" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(data.train) == len(gsm8k_train) and data.train[0]["target"].endswith("#### 72\nThe answer is: 72")
    assert "<<" not in data.train[0]["target"]
    prompt, target = _task().training_pair(data.train[0])
    assert prompt.endswith("### Response:") and target.startswith(" ")
    assert _task().prompt(data.eval[0]).endswith("### Response: Let's think step by step.")


def test_metamathqa_pool_is_metamathqa_gsm8k_s(tmp_path, test_data):
    data_dir = _data_dir(tmp_path, test_data)
    (tmp_path / "metamathqa").mkdir()
    rows = [{"query": f"q{i}", "response": f"r{i} The answer is: {i}", "type": "MATH_AnsAug"} for i in range(7)]
    (tmp_path / "metamathqa" / "MetaMathQA-395K.json").write_text(json.dumps(rows))
    data = _task(train_limit=5).load({"dir": str(data_dir), "order": ["local"]})
    assert data.name == "metamathqa_math" and data.identity["train_pool"] == "metamathqa"
    assert data.train == [{"problem": r["query"], "target": r["response"]} for r in rows[:5]]


def test_missing_math_names_every_source_tried(tmp_path, test_data):
    (tmp_path / "gsm8k").symlink_to(test_data / "gsm8k")
    with pytest.raises(DataMissing) as err:
        _task(train_pool="gsm8k_train").load({"dir": str(tmp_path), "order": ["hub", "local", "package"]})
    message = str(err.value)
    assert message.startswith("no data for task metamathqa_math (MATH test set); tried hub: ")
    assert str(tmp_path / "math" / "test.jsonl") in message and "package: not offered" in message and "\n" not in message


def test_missing_metamathqa_names_the_substitute(tmp_path, test_data):
    with pytest.raises(HarnessError) as err:
        _task().load({"dir": str(_data_dir(tmp_path, test_data)), "order": ["local"]})
    assert "metamathqa/MetaMathQA-395K.json does not exist" in str(err.value)
    assert "task.train_pool=gsm8k_train" in str(err.value) and "\n" not in str(err.value)


def test_rows_without_a_known_format_or_a_gold_answer_are_errors(tmp_path, test_data):
    for bad, needle in (({"question": "q", "answer": "1"}, "neither"), ({"problem": "p", "solution": "no box"}, "no \\boxed")):
        data_dir = _data_dir(tmp_path / needle[:3], test_data, [bad])
        with pytest.raises(HarnessError, match="test.jsonl:1: "):
            _task(train_pool=None).load({"dir": str(data_dir), "order": ["local"]})


# --- the real CLI ----------------------------------------------------------------------------

COMMON = ["model=tiny-random-llama", "budget=smoke", "task=metamathqa_math", "task.train_pool=gsm8k_train",
          "data.order=[local]", "forgetting.probes=[]"]


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, test_data):
    """A run on the hand-written items, and one without MATH data, side by side."""
    data_dir = _data_dir(tmp_path_factory.mktemp("data"), test_data)
    empty = tmp_path_factory.mktemp("empty")
    (empty / "gsm8k").symlink_to(test_data / "gsm8k")
    run = [*COMMON, f"data.dir={data_dir}", "task.n_eval=4", "task.train_limit=64", "task.max_new_tokens=8"]
    with ThreadPoolExecutor(2) as pool:
        ok = pool.submit(run_cli, run, tmp_path_factory.mktemp("results"))
        missing = pool.submit(run_cli, [*COMMON, f"data.dir={empty}"], tmp_path_factory.mktemp("none"))
        return ok.result(), missing.result()


def test_cli_run_writes_accuracy_and_answer_ce(cli_runs):
    proc, _ = cli_runs
    assert proc.returncode == 0, proc.stderr[-3000:]
    store = ResultStore(proc.args[3].split("=", 1)[1])
    runs, metrics, _ = store.read()
    assert len(runs) == 1 and runs["status"].iloc[0] == "finished" and runs["train_steps"].iloc[0] == 3
    assert runs["task"].iloc[0] == "metamathqa_math~gsm8k_train"
    final = metrics[metrics["step"].isna()].set_index(["task", "metric"])
    task = "metamathqa_math~gsm8k_train"
    accuracy, ce = final.loc[(task, "accuracy")], final.loc[(task, "answer_ce")]
    assert accuracy["n"] == 4 and 0 <= accuracy["value"] <= 1 and accuracy["metric_version"] == "math/accuracy/v1"
    assert ce["n"] == 4 and ce["value"] > 0 and ce["metric_version"] == "math/answer_ce/v1"
    assert final.loc[(task, "gain_accuracy"), "metric_version"] == "gain/v1+math/accuracy/v1"
    samples = store.read_samples()
    assert len(samples) == 8 and samples["item_id"].str.match(r"^[a-z_]+/[0-9a-f]{12}$").all()
    identity = json.loads(runs["data_json"].iloc[0])
    assert identity["n_eval"] == 4 and identity["source"] == "local" and identity["n_train_pool"] == 64


def test_cli_without_math_data_is_a_one_line_error_and_no_rows(cli_runs):
    _, proc = cli_runs
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no data for task metamathqa_math (MATH test set); tried local: ")
    results = Path(proc.args[3].split("=", 1)[1])
    assert not (results / "runs").exists() and not (results / "metrics").exists()
