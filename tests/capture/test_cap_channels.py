"""Every channel produces its records, for Lightning (a CNN and a transformer), an Accelerate loop and a
plain loop: real CPU training against a real collector, read back through the query service."""
from __future__ import annotations

import logging
import math
import time

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from atlas_callback import AtlasCallback, AtlasConfig, AtlasTracker, Observer
from atlas_collector import run_server
from _query import Query

ALL = AtlasConfig(track_profiler=True, profile_every_epochs=1, layer_health_every=2, layer_health_budget=1.0,
                  grad_norm_every=2)


@pytest.fixture
def collector(tmp_path):
    with run_server(db=f"sqlite:///{tmp_path / 'channels.db'}") as c:
        q = Query(c.address)
        c.query = q
        yield c
        q.close()


class SmallCNN(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))

    def training_step(self, batch, _):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_acc", (self(x).argmax(-1) == y).float().mean(), on_epoch=True, on_step=False)
        if self.global_step == 3:
            logging.getLogger("user.training").warning("learning rate looks high at step %d", self.global_step)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


class SmallTransformer(pl.LightningModule):
    def __init__(self, vocab: int = 50, d_model: int = 16) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(vocab, d_model)
        self.encoder = nn.TransformerEncoderLayer(d_model, nhead=2, dim_feedforward=32, batch_first=True)
        self.head = nn.Linear(d_model, vocab)

    def training_step(self, batch, _):
        (tokens,) = batch
        logits = self.head(self.encoder(self.embed(tokens[:, :-1])))
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))

    def validation_step(self, batch, _):
        (tokens,) = batch
        logits = self.head(self.encoder(self.embed(tokens[:, :-1])))
        self.log("val_loss", nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                         tokens[:, 1:].reshape(-1)))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _images(n: int = 96) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g))


def _tokens(n: int = 64) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randint(0, 50, (n, 12), generator=g))


class _CarbonReady(pl.Callback):
    """CodeCarbon starts on a background thread (no step waits for it, ~1.5 s here); these epochs are
    shorter, so epoch 1 begins once its first measurement has landed."""

    def __init__(self, atlas: AtlasCallback) -> None:
        self.atlas = atlas

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        carbon = self.atlas._core.channel("carbon")
        deadline = time.monotonic() + 20
        while trainer.current_epoch == 1 and carbon is not None and carbon.available and carbon._latest is None \
                and time.monotonic() < deadline:
            time.sleep(0.05)


def _fit(module, data, collector, config=ALL, epochs=2):
    callback = AtlasCallback(project="channels", run_name=type(module).__name__, collector=collector.address,
                             config=config)
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[_CarbonReady(callback), callback])
    trainer.fit(module, DataLoader(data, batch_size=16), DataLoader(data, batch_size=32))
    return callback.run_id, trainer


def _assert_epoch_channels(e, *, profiled: bool = True) -> None:
    assert e.loss.count > 0 and e.loss.HasField("mean") and e.loss.min <= e.loss.mean <= e.loss.max
    assert "val_loss" in e.val_metrics
    t = e.throughput
    assert t.samples_per_sec > 0 and t.batches_per_sec > 0 and t.samples_processed > 0
    assert 0 < t.step_time_p50_s <= t.step_time_p95_s <= t.step_time_max_s
    assert e.memory.process_rss_mb > 50 and 0 < e.system.ram_percent <= 100 and e.system.HasField("cpu_percent")
    assert len(e.lr) >= 1 and e.lr[0] > 0
    assert e.HasField("grad_norm") and e.grad_norm > 0
    assert e.layer_health.layers, "layer health is empty"
    assert any(layer.HasField("activation_mean") for layer in e.layer_health.layers)
    if profiled:
        assert e.profiler.forward_ms > 0 and e.profiler.backward_ms > 0 and e.profiler.top_ops
    assert list(e.gpus) == []  # no GPU on this machine: the channel is unavailable, nothing else breaks


@pytest.mark.parametrize(("module", "data", "arch_types"), [
    (SmallCNN, _images, {"Conv2d", "ReLU", "MaxPool2d", "Linear"}),
    (SmallTransformer, _tokens, {"Embedding", "Linear", "LayerNorm"}),
], ids=["cnn", "transformer"])
def test_lightning_channels(collector, module, data, arch_types) -> None:
    run_id, trainer = _fit(module(), data(), collector)
    q = collector.query
    epochs = q.epochs(run_id)
    assert [e.epoch for e in epochs] == [0, 1]
    for e in epochs:
        _assert_epoch_channels(e)
    steps = q.steps(run_id)
    assert [s.step for s in steps] == list(range(1, trainer.global_step + 1))
    assert all(s.HasField("loss") and math.isfinite(s.loss) and s.lr > 0 for s in steps)
    assert sum(s.HasField("grad_norm") for s in steps) >= trainer.global_step // 2 - 1
    arch = q.architecture(run_id)
    assert arch.total_parameters == sum(p.numel() for p in trainer.lightning_module.parameters())
    assert arch_types <= {layer.type for layer in arch.layers}
    assert arch.sequential_path and arch.dimension_flow
    detail = q.run(run_id)
    assert detail.versions["torch"].startswith("2.")


def test_lightning_logs_and_carbon(collector) -> None:
    run_id, _ = _fit(SmallCNN(), _images(), collector, config=AtlasConfig(), epochs=3)
    q = collector.query
    logs = q.logs(run_id)
    assert any("learning rate looks high at step 3" in r.message and r.level == "WARNING" for r in logs)
    epochs = q.epochs(run_id)
    assert sum(e.log_counts.warning for e in epochs) >= 1
    assert not any(e.profiler.top_ops for e in epochs), "the profiler is off by default"
    carbon = [e.carbon for e in epochs if e.HasField("carbon")]
    assert carbon, "no carbon figures"
    assert carbon[-1].cumulative_energy_kwh > 0 and carbon[-1].country_iso == "IRL"
    assert carbon[-1].cumulative_co2_kg >= carbon[0].cumulative_co2_kg


def test_accelerate_loop_channels(collector) -> None:
    from accelerate import Accelerator

    tracker = AtlasTracker(project="channels", run_name="accelerate", collector=collector.address, config=ALL)
    accelerator = Accelerator(cpu=True, log_with=[tracker])
    accelerator.init_trackers("channels", config={"lr": 0.05, "batch_size": 16})
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    data = TensorDataset(torch.randn(64, 8), torch.randint(0, 3, (64,)))
    model, optimizer, loader = accelerator.prepare(model, optimizer, DataLoader(data, batch_size=16))
    tracker.watch(model)
    step = 0
    for _ in range(2):
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()  # as the tracker's docstring has it: cleared before accelerator.log
            accelerator.log({"loss": loss.item(), "lr": 0.05}, step=step)
            step += 1
        tracker.epoch_end(val_metrics={"val_loss": 1.0 - 0.1 * step / 4})
    accelerator.end_training()

    q = collector.query
    detail = q.run(tracker.run_id)
    assert detail.summary.status == 4  # completed
    assert dict(detail.hyperparameters) == {"lr": 0.05, "batch_size": 16.0}
    epochs = q.epochs(tracker.run_id)
    assert [e.epoch for e in epochs] == [0, 1]
    assert epochs[1].val_metrics["val_loss"] == pytest.approx(0.8)
    assert all(e.loss.count == 4 and e.layer_health.layers for e in epochs)
    steps = q.steps(tracker.run_id)
    assert [s.step for s in steps] == list(range(1, 9)) and all(s.lr == 0.05 for s in steps)
    # the documented loop clears the gradients before accelerator.log: the norm is read before the optimizer step
    assert sum(s.HasField("grad_norm") for s in steps) >= 3 and all(e.HasField("grad_norm") for e in epochs)
    assert all(e.throughput.samples_per_sec > 0 and e.throughput.samples_processed == 64 for e in epochs)
    assert {layer.type for layer in q.architecture(tracker.run_id).layers} >= {"Linear", "ReLU"}


def test_plain_loop_observer_channels(collector) -> None:
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    data = TensorDataset(torch.randn(64, 8), torch.randint(0, 3, (64,)))
    with Observer(project="channels", run_name="plain", collector=collector.address, config=ALL,
                  hyperparameters={"lr": 0.05}) as obs:
        obs.register_model(model)
        for _ in range(2):
            for x, y in DataLoader(data, batch_size=16):
                loss = nn.functional.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                obs.step(loss, batch_size=len(x), seq_len=4, optimizer=optimizer)
            obs.log({"train_acc": 0.5})
            obs.flush(val_metrics={"val_loss": 0.9})
    q = collector.query
    detail = q.run(obs.run_id)
    assert detail.summary.status == 4 and detail.summary.framework == 3
    epochs = q.epochs(obs.run_id)
    assert len(epochs) == 2
    for e in epochs:
        assert list(e.lr) == [0.05]  # the optimizer given to step(): its LR per param group (issue 17)
        assert e.loss.count == 4 and e.val_metrics["val_loss"] == pytest.approx(0.9)
        assert e.train_metrics["train_acc"] == pytest.approx(0.5)
        assert e.throughput.tokens_per_sec == pytest.approx(e.throughput.samples_per_sec * 4, rel=1e-6)
        assert e.layer_health.layers and e.profiler.top_ops
    assert len(q.steps(obs.run_id)) == 8


def test_observer_marks_an_escaping_exception_failed(collector) -> None:
    with pytest.raises(ValueError, match="bad batch"):
        with Observer(project="channels", run_name="boom", collector=collector.address) as obs:
            obs.step(1.0)
            raise ValueError("bad batch")
    detail = collector.query.run(obs.run_id)
    assert detail.summary.status == 5 and detail.error.type == "ValueError" and "bad batch" in detail.error.message
    # a crashed run does not read as healthy (issue 17: it scored 91): its health is at most 50
    from atlas_proto.v1 import query_pb2 as qpb

    health = collector.query.stub.GetHealth(qpb.RunRef(run=obs.run_id), timeout=10)
    assert health.health_score <= 50
    assert 0 < collector.query.run(obs.run_id).summary.health_score <= 50  # what `atlas runs` shows


def test_nan_loss_arrives_as_the_step_sample_of_that_exact_step(collector) -> None:
    with Observer(project="channels", run_name="nan", collector=collector.address) as obs:
        for step in range(1, 11):
            obs.step(torch.tensor(float("nan") if step == 7 else 1.0 / step))
        obs.flush()
    steps = {s.step: s.loss for s in collector.query.steps(obs.run_id)}
    assert sorted(steps) == list(range(1, 11))
    assert math.isnan(steps[7]) and all(math.isfinite(v) for k, v in steps.items() if k != 7)
    # the loss diverged: the health says so (issue 17: it scored 78) and so does the Green-AI grade (it was A)
    from atlas_proto.v1 import query_pb2 as qpb

    assert collector.query.run(obs.run_id).summary.health_score <= 30
    green = collector.query.stub.GetSustainability(qpb.RunRef(run=obs.run_id), timeout=10).report
    assert green["grade"] in ("F", None)
