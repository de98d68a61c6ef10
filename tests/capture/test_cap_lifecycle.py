"""Process life: exit never hangs, forked DataLoader workers, resuming a run, both Lightning packages."""
from __future__ import annotations

import os
import pathlib

import pytest
import torch
from torch.utils.data import DataLoader

from atlas_callback import AtlasCallback, AtlasConfig
from atlas_collector import run_server
from conftest import start_collector_process
from _lit import TinyClassifier, blobs, loaders, trainer
from _query import Query


@pytest.fixture
def collector(tmp_path):
    with run_server(db=f"sqlite:///{tmp_path / 'life.db'}") as c:
        c.query = Query(c.address)
        yield c
        c.query.close()


def test_forked_dataloader_workers_do_not_break_the_run(collector) -> None:
    atlas = AtlasCallback(project="life", run_name="workers", collector=collector.address)
    t = trainer([atlas], max_epochs=2)
    ctx = torch.multiprocessing.get_context("fork")
    train = DataLoader(blobs(256), batch_size=32, num_workers=2, multiprocessing_context=ctx,
                       persistent_workers=False)
    t.fit(TinyClassifier(), train, DataLoader(blobs(64, seed=1), batch_size=32, num_workers=2,
                                              multiprocessing_context=ctx))
    detail = collector.query.run(atlas.run_id)
    assert (detail.summary.status, detail.summary.epochs, detail.summary.steps) == (4, 2, 16)
    assert len(collector.query.steps(atlas.run_id)) == 16


def test_resuming_from_a_checkpoint_continues_the_same_run(collector, tmp_path) -> None:
    ckpt_dir = tmp_path / "ckpt"
    first = AtlasCallback(project="life", run_name="resumable", collector=collector.address)
    t1 = trainer([first], max_epochs=2, enable_checkpointing=True, default_root_dir=str(ckpt_dir))
    t1.fit(TinyClassifier(), *loaders())
    ckpt = next(ckpt_dir.rglob("*.ckpt"))

    second = AtlasCallback(project="life", run_name="resumable", collector=collector.address)
    t2 = trainer([second], max_epochs=4, enable_checkpointing=False)
    t2.fit(TinyClassifier(), *loaders(), ckpt_path=str(ckpt))
    assert second.run_id == first.run_id
    detail = collector.query.run(first.run_id)
    assert (detail.summary.status, detail.summary.epochs, detail.summary.steps) == (4, 4, 64)
    assert [e.epoch for e in collector.query.epochs(first.run_id)] == [0, 1, 2, 3]
    assert collector.query.stub.ListRuns(__import__("atlas_proto.v1.query_pb2", fromlist=["x"]).ListRunsRequest(
        project="life"), timeout=10).total == 1


def test_pytorch_lightning_trainer_accepts_the_callback(collector) -> None:
    import pytorch_lightning as ptl
    from torch import nn

    class Module(ptl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(8, 3)

        def training_step(self, batch, _):
            x, y = batch
            return nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    atlas = AtlasCallback(project="life", run_name="ptl", collector=collector.address,
                          config=AtlasConfig(track_carbon=False))
    t = ptl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False, callbacks=[atlas])
    t.fit(Module(), DataLoader(blobs(64), batch_size=16))
    detail = collector.query.run(atlas.run_id)
    assert detail.summary.status == 4 and detail.summary.steps == 4
    assert "pytorch_lightning" in detail.versions


def test_a_refusing_collector_never_breaks_training(tmp_path, caplog) -> None:
    import logging

    collector = start_collector_process(f"sqlite:///{tmp_path / 'token.db'}", "--token", "right-token")
    try:
        atlas = AtlasCallback(project="life", run_name="wrong-token", collector=collector.address,
                              token="wrong-token", config=AtlasConfig(track_carbon=False))
        with caplog.at_level(logging.ERROR, logger="atlas_callback"):
            t = trainer([atlas], max_epochs=2)
            t.fit(TinyClassifier(), *loaders())
        assert t.global_step == 32
        refusals = [r for r in caplog.records if "refused run" in r.getMessage()]
        assert len(refusals) == 1 and "UNAUTHENTICATED" in refusals[0].getMessage()
        spooled = list((pathlib.Path(os.environ["ATLAS_HOME"]) / "spool" / atlas.run_id).glob("*.log"))
        assert spooled, "records the collector refused stay in the spool (sync them with the right token)"
    finally:
        collector.stop()
