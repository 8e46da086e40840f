"""train.strategy=fsdp's glue (harness/distributed/sharded.py, parallel.py, and the in-run checkpoint
of a sharded model): which strategy a run gets, what is sharded, rank 0's unsharded copy, and a
checkpoint that gathers and scatters the full state. Sharding runs here in a process group of one
(gloo, in this process); two ranks are tested end to end in tests/e2e/test_distributed.py."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist

import methods
from harness.core.errors import HarnessError
from harness.distributed import sharded
from harness.distributed.parallel import Parallel, resolve_strategy
from harness.distributed.world import World
from harness.run.heldout import BestState
from harness.train.checkpoint import Checkpointer
from harness.train.loop import TrainResult
from harness.train.ready import ready_to_train
from methods._core.base import BuildContext


def _lora(tiny_model):
    loaded = tiny_model()
    method = methods.build({"name": "lora", "r": 4})
    torch.manual_seed(0)
    model = method.apply(loaded.model, BuildContext(loaded.tokenizer, loaded.tokenizer_path))
    ready_to_train(model, method, False)
    return method, model


@pytest.fixture
def group_of_one():
    """A gloo process group of one rank in this process, gone after the test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield World(0, 1)
    dist.destroy_process_group()


def test_fsdp_is_one_process_in_a_world_of_one_and_refuses_a_method_that_reads_weights_outside_forward():
    lora, sorsa = methods.build({"name": "lora"}), methods.build({"name": "sorsa"})
    assert resolve_strategy("fsdp", lora, World()) == "none"
    assert resolve_strategy("fsdp", lora, World(0, 2)) == "fsdp"
    with pytest.raises(HarnessError) as refused:
        resolve_strategy("fsdp", sorsa, World(0, 2))
    line = str(refused.value)
    assert line.startswith("train.strategy=fsdp cannot shard method sorsa") and "\n" not in line
    assert resolve_strategy("ddp", sorsa, World(0, 2)) == "ddp"  # replicated, its penalty sees whole weights
    assert resolve_strategy("auto", lora, World(0, 2)) == "ddp" and resolve_strategy("auto", lora, World()) == "none"
    assert resolve_strategy("auto", methods.build({"name": "full"}), World(0, 2)) == "fsdp"  # the state that grows
    assert Parallel(World(0, 2), "fsdp").gradient_scale == 2.0  # FSDP averages gradients, as DDP does


def test_select_best_with_checkpoints_is_refused_under_fsdp_only():
    Parallel(World(0, 2), "ddp").refuse_sharded_best_in_checkpoints()
    with pytest.raises(HarnessError, match="^train.select_best with in-run checkpoints"):
        Parallel(World(0, 2), "fsdp").refuse_sharded_best_in_checkpoints()


def test_each_transformer_block_is_a_unit(tiny_model):
    _, model = _lora(tiny_model)
    found = sharded.blocks(model)
    assert [type(b).__name__ for b in found] == ["LlamaDecoderLayer", "LlamaDecoderLayer"]
    assert sharded.blocks(torch.nn.Linear(2, 2)) == []  # no transformers model inside: the root alone


def test_the_skeleton_holds_no_weights_until_filled_and_then_is_the_model(tiny_model):
    loaded = tiny_model()
    model = loaded.model
    skeleton = sharded.Skeleton(model)
    assert all(p.device.type == "meta" for p in skeleton.model.parameters())
    ids = torch.tensor([[1, 5, 9, 2]])
    plain = skeleton.fill(model.state_dict(), torch.device("cpu"))
    assert plain.model.embed_tokens.weight is plain.lm_head.weight  # tied again, as in the original
    assert not any(p.device.type == "meta" for p in plain.parameters())
    assert torch.equal(plain(ids).logits, model(ids).logits)


def test_rank0_gets_the_whole_trained_model_back_unsharded(tiny_model, group_of_one):
    method, model = _lora(tiny_model)
    expected = {n: p.detach().clone() for n, p in model.named_parameters()}
    trains = {n for n, p in model.named_parameters() if p.requires_grad}
    parallel = Parallel(group_of_one, "fsdp")
    parallel.wrap(model, torch.device("cpu"))
    assert sharded.is_sharded(model) and all(sharded.is_sharded(b) for b in sharded.blocks(model))
    trainable = sharded.full_trainable_state(model)
    assert set(trainable) == trains  # no frozen LM head alias
    plain = parallel.unwrapped(model)
    assert plain is not model and not sharded.is_sharded(plain)
    got = dict(plain.named_parameters())
    assert got.keys() == expected.keys() and all(torch.equal(got[n], expected[n]) for n in expected)


def test_a_sharded_checkpoint_holds_full_tensors_and_restores_into_the_shards(tiny_model, group_of_one, tmp_path):
    def training():
        method, model = _lora(tiny_model)
        Parallel(group_of_one, "fsdp").wrap(model, torch.device("cpu"))
        optimizer = method.build_optimizer(model, 1e-2)
        return method, model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)

    method, model, optimizer, scheduler = training()
    model(input_ids=torch.tensor([[1, 5, 9, 2]]), labels=torch.tensor([[1, 5, 9, 2]])).loss.backward()
    optimizer.step()
    saving = Checkpointer(tmp_path / "train.pt", every_steps=1, world=group_of_one)
    saving.save(model, method, optimizer, scheduler, TrainResult(steps=1), 1.0)
    written = torch.load(tmp_path / "train.pt", weights_only=True)
    assert all(type(t) is torch.Tensor for t in written["parameters"].values())  # whole, not DTensor shards
    assert set(written["optimizer"]["state"]) == set(written["parameters"])  # keyed by name

    method2, model2, optimizer2, scheduler2 = training()
    Checkpointer(tmp_path / "train.pt", every_steps=1, world=group_of_one).begin(
        model2, method2, optimizer2, scheduler2, TrainResult())
    restored = sharded.full_trainable_state(model2)
    assert all(torch.equal(restored[n], t) for n, t in written["parameters"].items())
    moments = sharded.full_optimizer_state(model2, optimizer2)["state"]
    assert all(torch.equal(moments[n]["exp_avg"], s["exp_avg"]) for n, s in written["optimizer"]["state"].items())


def test_select_best_keeps_and_restores_each_ranks_shards(tiny_model, group_of_one):
    """train.select_best without in-run checkpoints: the kept state is this rank's shards, put back in place."""
    _, model = _lora(tiny_model)
    Parallel(group_of_one, "fsdp").wrap(model, torch.device("cpu"))
    best = BestState(model)
    best.offer(2, 1.0)
    kept = {n: t.clone() for n, t in sharded.full_trainable_state(model).items()}
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(1.0)
    assert best.restore() == 2
    assert all(torch.equal(t, kept[n]) for n, t in sharded.full_trainable_state(model).items())
