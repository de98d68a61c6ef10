"""Run under torchrun (2 processes, gloo on the CPU): a tiny BERT through the HF Trainer with Atlas; optionally a
STOP sent by rank 0 at step 3. Each rank writes rank{N}.json with its run id and last global step.

    torchrun --nproc_per_node 2 hf_ddp.py COLLECTOR OUTDIR [stop]
"""
from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _hf import hf_trainer  # noqa: E402

from atlas_callback import AtlasTransformersCallback  # noqa: E402


class StopAt:
    """Rank 0 sends STOP to its own run at a step and waits until its trainer side has it."""

    def __init__(self, atlas: AtlasTransformersCallback, address: str, step: int) -> None:
        self.atlas, self.address, self.step = atlas, address, step

    def __getattr__(self, name: str):
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)

    def on_step_end(self, args, state, control, **kwargs) -> None:
        if state.global_step != self.step or args.process_index != 0:
            return
        import grpc

        from atlas_proto.v1 import query_pb2 as qpb, query_pb2_grpc, telemetry_pb2 as tpb

        with grpc.insecure_channel(self.address) as channel:
            query_pb2_grpc.QueryServiceStub(channel).SendCommand(qpb.CommandRequest(
                run=self.atlas.run_id, kind=tpb.COMMAND_KIND_STOP, reason="from the test", sender="test"), timeout=10)
        deadline = time.monotonic() + 20
        while not any(self.atlas._core.control.decide()) and time.monotonic() < deadline:
            time.sleep(0.01)


def main() -> None:
    address, out = sys.argv[1], sys.argv[2]
    stop = len(sys.argv) > 3 and sys.argv[3] == "stop"
    atlas = AtlasTransformersCallback(project="hf", run_name="ddp", collector=address)
    callbacks = [StopAt(atlas, address, 3), atlas] if stop else [atlas]
    trainer = hf_trainer(callbacks, os.path.join(out, "hf"), epochs=2, n=64, eval_strategy="no",
                         ddp_backend="gloo")
    trainer.train()
    rank = trainer.args.process_index
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"run_id": atlas.run_id, "global_step": trainer.state.global_step,
                   "world_size": trainer.args.world_size}, f)


if __name__ == "__main__":
    main()
