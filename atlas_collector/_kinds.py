"""Message kinds: what a `ClientMessage` carries (the name of its `body` field), as every collector module names it.

`Kind` is a str enum: a member equals its spelling (`Kind.STEP_BATCH == "step_batch"`, same hash) and prints as
it (`str`, `%s`, f-strings), so log lines, `Outcome.kind` and anything compared with the old strings keep their
spelling. `validate` hands the kind to the writer; the writer, the diagnostics driver, the OTel exporter and the
alerts read it from `Outcome.kind`. A body field added to the proto needs a member here (a test compares the two)."""
from __future__ import annotations

import enum

from atlas_proto.v1 import telemetry_pb2 as tpb


class Kind(str, enum.Enum):
    RUN_START = "run_start"
    MODEL_INFO = "model_info"
    STEP_BATCH = "step_batch"
    EPOCH_SUMMARY = "epoch_summary"
    LOG_BATCH = "log_batch"
    RUN_END = "run_end"
    HEARTBEAT = "heartbeat"
    COMMAND_ACK = "command_ack"
    DROPPED = "dropped"
    METRIC_BATCH = "metric_batch"
    ALERT = "alert"
    # Not a body: the `Outcome.kind` of a sequenced message whose body was refused (recorded with the run, acked).
    REFUSED = "refused"

    def __str__(self) -> str:  # the spelling, not "Kind.STEP_BATCH" (Python 3.11 formats mixed-in enums by name)
        return self.value

    @classmethod
    def of(cls, msg: tpb.ClientMessage) -> "Kind | None":
        """The message's kind; None for no body (or one this collector does not know)."""
        return _BY_BODY.get(msg.WhichOneof("body") or "")


BODY_KINDS = tuple(k for k in Kind if k is not Kind.REFUSED)  # in the order the refusal message lists them
_BY_BODY = {k.value: k for k in BODY_KINDS}  # a dict lookup: `Kind(name)` costs ten times more on the hot path

UNSEQUENCED = frozenset({Kind.RUN_START, Kind.HEARTBEAT})  # no sequence number, no ack
# What the diagnostics read from the store after a commit (the driver is told of these, not of the rest).
DIAGNOSED = frozenset({Kind.RUN_START, Kind.MODEL_INFO, Kind.STEP_BATCH, Kind.EPOCH_SUMMARY, Kind.LOG_BATCH,
                       Kind.RUN_END})
