"""The parameter-budget solver on tiny-random-llama: its choices and counts against hand-written
formulas of each method's trainable count, rejections with reasons, and the CLI's behaviour."""

from __future__ import annotations

import pytest
import yaml

import methods
from harness.budget import param_budget
from harness.budget.spec import Budget
from harness.core.errors import HarnessError
from harness.core.paths import CONF_DIR
from harness.store.result_store import ResultStore
from tests.conftest import run_cli

MODEL_CFG = yaml.safe_load((CONF_DIR / "model" / "tiny-random-llama.yaml").read_text())


@pytest.fixture(scope="module")
def shapes(tiny_model):
    """Sizes read from the model's config (not from the solver's code path)."""
    cfg = tiny_model().model.config
    h, i, n_layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    kv = cfg.num_key_value_heads * (h // cfg.num_attention_heads)
    linears = {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
               "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}  # (in, out)
    layer = sum(a * b for a, b in linears.values()) + 2 * h  # + input and post-attention RMSNorm
    total = cfg.vocab_size * h + n_layers * layer + h  # tied embeddings/head + final norm
    return {"h": h, "i": i, "kv": kv, "L": n_layers, "linears": linears, "layer": layer, "total": total}


def _formulas(s):
    """method -> (knob values, trainable count as a function of the knob), by hand."""
    L, lin = s["L"], s["linears"]
    lora = lambda r: L * sum(r * (a + b) for a, b in lin.values())
    return {
        "lora": (range(1, s["h"] + 1), lora),
        "dora": (range(1, s["h"] + 1), lambda r: lora(r) + L * sum(b for _, b in lin.values())),
        "vera": (range(1, 4097), lambda r: L * sum(b + r for _, b in lin.values())),
        "prompt_tuning": (range(1, 1025), lambda n: n * s["h"]),
        "series_adapter": (range(1, s["h"] + 1), lambda m: L * 2 * m * (lin["o_proj"][1] + lin["down_proj"][1])),
        "lisa": (range(1, L + 1), lambda n: s["total"] - L * s["layer"] + n * s["layer"]),
    }


def _expected(values, formula, target):
    best = min(values, key=lambda v: (abs(formula(v) - target), v))
    return best, formula(best)


@pytest.mark.parametrize("name,target", [
    ("lora", 5_000), ("lora", 20_000), ("dora", 9_000), ("dora", 40_000), ("vera", 1_500), ("vera", 30_000),
    ("prompt_tuning", 3_000), ("series_adapter", 7_000), ("lisa", 3_200_000),
])
def test_solver_matches_hand_computed_counts(shapes, name, target):
    values, formula = _formulas(shapes)[name]
    value, count = _expected(values, formula, target)
    solution = param_budget.solve({"name": name}, MODEL_CFG, CONF_DIR, target, 0.05, seed=0)
    assert (solution.knob, solution.value, solution.achieved) == (methods.get(name).size_knob.option, value, count)
    assert solution.feasible == (abs(count - target) <= 0.05 * target)


def test_fixed_count_method_is_feasible_only_near_its_count(shapes):
    ia3 = shapes["L"] * (2 * shapes["kv"] + shapes["i"])  # k and v outputs, down_proj's input
    near = param_budget.solve({"name": "ia3"}, MODEL_CFG, CONF_DIR, ia3 + 10, 0.05, seed=0)
    assert near.feasible and near.achieved == ia3 and near.knob is None
    far = param_budget.solve({"name": "ia3"}, MODEL_CFG, CONF_DIR, 10 * ia3, 0.05, seed=0)
    assert not far.feasible and f"fixed count of {ia3:,} trainable params" in far.reason


def test_target_below_the_smallest_size_is_rejected_with_the_minimum(shapes):
    solution = param_budget.solve({"name": "lisa"}, MODEL_CFG, CONF_DIR, 10_000, 0.05, seed=0)
    smallest = shapes["total"] - (shapes["L"] - 1) * shapes["layer"]
    assert not solution.feasible
    assert f"smallest size (n_layers=1) already trains {smallest:,} params" in solution.reason


def test_non_monotone_knob_is_scanned_to_the_true_nearest():
    counts = {r: param_budget.Counter(MODEL_CFG, CONF_DIR, 0)({"name": "lokr", "r": r}) for r in range(1, 65)}
    target = 1_900
    best = min(counts, key=lambda r: (abs(counts[r] - target), r))
    solution = param_budget.solve({"name": "lokr"}, MODEL_CFG, CONF_DIR, target, 0.05, seed=0)
    assert (solution.value, solution.achieved) == (best, counts[best])


def test_values_the_method_rejects_bound_the_search():
    # SORSA's rank cannot exceed the smallest targeted layer (k_proj: 32 outputs): a huge target
    # ends at the largest valid rank, reported as infeasible, not as a crash.
    solution = param_budget.solve({"name": "sorsa"}, MODEL_CFG, CONF_DIR, 10_000_000, 0.05, seed=0)
    assert solution.value == 32 and not solution.feasible and "r=32" in solution.reason


def test_percent_target_resolves_against_the_base_model(shapes):
    assert param_budget.resolve_target(None, 0.25, MODEL_CFG, CONF_DIR) == round(shapes["total"] * 0.25 / 100)
    assert param_budget.resolve_target(1234, None, MODEL_CFG, CONF_DIR) == 1234
    assert param_budget.resolve_target(None, None, MODEL_CFG, CONF_DIR) is None


@pytest.mark.parametrize("kwargs,needle", [
    ({"target_params": 0}, "target_params=0 is impossible"),
    ({"target_params_pct": 150}, "must be in (0, 100]"),
    ({"target_params": 10, "target_params_pct": 1.0}, "keep one of them"),
    ({"target_params": 10, "param_tolerance": 0}, "param_tolerance=0 is invalid"),
])
def test_invalid_parameter_budgets(kwargs, needle):
    with pytest.raises(HarnessError, match=needle.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
        Budget("x", max_steps=1, **kwargs).validate()


@pytest.mark.parametrize("overrides,needle", [
    (["method=dora", "budget=params_0.25pct"], "method dora: no r in [1, 64] lands within 5%"),
    (["method=lisa", "budget=params_0.25pct"], "method lisa's smallest size (n_layers=1) already trains"),
    (["method=lora", "budget=time10min", "budget.max_time_s=0.001"], "is shorter than one optimizer step of lora"),
])
def test_preflight_rejects_infeasible_jobs_with_the_reason(test_data, monkeypatch, overrides, needle):
    from harness.cli import preflight

    monkeypatch.setenv("HARNESS_DATA_DIR", str(test_data))
    with pytest.raises(HarnessError, match="infeasible|shorter") as info:
        preflight.check(["model=tiny-random-llama", *overrides])
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_infeasible_job_of_a_sweep_is_one_line_error_without_rows(tmp_path, test_data):
    proc = run_cli(["+sweep=param_matched", "method=lora,ia3"], tmp_path, {"HARNESS_DATA_DIR": str(test_data)})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: budget 'params_0.125pct' is infeasible"), proc.stderr
    assert "method ia3 has a fixed count of 384 trainable params" in lines[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_param_matched_sweep_lands_every_run_within_5_percent(tmp_path, test_data):
    proc = run_cli(["+sweep=param_matched", "+launcher=local_parallel"], tmp_path, {"HARNESS_DATA_DIR": str(test_data)},
                   timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs, metrics, _ = ResultStore(tmp_path).read()
    assert len(runs) == 14 and set(runs["status"]) == {"finished"}
    assert len({methods.get(m).family for m in runs["method"]}) >= 6 and runs["method"].nunique() == 7
    assert runs["budget"].nunique() == 2 and runs["target_params"].nunique() == 2
    error = (runs["trainable_params"] - runs["target_params"]).abs() / runs["target_params"]
    assert (error <= 0.05).all(), runs[["method", "budget", "target_params", "trainable_params"]]
    for _, run in runs.iterrows():
        knob = methods.get(run["method"]).size_knob.option
        assert run["param_knob"] == knob and yaml.safe_load(run["config_json"])["method"][knob] == run["param_knob_value"]
    cost = metrics[metrics["task"] == "cost"]
    for run_id in runs["run_id"]:
        names = set(cost.loc[cost["run_id"] == run_id, "metric"])
        assert {"train_flops", "flops_per_step", "mem_weights_bytes", "mem_optimizer_bytes", "mem_activations_bytes",
                "latency_ms_per_token_unmerged", "prompt_extra_tokens"} <= names
