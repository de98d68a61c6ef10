"""Two-rank DDP (gloo, CPU) run with AtlasCallback; rank 0 asks the collector to STOP at step 5.

    python cap_ddp_stop.py COLLECTOR OUT_DIR [pause]

With `pause`, rank 0 first asks for PAUSE at step 2 and for RESUME a second later (from another thread), then STOP
at step 5; each rank also records the longest gap between two of its batch ends (the pause).

Lightning's `ddp` strategy re-executes this script for rank 1, so it is a script, not a test function.
Each rank writes OUT_DIR/rank<N>.json with the step it stopped at and the run id it streamed to."""
from __future__ import annotations

import json
import pathlib
import sys
import threading
import time
import warnings

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from atlas_callback import AtlasCallback

warnings.filterwarnings("ignore")
COLLECTOR, OUT = sys.argv[1], pathlib.Path(sys.argv[2])
PAUSE = sys.argv[3:] == ["pause"]
STOP_AT, PAUSE_AT = 5, 2


class Net(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    def training_step(self, batch, _):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def send(run_id: str, kind_name: str) -> None:
    import grpc

    from atlas_proto.v1 import query_pb2 as qpb, query_pb2_grpc, telemetry_pb2 as tpb

    with grpc.insecure_channel(COLLECTOR) as channel:
        query_pb2_grpc.QueryServiceStub(channel).SendCommand(qpb.CommandRequest(
            run=run_id, kind=getattr(tpb, f"COMMAND_KIND_{kind_name}"), reason=f"test {kind_name.lower()}",
            sender="ddp-test"), timeout=60, wait_for_ready=True)


class StopFromRankZero(pl.Callback):
    """At step 5, rank 0 sends STOP through the query service and waits until its own stream has it (with PAUSE:
    PAUSE at step 2, RESUME one second later). Every rank records the longest gap between its batch ends."""

    def __init__(self, atlas: AtlasCallback) -> None:
        self.atlas = atlas
        self.last: float | None = None
        self.longest = 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.monotonic()
        if self.last is not None:
            self.longest = max(self.longest, now - self.last)
        self.last = now
        if trainer.global_rank != 0:
            return
        control = self.atlas._core.control
        if PAUSE and trainer.global_step == PAUSE_AT:
            send(self.atlas.run_id, "PAUSE")
            deadline = time.monotonic() + 20
            while not control.decide()[1] and time.monotonic() < deadline:
                time.sleep(0.01)
            threading.Thread(target=lambda: (time.sleep(1.0), send(self.atlas.run_id, "RESUME"))).start()
        if trainer.global_step == STOP_AT:
            send(self.atlas.run_id, "STOP")
            deadline = time.monotonic() + 20
            while not control.decide()[0] and time.monotonic() < deadline:
                time.sleep(0.01)


def main() -> None:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(512, 8), torch.randint(0, 3, (512,)))
    atlas = AtlasCallback(project="ddp", run_name="two-ranks", collector=COLLECTOR)
    probe = StopFromRankZero(atlas)
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", devices=2, strategy="ddp", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[probe, atlas])
    trainer.fit(Net(), DataLoader(data, batch_size=16))
    (OUT / f"rank{trainer.global_rank}.json").write_text(json.dumps(
        {"global_step": trainer.global_step, "run_id": atlas.run_id, "rank": trainer.global_rank,
         "longest_gap_s": probe.longest}))


if __name__ == "__main__":
    main()
