"""Every adapter fills every channel that applies (issue 17): the same model and data through Lightning
(AtlasCallback), Accelerate (AtlasTracker) and a plain loop (Observer), against one real collector, and what each
stored compared channel by channel."""
from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from google.protobuf import json_format
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from _query import Query
from atlas_callback import AtlasCallback, AtlasConfig, AtlasTracker, Observer
from atlas_collector import run_server

CONFIG = AtlasConfig(track_carbon=False, grad_norm_every=2, layer_health_every=2, layer_health_budget=1.0)
EPOCHS, BATCH, N = 2, 16, 128


def data() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (N,), generator=g)
    return TensorDataset(torch.randn(N, 8, generator=g) + y[:, None].float(), y)


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


class Module(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = net()

    def training_step(self, batch, _):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def lightning(address: str) -> str:
    cb = AtlasCallback(project="parity", run_name="lightning", collector=address, config=CONFIG)
    pl.Trainer(max_epochs=EPOCHS, accelerator="cpu", logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False, callbacks=[cb]).fit(
        Module(), DataLoader(data(), batch_size=BATCH), DataLoader(data(), batch_size=64))
    return cb.run_id  # type: ignore[return-value]


def accelerate(address: str) -> str:
    from accelerate import Accelerator

    tracker = AtlasTracker(project="parity", run_name="accelerate", collector=address, config=CONFIG)
    acc = Accelerator(cpu=True, log_with=[tracker])
    acc.init_trackers("parity")
    model = net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model, opt, loader = acc.prepare(model, opt, DataLoader(data(), batch_size=BATCH))
    tracker.watch(model, acc)
    step = 0
    for _ in range(EPOCHS):
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            acc.backward(loss)
            opt.step()
            opt.zero_grad()
            acc.log({"loss": loss.item()}, step=step)
            step += 1
        tracker.epoch_end(val_metrics={"val_loss": 1.0})
    acc.end_training()
    return tracker.run_id  # type: ignore[return-value]


def plain(address: str) -> str:
    model = net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with Observer(project="parity", run_name="plain", collector=address, config=CONFIG) as obs:
        obs.register_model(model)
        for _ in range(EPOCHS):
            for x, y in DataLoader(data(), batch_size=BATCH):
                loss = nn.functional.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                obs.step(loss, batch_size=len(x), optimizer=opt)
            obs.flush(val_metrics={"val_loss": 1.0})
    return obs.run_id  # type: ignore[return-value]


def channels(q: Query, run_id: str) -> dict[str, Any]:
    epochs = q.epochs(run_id)
    facts: dict[str, Any] = {}
    for e in epochs:
        facts.update(json_format.MessageToDict(e.facts))
    steps = q.steps(run_id)
    arch = q.architecture(run_id)
    return {
        "epochs": [e.epoch for e in epochs],
        "loss per epoch": all(e.loss.count == N // BATCH and e.loss.HasField("mean") for e in epochs),
        "val_loss per epoch": all("val_loss" in e.val_metrics for e in epochs),
        "lr per epoch": all(list(e.lr) == [0.05] for e in epochs),
        "grad norm per epoch": all(e.HasField("grad_norm") and e.grad_norm > 0 for e in epochs),
        "throughput per epoch": all(e.throughput.samples_per_sec > 0 and e.throughput.samples_processed == N
                                    for e in epochs),
        "memory per epoch": all(e.memory.process_rss_mb > 0 for e in epochs),
        "layer health per epoch": all(e.layer_health.layers for e in epochs),
        "every step": [s.step for s in steps] == list(range(1, EPOCHS * N // BATCH + 1)),
        "lr per step": all(s.lr == 0.05 for s in steps),
        "architecture": {layer.type for layer in arch.layers} >= {"Linear", "ReLU"} and bool(arch.dimension_flow),
        "optimizer facts": [o["type"] for o in facts.get("optimizers", [])] == ["SGD"],
        "parameters in the optimizer": facts.get("parameters", {}).get("in_optimizer") == 4,
        "gradients cleared": facts.get("grads_not_cleared", {}).get("steps") == 0,
        "first layer input": facts.get("first_layer_input", {}).get("mean") is not None,
        "model output": facts.get("output", {}).get("width") == 3,
    }


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> dict[str, dict[str, Any]]:
    path = tmp_path_factory.mktemp("parity") / "parity.db"
    with run_server(db=f"sqlite:///{path}") as c:
        q = Query(c.address)
        try:
            return {name: channels(q, fn(c.address)) for name, fn in
                    (("lightning", lightning), ("accelerate", accelerate), ("plain", plain))}
        finally:
            q.close()


@pytest.mark.parametrize("adapter", ["accelerate", "plain"])
def test_every_adapter_stores_what_lightning_stores(stored: dict[str, dict[str, Any]], adapter: str) -> None:
    reference = stored["lightning"]
    assert all(v for v in reference.values()), reference  # the reference itself is complete
    missing = {k: v for k, v in stored[adapter].items() if v != reference[k]}
    assert not missing, f"{adapter} lacks what Lightning stores: {missing}"
