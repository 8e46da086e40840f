"""Options that match a reproduced source (docs/protocols.md): the loss on the prompt
(`train.loss_on_prompt`), a warm-up as a step count (`train.warmup_steps`) with a linear decay
(`train.lr_schedule`), the training text's own template (`task.train_prompt_template`), and the run
ids of configurations that leave them at their defaults."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf

from harness import tasks
from harness.cli import preflight
from harness.config.identity import experiment_of
from harness.config.run_config import RunConfig
from harness.core.errors import HarnessError
from harness.run.fit import _training_set
from harness.run.prepare import prepare
from harness.train.encoding import IGNORE, collate, encode_joint, encode_pairs
from harness.train.loop import StepOptions

TINY = ["model=tiny-random-llama", "budget=smoke", "forgetting.probes=[]", "forgetting.target_gain=false"]


def _compose(*overrides: str):
    cfg = preflight._compose(list(overrides))
    OmegaConf.resolve(cfg)
    return cfg


def _prepared(test_data, tmp_path, *overrides: str):
    return prepare(_compose(*TINY, f"data.dir={test_data}", "data.order=[local]", f"results_dir={tmp_path}", *overrides))


# --- train.loss_on_prompt --------------------------------------------------------------------------

def test_loss_on_prompt_labels_every_token_the_prompt_too(tiny_model, test_data, tmp_path):
    loaded = tiny_model()
    masked, _ = _training_set(_prepared(test_data, tmp_path), loaded)
    whole, _ = _training_set(_prepared(test_data, tmp_path, "train.loss_on_prompt=true"), loaded)  # same cache folder
    assert len(masked) == len(whole) > 100
    prompts = []
    for (ids, labels), (ids_on, labels_on) in zip(masked, whole):
        assert ids_on == ids and labels_on == ids  # every position is a label, the prompt's too
        prompts.append(sum(label == IGNORE for label in labels))  # what the default masks: the prompt
        assert labels[:prompts[-1]] == [IGNORE] * prompts[-1] and labels[prompts[-1]:] == ids[prompts[-1]:]
    assert sum(n > 5 for n in prompts) > 0.9 * len(prompts)  # (a target that fills max_seq_len leaves no prompt)
    # the training loss reaches the prompt: its gradient at the prompt's positions (each predicting
    # the next prompt token) is zero by default and not with the option
    first = prompts[0]
    assert first > 5
    for encoded, reaches in ((masked, False), (whole, True)):
        out = loaded.model(**collate(encoded[:1], loaded.tokenizer.pad_token_id))
        grad = torch.autograd.grad(out.loss, out.logits)[0][0]
        assert bool(grad[: first - 1].abs().sum() > 0) is reaches
        assert grad[first:].abs().sum() > 0  # the target's positions train either way


def test_loss_on_prompt_still_cuts_the_prompt_first(tiny_model):
    tok = tiny_model().tokenizer
    [(ids, labels)] = encode_pairs(tok, [("a long prompt " * 20, " the target")], 12, loss_on_prompt=True)
    target = tok(" the target", add_special_tokens=False)["input_ids"]
    assert len(ids) == 12 and ids[-len(target):] == target and labels == ids


# --- train.encoding ---------------------------------------------------------------------------------

def test_joint_encoding_is_one_text_cut_from_the_right_with_eos_when_shorter(tiny_model):
    tok = tiny_model().tokenizer
    prompt, target = "Below is an instruction.\n### Response:\n", "The answer is 7"
    [(ids, labels)] = encode_joint(tok, [(prompt, target)], 256)
    full = tok(prompt + target, add_special_tokens=True)["input_ids"]
    n_prompt = len(tok(prompt, add_special_tokens=True)["input_ids"])
    assert ids == full + [tok.eos_token_id]  # one text, EOS appended (it is shorter than 256)
    assert labels == [IGNORE] * n_prompt + ids[n_prompt:]
    [(cut, cut_labels)] = encode_joint(tok, [(prompt * 30, target)], 16, loss_on_prompt=True)
    assert cut == tok(prompt * 30 + target, add_special_tokens=True)["input_ids"][:16] and cut_labels == cut  # no EOS
    [(_, masked)] = encode_joint(tok, [(prompt * 30, target)], 16)
    assert masked == [IGNORE] * 16  # the prompt fills the cut: nothing left to learn, as in alpaca-lora


def test_joint_encoding_reaches_the_training_set(tiny_model, test_data, tmp_path):
    loaded = tiny_model()
    separate, _ = _training_set(_prepared(test_data, tmp_path), loaded)
    joint, _ = _training_set(_prepared(test_data, tmp_path, "train.encoding=joint"), loaded)  # same cache folder
    assert len(joint) == len(separate) and joint != separate
    assert all(len(ids) <= 256 for ids, _ in joint) and all(ids[-1] == loaded.tokenizer.eos_token_id for ids, _ in joint
                                                            if len(ids) < 256)


# --- train.warmup_steps and train.lr_schedule --------------------------------------------------------

def test_warmup_steps_then_linear_decay_as_the_hf_trainer(lora_steps):
    _, seen = lora_steps(StepOptions(1, 0.5, 1.0, "fp32", warmup_steps=3, lr_schedule="linear"), 8)
    # the lr after step k: k/3 of the peak during warm-up (warmup_ratio ignored), then (8 - k)/5 of it
    assert seen == pytest.approx([1e-3 * f for f in (1 / 3, 2 / 3, 1, 4 / 5, 3 / 5, 2 / 5, 1 / 5, 0)])


def test_without_warmup_steps_the_ratio_and_cosine_schedule_are_unchanged(lora_steps):
    _, seen = lora_steps(StepOptions(1, 0.25, 1.0, "fp32"), 8)  # the loop's defaults: 2 warm-up steps, cosine
    assert seen[:2] == pytest.approx([5e-4, 1e-3])
    assert seen[2:] == pytest.approx([1e-3 * 0.5 * (1 + math.cos(math.pi * k / 6)) for k in range(1, 7)])


def test_the_run_config_reaches_the_loop():
    config = OmegaConf.to_container(_compose(*TINY, "train.warmup_steps=100", "train.lr_schedule=linear"), resolve=True)
    options = StepOptions.of(RunConfig.of(config).train)
    assert (options.warmup_steps, options.lr_schedule) == (100, "linear")
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = options.scheduler(optimizer, 1000)
    for _ in range(100):
        optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr()[0] == pytest.approx(1.0)  # the peak exactly at step 100
    for bad, allowed in (("train.lr_schedule=step", "one of cosine, linear"), ("train.warmup_steps=-1", "an integer >= 0")):
        with pytest.raises(HarnessError, match=f"is invalid: it must be {allowed}"):
            RunConfig.of(OmegaConf.to_container(_compose(*TINY, bad), resolve=True))


# --- task.train_prompt_template --------------------------------------------------------------------

def test_a_literal_training_template_keeps_its_whitespace_and_the_eval_prompt_its_own():
    literal = "Below is a task.  \n\n                ### Instruction:\n                {instruction}\n                \n                ### Response:\n                "
    cfg = OmegaConf.to_container(_compose("task=llm_adapters_math").task, resolve=True)
    task = tasks.build({**cfg, "train_prompt_template": literal})
    item = {"instruction": "Add 2 and 3.", "output": "5"}
    assert task.training_pair(item) == (literal.format(instruction="Add 2 and 3."), "5")
    assert task.prompt(item).startswith("Below is an instruction that describes a task.")  # eval prompt unchanged
    plain = tasks.build(OmegaConf.to_container(_compose("task=llm_adapters_math").task, resolve=True))
    assert plain.training_pair(item) == (plain.prompt(item), "5")


def test_gsm8k_training_text_is_the_template_then_the_answer_without_a_separator():
    template = "Question: {question} Think step by step.\nAnswer:"
    task = tasks.build({**OmegaConf.to_container(_compose().task, resolve=True), "train_prompt_template": template})
    item = {"question": "What is 2+2?", "answer": "2+2=4\n#### 4"}
    assert task.training_pair(item) == ("Question: What is 2+2? Think step by step.\nAnswer:", "2+2=4\n#### 4")
    plain = tasks.build(OmegaConf.to_container(_compose().task, resolve=True))
    assert plain.training_pair(item) == ("Question: What is 2+2?\nAnswer:", " 2+2=4\n#### 4")


# --- run ids -----------------------------------------------------------------------------------------

PISSA_SMOKE = ["model=tiny-random-llama", "method=pissa", "budget=smoke"]  # tests/unit/config/test_run_ids.py pins it
PINNED = "1ff1b42ce6fcfa5d"


def test_the_new_options_at_their_defaults_keep_run_ids_and_change_them_when_set(test_data):
    data = [f"data.dir={test_data}", "data.order=[local]"]

    def run_id(*overrides):
        return prepare(_compose(*PISSA_SMOKE, *data, *overrides)).run_id

    assert run_id("train.loss_on_prompt=false", "train.warmup_steps=null", "train.lr_schedule=cosine",
                  "train.select_best=false", "model.load_in_8bit=false", "task.train_prompt_template=null",
                  "train.encoding=separate", "task.num_beams=1") == PINNED
    changed = {run_id(o) for o in ("train.loss_on_prompt=true", "train.warmup_steps=5", "train.lr_schedule=linear",
                                   "task.train_prompt_template='Q: {question} A:'", "train.encoding=joint",
                                   "task.num_beams=4")}
    changed.add(run_id("train.eval_every=2", "train.val_items=8", "train.select_best=true"))
    assert len(changed) == 7 and PINNED not in changed
    config = OmegaConf.to_container(_compose(*PISSA_SMOKE, "model.load_in_8bit=true"), resolve=True)
    config["model"]["dtype"] = "fp32"  # as prepare resolves `auto` on a CPU
    assert experiment_of(config)["model"]["load_in_8bit"] is True  # refused on CPU, so checked in the identity
