"""Setup facts (issue 19): what each adapter learns about how a run is set up, stored through a real collector, and
what the facts cost: hooks only for the first optimizer steps, never a failed step."""
from __future__ import annotations

import copy
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from google.protobuf import json_format
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from _query import Query
from atlas_callback import AtlasCallback, AtlasConfig, AtlasTracker, Observer
from atlas_callback._facts import WATCHED_STEPS, FactsProbe
from atlas_collector import run_server


@pytest.fixture
def collector(tmp_path):
    with run_server(db=f"sqlite:///{tmp_path / 'facts.db'}") as c:
        c.query = Query(c.address)
        yield c
        c.query.close()


def facts(collector: Any, run_id: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for e in collector.query.epochs(run_id):
        merged.update(json_format.MessageToDict(e.facts))
    return merged


def data(n: int = 256, classes: int = 4, sort: bool = False, scale: float = 1.0) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, classes, (n,), generator=g)
    x = torch.randn(n, 8, generator=g) + y[:, None].float()
    if sort:
        order = y.argsort()
        x, y = x[order], y[order]
    return TensorDataset(x * scale, y)


class Net(pl.LightningModule):
    def __init__(self, *, softmax: bool = False, foreign: bool = False, unused: bool = False,
                 step_sched: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 4)]
        if softmax:
            layers.append(nn.Softmax(dim=1))
        self.net = nn.Sequential(*layers)
        self.extra = nn.Linear(3, 3) if unused else None
        self.foreign, self.step_sched = foreign, step_sched

    def training_step(self, batch, _):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        params = copy.deepcopy(self.net).parameters() if self.foreign else self.parameters()
        opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
        if not self.step_sched:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.StepLR(opt, 1, 0.5),
                                                   "interval": "step"}}


def fit(collector: Any, module: pl.LightningModule, dataset: TensorDataset, *, shuffle: bool = True,
        **trainer: Any) -> str:
    callback = AtlasCallback(project="facts", collector=collector.address, config=AtlasConfig(track_carbon=False))
    pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, callbacks=[callback], **trainer).fit(
        module, DataLoader(dataset, batch_size=32, shuffle=shuffle))
    assert callback.run_id is not None
    return callback.run_id


def test_lightning_sends_the_setup_of_a_healthy_run(collector) -> None:
    f = facts(collector, fit(collector, Net(), data(), gradient_clip_val=0.5))
    assert f["optimizers"] == [{"type": "SGD", "groups": [{"params": 4.0, "lr": 0.1, "momentum": 0.9,
                                                           "weight_decay": 1e-4, "nesterov": False}]}]
    assert f["parameters"]["trainable"] == 4 and f["parameters"]["in_optimizer"] == 4
    assert f["parameters"]["foreign_in_optimizer"] == 0
    assert f["manual_optimization"] is False and f["max_epochs"] == 2
    assert f["grad_clip"] == {"value": 0.5, "algorithm": "norm"}
    assert f["sampler"] == "RandomSampler"
    assert f["inputs"]["dtype"] == "float32" and f["inputs"]["shape"] == [32.0, 8.0] and -3 < f["inputs"]["mean"] < 4
    assert f["targets"]["classes_seen"] == 4 and len(f["targets"]["batch_classes"]) == 8
    assert min(f["targets"]["batch_classes"]) >= 3  # shuffled: most classes in every batch
    # the outermost module training_step called: its output is the model's
    assert f["output"]["layer"] == "net" and f["output"]["width"] == 4 and f["output"]["rows_sum_to_one"] < 0.5
    assert f["first_layer_input"]["layer"] == "net.0"
    assert f["training_mode"]["eval_steps"] == 0 and f["mode_layers"]["count"] == 1
    assert f["grads_not_cleared"]["steps"] == 0 and f["grads_not_cleared"]["watched_steps"] > 0
    assert f["unused_parameters"]["count"] == 0 and f["grad_without_optimizer"]["count"] == 0


def test_lightning_facts_show_the_bugs(collector) -> None:
    run_id = fit(collector, Net(softmax=True, foreign=True, unused=True, step_sched=True),
                 data(sort=True, scale=100.0), shuffle=False)
    f = facts(collector, run_id)
    assert f["parameters"]["in_optimizer"] == 0 and f["parameters"]["foreign_in_optimizer"] == 4
    assert f["grad_without_optimizer"]["count"] == 4
    assert f["unused_parameters"]["names"] == ["extra.weight", "extra.bias"]
    assert f["output"]["layer"] == "net" and f["output"]["rows_sum_to_one"] == 1.0
    assert f["schedulers"] == [{"type": "StepLR", "interval": "step", "frequency": 1.0}]
    assert f["sampler"] == "SequentialSampler" and max(f["targets"]["batch_classes"]) <= 2  # sorted by label
    assert f["inputs"]["std"] > 50
    issues = _issues(collector, run_id)
    assert issues[0]["check"] == "optimizer_not_stepping_model" and issues[0]["severity"] == "critical"
    checks = {i["check"] for i in issues}
    assert {"unused_parameters", "unshuffled_data", "unnormalized_inputs"} <= checks, checks


def test_plain_loop_facts_find_a_forgotten_zero_grad_and_remove_their_hooks(collector) -> None:
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    with Observer(project="facts", collector=collector.address, config=AtlasConfig(track_carbon=False)) as obs:
        obs.register_model(model)
        for _ in range(2):
            for x, y in DataLoader(data(), batch_size=16):
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()  # no zero_grad: every step adds to the last
                optimizer.step()
                obs.step(loss, optimizer=optimizer)
            obs.flush(val_metrics={"val_loss": 1.0})
        probe = obs._core.facts
        assert probe is not None and probe._watch_done and not probe._handles  # every hook removed
        assert not optimizer._optimizer_step_pre_hooks and not optimizer._optimizer_step_post_hooks
        assert all(not p._backward_hooks for p in model.parameters())
    f = facts(collector, obs.run_id)
    assert f["grads_not_cleared"]["steps"] == f["grads_not_cleared"]["watched_steps"] == WATCHED_STEPS - 1
    assert f["first_layer_input"]["layer"] == "0" and f["inputs"]["batches"] == 8
    assert "targets" not in f  # a plain loop never shows Atlas the labels
    checks = [i["check"] for i in _issues(collector, obs.run_id)]
    assert checks[0] == "missing_zero_grad", checks


def test_zero_grad_between_backward_and_step_is_named_as_the_optimizer_stepping_nothing(collector) -> None:
    """Found by the second held-out round (g10): `zero_grad()` between `backward()` and `step()` leaves every
    parameter without a gradient when the optimizer steps; it was reported as 100 % unused parameters ("forward
    never uses them") below a loss_at_chance. The facts now see the gradient arrive and vanish before the step."""
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    with Observer(project="facts", collector=collector.address, config=AtlasConfig(track_carbon=False)) as obs:
        obs.register_model(model)
        for _ in range(2):
            for x, y in DataLoader(data(), batch_size=16):
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                optimizer.zero_grad()  # the bug: the gradient is gone before the step
                optimizer.step()
                obs.step(loss, optimizer=optimizer)
                losses.append(loss.item())
            obs.flush(val_metrics={"val_loss": losses[-1]})
    half = len(losses) // 2  # the symptom: the same batch gives the same loss in both epochs, nothing learns
    assert losses[:half] == pytest.approx(losses[half:], rel=1e-6)
    f = facts(collector, obs.run_id)
    assert f["grads_cleared_before_step"]["steps"] == f["grads_cleared_before_step"]["watched_steps"] == WATCHED_STEPS
    issues = _issues(collector, obs.run_id)
    assert issues[0]["check"] == "optimizer_not_stepping_model" and issues[0]["severity"] == "critical", issues[0]
    assert "zero_grad()" in issues[0]["description"] and "backward()" in issues[0]["description"]
    assert "unused_parameters" not in {i["check"] for i in issues}


def test_accelerate_tracker_sends_optimizer_facts(collector) -> None:
    from accelerate import Accelerator

    tracker = AtlasTracker(project="facts", collector=collector.address, config=AtlasConfig(track_carbon=False))
    accelerator = Accelerator(cpu=True, log_with=[tracker])
    accelerator.init_trackers("facts")
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    model, optimizer, loader = accelerator.prepare(model, optimizer, DataLoader(data(), batch_size=16))
    tracker.watch(model, accelerator)
    for step, (x, y) in enumerate(loader):
        loss = nn.functional.cross_entropy(model(x), y)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        accelerator.log({"loss": loss.item()}, step=step)
    tracker.epoch_end(val_metrics={"val_loss": 1.0})
    accelerator.end_training()
    f = facts(collector, tracker.run_id)
    assert f["optimizers"][0]["type"] == "AdamW" and f["optimizers"][0]["groups"][0]["betas"] == [0.9, 0.999]
    assert f["parameters"]["in_optimizer"] == 4 and f["grads_not_cleared"]["steps"] == 0
    assert f["inputs"]["shape"] == [16.0, 8.0]


def _issues(collector: Any, run_id: str) -> list[dict[str, Any]]:
    from atlas_proto.v1 import query_pb2 as qpb

    from atlas_proto.convert import issue_dict

    resp = collector.query.stub.ListIssues(qpb.IssuesRequest(run=run_id, include_inactive=True), timeout=10)
    return [issue_dict(i) for i in resp.issues]


@pytest.mark.parametrize("batch", [
    "text", {"input_ids": torch.zeros(2, 3, dtype=torch.long), "labels": torch.tensor([1, 0])},
    (torch.zeros(2, 3), torch.tensor([[0.0, 1.0], [1.0, 0.0]])), [torch.zeros(0, 3)], None,
    {"pixel_values": torch.full((2, 3), float("nan")), "label": torch.tensor([-1, 2])},
])
def test_odd_batches_never_fail_and_never_invent_facts(batch: Any) -> None:
    probe = FactsProbe(nn.Linear(3, 2))
    for _ in range(10):
        probe.batch(batch)
    f = probe.take()
    assert "mean" not in f.get("inputs", {}) or f["inputs"]["std"] >= 0
    if "targets" in f:
        assert f["targets"]["classes_seen"] >= 1


def test_the_output_is_watched_for_one_step_only_even_when_it_is_not_2d() -> None:
    """A sequence model's output is [B, T, V]: nothing to record, and the hooks must not come back every step."""
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10))
    probe = FactsProbe(model)
    probe.watch_output(model.named_modules())
    model(torch.randint(0, 10, (2, 5)))
    probe.unwatch_output()
    assert probe._output_done and "output" not in probe.take()
    assert all(not m._forward_hooks for m in model.modules())
