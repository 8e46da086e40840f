"""The first phase of a run: validate everything it needs, decide its plan, compute its identity.

`prepare` is cheap (no model loads; a time budget times two steps on a copy): the preflight calls
it for every job of a sweep before the first starts, and the job calls it again to run. Its
`Prepared` carries the typed config with the plan applied (harness/config/run_config.py,
harness/run/plan.py), the resolved config the run records, and what the later phases need.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from omegaconf import OmegaConf

import methods
from harness import tasks
from harness.budget import param_budget
from harness.budget.spec import Budget
from harness.budget.step_time import check_time_budget
from harness.config.identity import experiment_of, run_id
from harness.config.run_config import RunConfig
from harness.core.errors import HarnessError
from harness.core.memo import memoized
from harness.core.paths import CONF_DIR
from harness.distributed.parallel import evaluation_world, resolve_strategy
from harness.distributed.world import World
from harness.models import encoder_rules, size
from harness.models.loading import ENCODER, check_8bit, check_available
from harness.models.precision import Precision, resolve_dtype, slower_half_notice
from harness.probes.composite import Probes, build_probes
from harness.run import lr_search
from harness.run.calibration import GeneralText, load_general_text
from harness.run.heldout import carve, check_select_best
from harness.run.plan import RunPlan
from harness.tasks.base import TaskData
from harness.train import activation_checkpointing
from harness.train.batching import check_packing
from harness.train.loop import check_loss_scaling


@dataclass
class Prepared:
    """A run whose config is validated and whose identity is known, before anything heavy."""

    run: RunConfig  # typed, with the plan applied: what every phase reads
    config: dict  # the same, plain: recorded as config_json; the experiment identity comes from it
    plan: RunPlan  # what prepare decided (dtype, strategy, encoder head, parameter-budget knob)
    method: methods._core.base.Method
    budget: Budget
    task: tasks.Task
    data: TaskData
    experiment: dict
    run_id: str
    precision: Precision  # the base weights' dtype and the autocast of every forward pass
    world: World  # the processes sharing this run (torchrun / accelerate launch); one for a plain launch
    eval_world: World  # the ranks that share the evaluation's items (harness/distributed/parallel.py)
    params: param_budget.ParamSolution | None = None  # the parameter budget's solution, if it has one
    probes: Probes | None = None  # forgetting probes and target gain, their data loaded (a miss is a HarnessError here)
    validation: list[dict] = field(default_factory=list)  # items carved from the training pool (harness/run/heldout.py)
    calibration_text: GeneralText | None = None  # when the method calibrates on general text

    def data_identity(self) -> dict:
        return data_identity(self.data, self.calibration_text)


def data_identity(data: TaskData, calibration_text: GeneralText | None) -> dict:
    """The task data's identity, plus the calibration text's when the method reads one: both are in
    the run id and the run's data_json."""
    return data.identity if calibration_text is None else {**data.identity, "calibration": calibration_text.identity}


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def prepare(cfg: Mapping[str, Any]) -> Prepared:
    """Validate everything a run needs (raises HarnessError) and compute its run id. `cfg`: the
    composed config (a DictConfig, or the plain dict of one); it is never written to."""
    composed = copy.deepcopy(OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg))
    run = RunConfig.of(composed)  # types and ranges first: nothing below sees a bad value
    method_class = methods.get(str(run.method.get("name")))
    budget = Budget.from_config(run.budget)
    memoized("model_available", dataclasses.asdict(run.model), lambda: check_available(run.model, CONF_DIR))  # once per preflight
    device = pick_device(run.device)
    check_8bit(run.model, device, run.eval.merge_adapters)  # model.load_in_8bit: CUDA and bitsandbytes, else one line
    plan = RunPlan()
    plan.decide("model.dtype", resolve_dtype(run.model.dtype, device))  # `auto` resolved once, for every phase
    precision = Precision.of(plan.changes["model.dtype"], device, run.train.precision)  # HarnessError if they contradict
    slower_half_notice(precision, device)
    world = World.from_env()
    if run.train.world_size != world.size:
        raise HarnessError(f"train.world_size={run.train.world_size} but this process is one of {world.size} "
                           f"(WORLD_SIZE={world.size}); leave train.world_size alone: the launcher sets it")
    task = tasks.build(run.task)
    if run.model.model_kind == ENCODER:  # before any model loads: it sizes the head
        task, changes = encoder_rules.adapt(run, task, method_class)
        plan.decide_all(changes)
    params = param_budget.match(run.method, plan.applied(composed)["model"], budget, CONF_DIR, run.train.init_seed)
    if params is not None and params.knob is not None:  # HarnessError above if infeasible
        plan.decide(f"method.{params.knob}", params.value)
    method = methods.build(plan.applied(composed)["method"])
    if run.train.gradient_checkpointing and (refused := activation_checkpointing.refusal(method)):
        raise refused
    too_large = None
    if world.distributed and run.train.strategy == "auto":  # a base too large for one device is sharded
        too_large = size.too_large_for_one_device(run.model, plan.changes["model.dtype"], device, world.local_rank,
                                                      CONF_DIR)
    plan.decide("train.strategy", resolve_strategy(run.train.strategy, method, world, too_large))  # `none` for one process
    check_packing(run.train.packing, method, run.model.model_kind, run.model.name)
    config = plan.applied(composed)
    run = RunConfig.of(config)
    if method.trains:
        check_time_budget(run.method, config["model"], run.train, budget, CONF_DIR, device)  # HarnessError if no step fits
    data_cfg, task_key = dataclasses.asdict(run.data), [type(task).__qualname__, task.cfg.as_dict()]
    data = memoized("task_data", [task_key, data_cfg], lambda: task.load(data_cfg))  # harness/core/memo.py
    if method.trains and not data.train:
        raise HarnessError(f"task {data.name} has no training items (an evaluation-only task) and method {method.name} "
                           "trains; evaluate it with method=base, or in forgetting.general_suite")
    validation: list[dict] = []
    if run.train.lr_sweep and not method.trains:
        raise HarnessError(f"train.lr_sweep searches a learning rate, and method {method.name} does not train; "
                           "drop train.lr_sweep for it")
    check_select_best(run.train, method)
    check_loss_scaling(run.train.loss_scaling, precision, run.train.strategy)
    if run.train.needs_validation:
        n_val = run.train.val_items
        data, validation = memoized("carve", [data.identity, n_val], lambda: carve(data, n_val))
        lr_search.grid(method.config.lr, run.train.lr_sweep)  # HarnessError for a bad grid
    probe_args = (run.forgetting, data_cfg, Path(run.results_dir) / "cache" / "forgetting", CONF_DIR, task, data,
                  run.train.max_seq_len)
    probes = memoized("probes", [dataclasses.asdict(run.forgetting), *probe_args[1:4], task_key, data.identity, probe_args[6]],
                      lambda: build_probes(*probe_args))
    calibration_text = None
    if method.needs_calibration and method.calibration_data() == "general_text":
        text_cfg = run.forgetting.general_text
        calibration_text = memoized("general_text", [dataclasses.asdict(text_cfg), data_cfg],
                                    lambda: load_general_text(text_cfg, data_cfg))
    experiment = experiment_of(config)
    return Prepared(run, config, plan, method, budget, task, data, experiment,
                    run_id(experiment, data_identity(data, calibration_text)), precision, world,
                    evaluation_world(world, run.train.strategy, run.eval.shard_over_ranks), params, probes,
                    validation, calibration_text)
