"""AtlasLogger: alone it gives what AtlasCallback gives plus every metric Lightning hands a logger, per step; with an
AtlasCallback in the same Trainer the two make one run."""
from __future__ import annotations

import pytest
from torch import nn

import lightning.pytorch as pl

from atlas_callback import AtlasCallback, AtlasLogger
from atlas_collector import run_server
from conftest import atlas_json
from _lit import TinyClassifier, loaders
from _query import Query
from atlas_proto.v1 import query_pb2 as qpb

pytestmark = pytest.mark.slow


class StepLogging(TinyClassifier):
    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        loss = nn.functional.cross_entropy(logits, y)
        self.log("train_acc", (logits.argmax(-1) == y).float().mean(), on_step=True, on_epoch=False)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss


def _trainer(logger, callbacks=(), epochs: int = 2) -> pl.Trainer:
    return pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=logger, log_every_n_steps=2,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      callbacks=list(callbacks))


@pytest.fixture
def collector(tmp_path):
    with run_server(db=f"sqlite:///{tmp_path / 'logger.db'}") as c:
        c.query = Query(c.address)
        yield c
        c.query.close()


def test_the_logger_alone_captures_the_run_and_every_logged_metric_per_step(collector) -> None:
    logger = AtlasLogger(project="lg", run_name="alone", collector=collector.address)
    _trainer(logger).fit(StepLogging(hidden=16, lr=0.05), *loaders())
    run_id = logger.run_id
    detail = collector.query.run(run_id)
    # what AtlasCallback gives: the run, its epochs with validation metrics, every step, the architecture
    assert (detail.summary.status, detail.summary.epochs, detail.summary.steps) == (4, 2, 32)
    assert len(collector.query.steps(run_id)) == 32
    epochs = collector.query.epochs(run_id)
    assert "val_acc" in epochs[1].val_metrics and epochs[1].throughput.samples_per_sec > 0
    assert collector.query.architecture(run_id).total_parameters > 0
    assert detail.summary.framework == 1  # lightning
    # hyperparameters from log_hyperparams
    hp = atlas_json(collector.address, "runs", "show", run_id)["hyperparameters"]
    assert hp["hidden"] == 16 and hp["lr"] == 0.05
    # every metric Lightning handed the logger: on_step at every log_every_n_steps (2), on_epoch per epoch
    keys = {k["key"]: k["count"] for k in atlas_json(collector.address, "metrics", run_id)}
    assert keys["train_acc"] == 16 and keys["train_loss_step"] == 16
    assert keys["train_loss_epoch"] == 2 and keys["val_acc"] == 2 and keys["val_loss"] == 2
    steps = [p["step"] for p in atlas_json(collector.address, "metrics", run_id, "train_acc")]
    assert steps == sorted(steps) and steps[:3] == [1, 3, 5]
    runs = collector.query.stub.ListRuns(qpb.ListRunsRequest(project="lg"), timeout=10)
    assert runs.total == 1


def test_logger_and_callback_together_make_one_run(collector) -> None:
    atlas = AtlasCallback(project="lg", run_name="both", collector=collector.address)
    logger = AtlasLogger(project="lg", run_name="both", collector=collector.address)
    _trainer(logger, [atlas], epochs=1).fit(StepLogging(), *loaders())
    assert logger.run_id == atlas.run_id
    runs = collector.query.stub.ListRuns(qpb.ListRunsRequest(project="lg"), timeout=10)
    assert runs.total == 1
    keys = {k["key"] for k in atlas_json(collector.address, "metrics", atlas.run_id)}
    assert {"train_acc", "train_loss_step", "val_acc"} <= keys


def test_bad_arguments_are_refused_at_once() -> None:
    with pytest.raises(ValueError, match="`on_critical` must be one of"):
        AtlasLogger(project="lg", on_critical="explode")
