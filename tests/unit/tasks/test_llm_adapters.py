"""LLM-Adapters suites: answer extraction on the real files' strings, data sources and substitute
pools, and both suites end to end through the CLI on real items."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from harness.core.errors import HarnessError
from harness.core.paths import CONF_DIR
from harness.store.result_store import ResultStore
from harness.tasks import build
from harness.tasks.llm_adapters import (
    COMMONSENSE,
    MATH,
    extract,
    extract_letter,
    extract_number,
    is_correct,
    parse_choices,
)
from tests.conftest import run_cli

MATH_CFG = yaml.safe_load((CONF_DIR / "task" / "llm_adapters_math.yaml").read_text())
CS_CFG = yaml.safe_load((CONF_DIR / "task" / "llm_adapters_commonsense.yaml").read_text())
PRESENT_CS = [d for d in CS_CFG["datasets"] if d != "hellaswag"]  # no HellaSwag file here (MANIFEST)


def _test_set(test_data, member):
    return json.loads((test_data / "llm_adapters" / "dataset" / member.folder / "test.json").read_text())


NUMERIC = ["gsm8k", "svamp", "addsub", "multiarith", "singleeq"]
CS_PRESENT_KEYS = sorted(set(COMMONSENSE) - {"hellaswag"})


def check_number_extraction(data_dir, name: str) -> None:
    """The files' rationales end in "The answer is N."; the last number is N (even where the
    rationale itself is wrong, as some generated ones are: then it must score as wrong)."""
    member = MATH[name]
    checked, items = 0, _test_set(data_dir, member)
    for item in items:
        stated = re.search(r"The answer is \$?(-?[\d,]*\.?\d+)\.?\s*$", item["output"])
        if stated:
            value = float(stated.group(1).replace(",", ""))
            assert extract_number(item["output"]) == value
            assert is_correct(member, item["output"], item["answer"], 0.001) == (abs(value - float(item["answer"])) <= 0.001)
            checked += 1
    assert checked > len(items) // 2  # most rationales state their answer (80-95% per set)


@pytest.mark.parametrize("name", NUMERIC)
def test_number_extraction_reads_the_stated_answer_of_real_rationales(test_data, name):
    check_number_extraction(test_data, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", NUMERIC)
def test_number_extraction_on_every_item_of_the_full_sets(full_data, name):
    check_number_extraction(full_data, name)


@pytest.mark.parametrize("output,value", [
    ("3 + 6.8 = 9.8 gallons. The answer is 9.8.", 9.8),
    ("He owes $1,234 in total.", 1234.0),
    ("The temperature fell to -15 degrees", -15.0),
    ("no digits at all", float("inf")),
])
def test_number_extraction_takes_the_last_number(output, value):
    assert extract_number(output) == value


def test_mawps_answers_compare_with_tolerance():
    assert is_correct(MATH["mawps"], "so it is 1.8333 inches longer", "1.8333333333333335", 0.001)
    assert not is_correct(MATH["mawps"], "so it is 1.83 inches longer", "1.8333333333333335", 0.001)


def test_aqua_takes_the_first_capital_a_to_e_as_upstream(test_data):
    items = _test_set(test_data, MATH["aqua"])
    item = items[0]  # its rationale reasons to (D) while the key is A
    assert extract_letter(item["output"]) == "D" and not is_correct(MATH["aqua"], item["output"], item["answer"], 0)
    # Upstream reads the first capital A-E anywhere, so a sentence starting with "A" answers A.
    assert extract_letter("A rectangle has 4 sides. The answer is (C).") == "A"
    assert extract_letter("the answer is c") == ""


def check_reference_outputs(data_dir, name: str) -> None:
    member = COMMONSENSE[name]
    items = _test_set(data_dir, member)
    assert all(extract(member, x["output"]) == x["answer"] for x in items)
    assert extract(member, "I am not sure.") == ""


@pytest.mark.parametrize("name", CS_PRESENT_KEYS)
def test_reference_outputs_of_every_commonsense_set_extract_to_their_answer(test_data, name):
    check_reference_outputs(test_data, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", CS_PRESENT_KEYS)
def test_reference_outputs_of_the_full_commonsense_sets_extract_to_their_answer(full_data, name):
    check_reference_outputs(full_data, name)


@pytest.mark.parametrize("output,name,answer", [
    ("the correct answer is ending3 because", "hellaswag", "ending3"),
    ("option2, not option1", "winogrande", "option2"),
    ("false. It is true that", "boolq", "false"),
    ("Solution1 or solution2", "piqa", "solution2"),  # lower-case words only, as upstream
])
def test_commonsense_takes_the_first_answer_word(output, name, answer):
    assert extract(COMMONSENSE[name], output) == answer


@pytest.mark.parametrize("name", ["arc_e", "arc_c", "obqa", "siqa", "piqa"])
def test_option_texts_parse_from_real_instructions(test_data, name):
    for item in _test_set(test_data, COMMONSENSE[name])[:200]:
        question, options = parse_choices(item["instruction"])
        listed = item["instruction"].rsplit("Answer format: ", 1)[1].split("/")
        assert len(options) == len(listed) and all(options) and question
        assert int(item["answer"][-1]) <= len(options)


def test_local_suites_take_n_eval_items_of_every_dataset(test_data):
    data_cfg = {"dir": str(test_data), "order": ["local"]}
    math = build({**MATH_CFG, "n_eval": 5, "train_pool": "gsm8k_train"}).load(data_cfg)
    assert math.name == "llm_adapters_math~gsm8k_train" and math.identity["source"] == "local"
    assert math.identity["n_eval"] == {d: 5 for d in MATH_CFG["datasets"]} and len(math.eval) == 5 * 7
    gsm8k_train = (test_data / "gsm8k" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(math.train) == len(gsm8k_train) and math.train[0]["output"].endswith("The answer is 72.")
    assert "<<" not in math.train[0]["output"]


def test_substitute_pools_never_hold_an_eval_item(test_data):
    data_cfg = {"dir": str(test_data), "order": ["local"]}
    cs = build({**CS_CFG, "datasets": PRESENT_CS, "n_eval": 3, "train_pool": "train_splits"}).load(data_cfg)
    assert cs.name == "llm_adapters_commonsense~train_splits"
    # ARC-Easy's train and test splits share 2 questions upstream (MANIFEST): dropped here.
    assert cs.identity["n_train_dropped_overlap"] == 2
    tests = {" ".join(x["instruction"].lower().split())
             for d in PRESENT_CS for x in _test_set(test_data, COMMONSENSE[d])}
    assert not tests & {" ".join(x["instruction"].lower().split()) for x in cs.train}


def test_missing_training_set_names_the_file_and_the_substitute(test_data):
    with pytest.raises(HarnessError) as err:
        build(MATH_CFG).load({"dir": str(test_data), "order": ["local"]})
    message = str(err.value)
    assert "\n" not in message and "no data for llm_adapters_math training set math_10k" in message
    assert str(test_data / "llm_adapters" / "ft-training_set" / "math_10k.json") in message
    assert "task.train_pool=gsm8k_train" in message and "raw.githubusercontent.com" in message


def test_missing_eval_set_says_how_to_leave_it_out(test_data):
    with pytest.raises(HarnessError) as err:
        build({**CS_CFG, "train_pool": "train_splits"}).load({"dir": str(test_data), "order": ["local"]})
    assert "eval set hellaswag" in str(err.value) and "task.datasets=[boolq,piqa,siqa,winogrande" in str(err.value)


def test_loglik_scoring_refuses_sets_without_option_texts(test_data, tiny_model):
    from harness.tasks.base import EvalContext

    task = build({**CS_CFG, "datasets": ["boolq"], "n_eval": 2, "train_pool": None, "scoring": "loglik"})
    data = task.load({"dir": str(test_data), "order": ["local"]})
    loaded = tiny_model()
    with pytest.raises(HarnessError, match="needs option texts"):
        task.evaluate(EvalContext(loaded.model, loaded.tokenizer, __import__("torch").device("cpu"), 256), data)


SUITE_RUNS = {  # suite: (its datasets here, overrides)
    "llm_adapters_math": (MATH_CFG["datasets"], ["task.train_pool=gsm8k_train", "task.max_new_tokens=6"]),
    "llm_adapters_commonsense": (PRESENT_CS, ["task.train_pool=train_splits", f"task.datasets=[{','.join(PRESENT_CS)}]",
                                              "task.max_new_tokens=4"]),
}


@pytest.fixture(scope="module")
def suite_runs(tmp_path_factory, test_data):
    """Both suites through the real CLI, side by side (each process spends most of its time importing)."""
    common = ["model=tiny-random-llama", "budget=smoke", "task.n_eval=2", "task.train_limit=64", "data.order=[local]", "forgetting.probes=[]"]
    with ThreadPoolExecutor(2) as pool:
        futures = {
            suite: pool.submit(run_cli, [*common, f"task={suite}", *overrides], tmp_path_factory.mktemp(suite),
                               {"HARNESS_DATA_DIR": str(test_data)})
            for suite, (_, overrides) in SUITE_RUNS.items()
        }
        return {suite: f.result() for suite, f in futures.items()}


@pytest.mark.parametrize("suite", sorted(SUITE_RUNS))
def test_suite_trains_once_and_writes_a_row_per_dataset(suite_runs, suite):
    proc = suite_runs[suite]
    assert proc.returncode == 0, proc.stderr[-3000:]
    store = ResultStore(proc.args[3].split("=", 1)[1])
    runs, metrics, _ = store.read()
    assert len(runs) == 1 and runs["status"].iloc[0] == "finished" and runs["train_steps"].iloc[0] == 3
    name = runs["task"].iloc[0]
    assert name.startswith(f"{suite}~")  # a substitute pool: never filed as the published protocol
    final = metrics[metrics["step"].isna()].set_index(["task", "metric"])
    datasets = SUITE_RUNS[suite][0]
    for d in datasets:
        row = final.loc[(d, "accuracy")]
        assert row["n"] == 2 and 0 <= row["value"] <= 1 and row["metric_version"].startswith("llm_adapters/")
        gain = final.loc[(d, "gain_accuracy")]  # learning: tuned - base on the same two items
        assert -1 <= gain["value"] <= 1 and gain["metric_version"] == "gain/v1+" + row["metric_version"]
    avg = final.loc[(name, "accuracy_avg")]
    assert abs(avg["value"] - sum(final.loc[(d, "accuracy"), "value"] for d in datasets) / len(datasets)) < 1e-12
    assert avg["n"] == 2 * len(datasets)
    samples = store.read_samples()
    assert sorted(samples["task"].unique()) == sorted(datasets) and len(samples) == 2 * len(datasets)
    assert samples["item_id"].str.match(r"^[a-z_0-9]+/\d+$").all()
    config = json.loads(runs["config_json"].iloc[0])["task"]
    assert config["prompt_version"] == "v1" and config["chat_template"] is False and config["n_eval"] == 2
    assert json.loads(runs["data_json"].iloc[0])["n_eval"] == {d: 2 for d in datasets}
    assert "learning:" in proc.stdout


def test_cli_without_the_training_set_is_a_one_line_error_and_no_rows(tmp_path, test_data):
    proc = run_cli(["model=tiny-random-llama", "budget=smoke", "task=llm_adapters_math", "data.order=[local]"],
                   tmp_path, {"HARNESS_DATA_DIR": str(test_data)})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no data for llm_adapters_math training set math_10k")
    assert "math_10k.json" in lines[0] and "task.train_pool=gsm8k_train" in lines[0]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "metrics").exists()
