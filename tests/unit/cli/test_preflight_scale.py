"""The preflight at scale (issue 18): one Hydra composition per distinct set of group choices, the
resolution skipped where it is exact, task data and probes loaded once per preflight; every job
still gets Hydra's config, its own run id and every check, and a rerun of a finished sweep
launches nothing."""

from __future__ import annotations

import pytest
from hydra.errors import HydraException
from omegaconf import OmegaConf

from hydra.core.override_parser.overrides_parser import OverridesParser

from harness.cli import preflight, skip_done
from harness.cli.config_template import Template
from harness.cli.job_configs import JobComposer
from harness.core.errors import HarnessError
from harness.core.memo import memoized, preflight_scope
from harness.run import prepare as preparing
from harness.store.result_store import ResultStore

TINY = ["+sweep=smoke", "task.n_eval=2", "forgetting.probes=[kl_drift]", "forgetting.target_gain=false"]
# Value overrides of every kind next to group choices: each must give exactly Hydra's config.
CASES = [
    ["+sweep=smoke", "method=lora", "seed=3"],
    ["+sweep=smoke", "seed=4", "method=lora"],  # order of group and value overrides
    ["+sweep=smoke", "method=lora", "seed=5", "train.data_seed=7"],  # a reference overridden itself
    ["+sweep=smoke", "method=pissa", "seed=abc", "train.lr=null", "eval.log_samples=false", "device=cpu"],
    ["model=tiny-random-llama", "method=sorsa", "method.r=2"],  # a fit file under the method
    ["task=glue_sst2", "model=all-minilm-l6-v2", "train.lr=0.001"],
    ["forgetting.probes=[kl_drift]", "task={n_eval: 3}"],  # a list, and a dict merged into a group
    ["+sweep=lora_vs_pissa", "method=pissa", "seed=1", "++bar.baz=2", "+qux=1"],  # additions
    ["task=mmlu", "task.subjects=[anatomy,virology]", "train.lr=1e-4"],
    ["~forgetting.kl_drift", "seed=2"],  # a deletion
]


@pytest.fixture
def tiny(test_data) -> list[str]:
    return [*TINY, f"data.dir={test_data}", "data.order=[local]"]


def _parsed(*lines: str):
    return OverridesParser.create().parse_overrides(list(lines))


def _hydra(overrides: list[str]):
    cfg = preflight._compose(overrides)
    OmegaConf.resolve(cfg)
    return cfg


def test_every_kind_of_job_gets_exactly_hydras_config():
    composer = JobComposer(preflight._compose)
    for overrides in CASES:
        job, expected = composer.resolved(overrides), _hydra(overrides)
        assert OmegaConf.to_yaml(job.config) == OmegaConf.to_yaml(expected), overrides
        assert OmegaConf.is_struct(job.config) and repr(job.plain) == repr(OmegaConf.to_container(expected)), overrides
    assert composer.shortcuts >= 4  # the plain value changes took the shortcut (checked against Hydra first)


@pytest.mark.parametrize("overrides", [["~seed"], ["foo=1"], ["+seed=1"], ["method=nope"]])
def test_a_bad_job_fails_as_hydra_fails(overrides):
    with pytest.raises(Exception) as expected:
        _hydra(overrides)
    with pytest.raises(type(expected.value)) as got:
        JobComposer(preflight._compose).resolved(overrides)
    assert str(got.value) == str(expected.value)


def test_jobs_that_differ_in_the_seed_share_one_composition_and_keep_their_run_ids(tiny, monkeypatch):
    calls = []
    compose = preflight._compose
    monkeypatch.setattr(preflight, "_compose", lambda o, with_hydra=False: calls.append(o) or compose(o, with_hydra))
    sweep = [*tiny, "seed=0,1,2,3,4,5", "method=lora,pissa"]
    jobs = preflight.plan(sweep)
    assert len(jobs) == 12 and len(calls) == 1 + 2  # expand_jobs' own, then one per method
    before = []
    for job in preflight.expand_jobs(sweep):  # the path before issue 18: Hydra and prepare for each job
        cfg = compose([o for o in job if not o.startswith("hydra.")])
        OmegaConf.resolve(cfg)
        before.append(preparing.prepare(cfg).run_id)
    assert [j.run_id for j in jobs] == before and len(set(before)) == 12


def test_the_pinned_demo_sweep_keeps_its_run_ids(test_data):
    from tests.unit.config.test_run_ids import SWEEP

    jobs = preflight.plan(["+sweep=lora_vs_pissa", f"data.dir={test_data}", "data.order=[local]"])
    assert sorted(j.run_id for j in jobs) == sorted(SWEEP.values())


def test_one_bad_job_of_many_is_named(tiny):
    seeds = ",".join([*map(str, range(39)), "abc"])  # the 40th seed of each method is bad
    with pytest.raises(HarnessError, match=r"^seed='abc' is invalid: it must be an integer >= 0$"):
        preflight.check([*tiny, f"seed={seeds}", "method=lora,pissa"])
    with pytest.raises(HydraException, match="Could not override 'method.r'"):  # ia3 has no rank: the 21st job
        preflight.check([*tiny, "seed=range(0,20)", "method=lora,ia3", "method.r=4"])


def test_task_data_and_probes_load_once_per_preflight(tiny, monkeypatch):
    loads = []
    build = preparing.build_probes
    monkeypatch.setattr(preparing, "build_probes", lambda *a: loads.append(a) or build(*a))
    preflight.plan([*tiny, "seed=range(0,8)", "method=lora"])
    assert len(loads) == 1
    with preflight_scope():
        assert memoized("k", {"a": 1}, lambda: [1]) is memoized("k", {"a": 1}, lambda: [2])
    assert memoized("k", {"a": 1}, lambda: [3]) == [3]  # outside a preflight nothing is kept


def test_references_to_changed_options_are_repointed_and_the_rest_falls_back():
    template = Template(OmegaConf.create({"seed": 0, "a": {"b": 1, "c": "${seed}"}, "d": "${a}", "e": "${a.c}",
                                          "f": [1, "${seed}"], "g": "${oc.env:HOME,x}"}))
    assert template.usable and template.references == {"a.c": "seed", "d": "a", "e": "a.c", "f[1]": "seed"}

    assert template.plan(_parsed("a.b=2")) is None  # `d` references the dict holding it
    assert template.plan(_parsed("seed=1")) is None  # `f[1]` lives in a list
    for line in ("+a.x=1", "a.b=${seed}", "a.b=???", "a={b: 2}"):  # an addition, an interpolation, MISSING, a dict
        assert template.plan(_parsed(line)) is None, line
    chain = Template(OmegaConf.create({"s": 0, "t": "${s}", "u": "${t}", "v": 1}))
    assert chain.plan(_parsed("s=1")) == (("t", "s"), ("u", "t")) and chain.plan(_parsed("v=2", "s=3")) == (("t", "s"), ("u", "t"))
    assert not Template(OmegaConf.create({"s": 0, "t": "x${s}"})).usable  # not a plain reference


def test_a_rerun_of_a_finished_sweep_launches_nothing(tmp_path, tiny, capsys):
    overrides = [*tiny, "seed=0,1,2", "method=lora", f"results_dir={tmp_path}"]
    jobs = preflight.plan(overrides)
    assert not skip_done.all_finished(jobs)
    store = ResultStore(tmp_path)
    for job in jobs[:2]:
        store.write({"run_id": job.run_id, "status": "finished"})
    assert not skip_done.all_finished(jobs)
    store.write({"run_id": jobs[2].run_id, "status": "finished"})
    assert skip_done.all_finished(jobs) and not skip_done.all_finished(jobs[:1])  # a single run is launched
    assert not skip_done.all_finished(preflight.plan([*overrides, "force=true"]))
    skip_done.report_all_finished(jobs)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"[sweep 1/3 skip] {jobs[0].label}: run {jobs[0].run_id} already finished (force=true reruns it)"
    assert len(lines) == 4 and "all 3 runs already finished" in lines[3] and "nothing to launch" in lines[3]
