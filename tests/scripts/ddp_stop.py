"""Two-rank DDP (gloo, CPU) run with AtlasCallback; rank 0 asks the collector to STOP at step 5.

    python ddp_stop.py COLLECTOR OUT_DIR

Lightning's `ddp` strategy re-executes this script for rank 1, so it is a script, not a test function.
Each rank writes OUT_DIR/rank<N>.json with the step it stopped at and the run id it streamed to."""
from __future__ import annotations

import json
import pathlib
import sys
import time
import warnings

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from atlas_callback import AtlasCallback

warnings.filterwarnings("ignore")
COLLECTOR, OUT = sys.argv[1], pathlib.Path(sys.argv[2])
STOP_AT = 5


class Net(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    def training_step(self, batch, _):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


class StopFromRankZero(pl.Callback):
    """At step 5, rank 0 sends STOP through the query service and waits until its own stream has it."""

    def __init__(self, atlas: AtlasCallback) -> None:
        self.atlas = atlas

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step != STOP_AT or trainer.global_rank != 0:
            return
        import grpc

        from atlas_proto.v1 import query_pb2 as qpb, query_pb2_grpc, telemetry_pb2 as tpb

        with grpc.insecure_channel(COLLECTOR) as channel:
            query_pb2_grpc.QueryServiceStub(channel).SendCommand(qpb.CommandRequest(
                run=self.atlas.run_id, kind=tpb.COMMAND_KIND_STOP, reason="test stop", sender="ddp-test"), timeout=60,
                wait_for_ready=True)
        deadline = time.monotonic() + 20
        while not self.atlas._core.control.decide()[0] and time.monotonic() < deadline:
            time.sleep(0.01)


def main() -> None:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(512, 8), torch.randint(0, 3, (512,)))
    atlas = AtlasCallback(project="ddp", run_name="two-ranks", collector=COLLECTOR)
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", devices=2, strategy="ddp", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[StopFromRankZero(atlas), atlas])
    trainer.fit(Net(), DataLoader(data, batch_size=16))
    (OUT / f"rank{trainer.global_rank}.json").write_text(json.dumps(
        {"global_step": trainer.global_step, "run_id": atlas.run_id, "rank": trainer.global_rank}))


if __name__ == "__main__":
    main()
