"""One small training of a method on tiny-random-llama and real GSM8K items, the same in a test
process (one rank, the whole micro-batch) and in each rank of a torchrun (its share): the pieces
a run uses (load_model, the registry, ready_to_train, batch_stream, train, Parallel). With a Parallel
`from_main` (fsdp), the ranks but 0 build the model on the meta device (load_empty), as runs do.
And one evaluation's model work (the Scorer), in one process or spread over a torchrun's ranks."""

from __future__ import annotations

import yaml
import torch

import methods
from harness.budget.spec import Budget
from harness.core.paths import CONF_DIR
from harness.distributed.parallel import Parallel
from harness.distributed.world import World
from harness.models.loading import load_empty, load_model
from harness.scoring.scorer import Scorer
from harness.tasks import from_conf
from harness.train.batching import batch_stream
from harness.train.encoding import encode_pairs
from harness.train.loop import StepOptions, train
from harness.train.ready import ready_to_train
from methods._core.base import BuildContext

GLOBAL_BATCH, STEPS = 4, 3
OPTIONS = {"lora": {"r": 4}, "ia3": {}, "series_adapter": {"bottleneck": 8}, "oft": {"block_size": 8},
           "prompt_tuning": {"num_virtual_tokens": 4}, "bitfit": {}, "fourierft": {"n_frequency": 64},
           "full": {}, "sorsa": {"r": 4}, "dora": {"r": 4}}
LR = {"full": 1e-3, "prompt_tuning": 5e-2, "fourierft": 5e-2, "bitfit": 3e-2, "series_adapter": 3e-2}


META_STARTS: list[bool] = []  # per train_case: whether this rank built its model without weights


def train_case(name: str, data_dir: str, parallel: Parallel, world: World) -> tuple[list[float], dict]:
    cfg = yaml.safe_load((CONF_DIR / "model" / "tiny-random-llama.yaml").read_text())
    loaded = load_empty(cfg, CONF_DIR) if parallel.from_main and not world.main else load_model(cfg, CONF_DIR)
    META_STARTS.append(all(p.is_meta for p in loaded.model.parameters()))
    task = from_conf("gsm8k")
    data = task.load({"dir": data_dir, "order": ["local"]})
    tok = loaded.tokenizer
    items = [(ids + [tok.eos_token_id], labels + [tok.eos_token_id])
             for ids, labels in encode_pairs(tok, [task.training_pair(x) for x in data.train[:64]], 127)]
    method = methods.build({"name": name, **OPTIONS[name]})
    torch.manual_seed(0)
    model = method.apply(loaded.model, BuildContext(tok, loaded.tokenizer_path))
    ready_to_train(model, method, False)
    parallel.wrap(model, torch.device("cpu"))
    batches = batch_stream(items, GLOBAL_BATCH // world.size, tok.pad_token_id, 0, rank=world.rank, world_size=world.size)
    losses: list[float] = []
    train(model, method, batches, StepOptions(grad_accum=1, warmup_ratio=0.0, grad_clip=1.0, precision='auto'),
          LR.get(name, 1e-2), Budget("t", max_steps=STEPS), torch.device("cpu"), 1.0,
          on_step=lambda _s, loss, _lr: losses.append(loss), parallel=parallel)
    return losses, {n: p.detach().clone() for n, p in parallel.unwrapped(model).named_parameters() if p.requires_grad}


def scorer_case(world: World) -> dict:
    """Generation, choice log-likelihoods and cross-entropy of 5 items on tiny-random-llama, by a
    Scorer over `world` (batches of one item: no item's batch partners differ between worlds)."""
    cfg = yaml.safe_load((CONF_DIR / "model" / "tiny-random-llama.yaml").read_text())
    loaded = load_model(cfg, CONF_DIR)
    scorer = Scorer(loaded.model, loaded.tokenizer, torch.device("cpu"), 64, world)
    questions = [f"Question {n}: what is {n} plus {n + 1}?" for n in range(5)]
    return {
        "generated": scorer.generate(questions, 6, ["\n"], 1),
        "loglik": [[s.logprob for s in row] for row in
                   scorer.log_likelihoods([q + "\nAnswer:" for q in questions], [[" yes", " no", " maybe so"]] * 5, 1)],
        "ce": scorer.cross_entropy([(q, f" {2 * n + 1}") for n, q in enumerate(questions)], 1),
    }
