"""Our calls into transformers, PEFT and torch raise no FutureWarning or DeprecationWarning.

A deprecation caused by how the harness calls a library (a renamed argument, an old output field)
fails here while the library still accepts the old name, long before it is removed. Warnings a
library raises for its own reasons (PEFT reading a deprecated transformers property) are not ours.

Python keeps only the frame a warning blames (its `stacklevel`), and a library that deprecates an
argument of `forward` blames whoever called `forward`: torch's `Module.__call__`, or a PEFT wrapper
that passed our keyword arguments on. A warnings filter on the module therefore never sees our code.
So every warning's whole stack is captured while it is raised, and its call site is the blamed frame
with those pass-through frames skipped; a warning is ours when that call site is in harness/ or methods/.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from traceback import FrameSummary, extract_stack
from typing import Iterator

import peft
import torch
import torch.nn.modules.module
import torch.utils._contextlib

import harness
import methods
from harness.scoring.generation import generate_answers
from harness.scoring.loglik import choice_log_likelihoods
from methods._core.base import BuildContext

OUR_PACKAGES = [Path(harness.__file__).parent, Path(methods.__file__).parent]
# Frames that only call on: nn.Module.__call__ (and its hooks) and decorators such as torch.no_grad.
CALL_MACHINERY = {torch.nn.modules.module.__file__, torch.utils._contextlib.__file__}
PEFT_DIR = Path(peft.__file__).parent  # PEFT's `forward` wrappers hand our arguments to the base model
CPU = torch.device("cpu")


@dataclass
class Raised:
    message: str
    category: type[Warning]
    filename: str  # where the warning points (its stacklevel)
    lineno: int
    stack: list[FrameSummary]  # outermost first, down to the `warnings.warn` call


@contextmanager
def deprecations_raised() -> Iterator[list[Raised]]:
    """Every FutureWarning and DeprecationWarning raised inside, each with the stack it was raised from."""
    raised: list[Raised] = []

    def record(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, (FutureWarning, DeprecationWarning)):
            raised.append(Raised(str(message), category, filename, lineno, extract_stack()[:-1]))

    with warnings.catch_warnings():  # restores the filters and showwarning on exit
        warnings.simplefilter("always")  # a warning already shown elsewhere (or once) still counts
        warnings.showwarning = record  # called synchronously from warnings.warn, so the stack is still live
        yield raised


def _passes_through(frame: FrameSummary) -> bool:
    return frame.filename in CALL_MACHINERY or (frame.name == "forward" and Path(frame.filename).is_relative_to(PEFT_DIR))


def call_site(raised: Raised) -> Path:
    """The file of the code whose call the warning is about: its blamed frame, seen through pass-through frames."""
    blamed = [i for i, f in enumerate(raised.stack) if (f.filename, f.lineno) == (raised.filename, raised.lineno)]
    if not blamed:
        return Path(raised.filename)
    i = blamed[-1]
    while i > 0 and _passes_through(raised.stack[i]):
        i -= 1
    return Path(raised.stack[i].filename)


def ours(raised: Raised) -> bool:
    site = call_site(raised)
    return any(site.is_relative_to(package) for package in OUR_PACKAGES)


def _with_lora(loaded):
    torch.manual_seed(0)
    return methods.build({"name": "lora"}).apply(loaded.model, BuildContext(loaded.tokenizer, loaded.tokenizer_path))


def _cache_arguments(model) -> list:
    """Records, per forward pass of `model`, the KV cache it was given (None when none)."""
    given: list = []
    model.register_forward_pre_hook(lambda module, args, kwargs: given.append(kwargs.get("cache")), with_kwargs=True)
    return given


def test_a_warning_about_our_arguments_is_traced_back_through_module_calls_and_peft(tiny_model):
    """A library complaining about the arguments its `forward` got blames torch's Module call; the
    call site found is still the code that called the (PEFT-wrapped) model: this file."""
    model = _with_lora(tiny_model())

    def complain(module, args, kwargs):  # as transformers' deprecate_kwarg does, blaming the caller
        warnings.warn("argument `x` is deprecated", FutureWarning, stacklevel=2)

    model.get_base_model().register_forward_pre_hook(complain, with_kwargs=True)
    with deprecations_raised() as raised, torch.no_grad():
        model(input_ids=torch.tensor([[1, 2, 3]]))
    complaints = [r for r in raised if r.message == "argument `x` is deprecated"]
    assert len(complaints) == 1
    assert complaints[0].filename == torch.nn.modules.module.__file__  # what a warnings filter would see
    assert call_site(complaints[0]) == Path(__file__).resolve()


def test_generation_and_loglik_raise_no_deprecation_from_our_calls(tiny_model):
    """Model loading, a LoRA build, our cached greedy decoder, PEFT's generate (prompt tuning) and the
    log-likelihood scorer with and without a shared-prefix cache, on tiny-random-llama."""
    prompts = ["Question: what is 2 + 3?\nAnswer:", "Hello", "1, 2, 3,"]
    shots = "The following are questions.\n\n" + "".join(f"Q: What is {i} + {i}?\nA: {2 * i}\n\n" for i in range(6))
    contexts = [shots + "Q: What is 7 + 7?\nA:", shots + "Q: 1?\nA:", "2 + 2 ="]
    choices = [[" 14", " fourteen"], [" 2", " one"], [" 4", " four"]]
    with deprecations_raised() as raised:
        loaded = tiny_model()
        caches = _cache_arguments(loaded.model)
        for model in (loaded.model, _with_lora(tiny_model())):
            generate_answers(model, loaded.tokenizer, prompts, 8, ["\n"], batch_size=3, device=CPU)
            choice_log_likelihoods(model, loaded.tokenizer, contexts, choices, batch_size=3, device=CPU)
        prompt_tuned = methods.build({"name": "prompt_tuning", "num_virtual_tokens": 4}).apply(
            tiny_model().model, BuildContext(loaded.tokenizer, loaded.tokenizer_path))
        generate_answers(prompt_tuned, loaded.tokenizer, prompts[:2], 4, [], batch_size=2, device=CPU)
    from_us = [f"{call_site(r)}: {r.category.__name__}: {r.message}" for r in raised if ours(r)]
    assert from_us == []
    assert any(c is not None for c in caches) and None in caches  # both cached and uncached passes ran
