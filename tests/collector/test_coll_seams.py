"""The collector's named seams: message kinds match the wire contract, the `on_critical` decision table, the
step samples a commit hands to the diagnostics driver."""
from __future__ import annotations

import math

import pytest

from atlas_diagnostics import Issue
from atlas_proto.v1 import telemetry_pb2 as tpb

from atlas_collector._driver import _fresh_steps, _RunDiag, _thin_batches
from atlas_collector._kinds import BODY_KINDS, Kind
from atlas_collector._policy import decide, reason
from atlas_collector._steps import CommittedSteps


def test_every_body_of_a_client_message_has_a_kind_and_nothing_else_does() -> None:
    bodies = {f.name for f in tpb.ClientMessage.DESCRIPTOR.oneofs_by_name["body"].fields}
    assert {k.value for k in BODY_KINDS} == bodies
    msg = tpb.ClientMessage(step_batch=tpb.StepBatch())
    assert Kind.of(msg) is Kind.STEP_BATCH
    assert Kind.of(tpb.ClientMessage()) is None


def test_a_kind_keeps_its_spelling_in_logs_and_comparisons() -> None:
    kind = Kind.EPOCH_SUMMARY
    assert kind == "epoch_summary" and {"epoch_summary": 1}[kind] == 1
    assert f"{kind}" == str(kind) == "%s" % kind == "epoch_summary"


@pytest.mark.parametrize(("on_critical", "status", "command"), [
    ("warn", "running", None),
    ("pause", "running", "pause"),
    ("stop", "running", "stop"),
    ("stop", "stale", "stop"),
    ("pause", "paused", None),  # paused already: not paused again
    ("stop", "paused", "stop"),
    ("stop", "stopped", "stop"),  # the trainer's fast path stopped it: the command is still recorded
    ("pause", "stopped", "pause"),
    ("stop", "completed", None),
    ("pause", "failed", None),
])
def test_on_critical_decides_the_command_from_the_policy_and_the_run_status(on_critical: str, status: str,
                                                                            command: str | None) -> None:
    assert decide(on_critical, status) == command


def test_the_command_reason_names_the_check_its_title_and_description() -> None:
    def issue(description: str) -> Issue:
        return Issue(check="nan_loss", severity="critical", category="loss", title="Loss is NaN",
                     description=description, suggestion="")

    assert reason(issue("at 12")) == "nan_loss: Loss is NaN — at 12"
    assert reason(issue("")) == "nan_loss: Loss is NaN"


def _batch(rank: int, steps: range, **fields: float) -> CommittedSteps:
    return CommittedSteps(rank, [tpb.StepSample(step=s, epoch=0, **fields) for s in steps], max(steps))


def test_step_batches_held_past_the_buffer_are_thinned_in_order_keeping_ranks_and_notable_steps() -> None:
    batches = [_batch(0, range(0, 1000), loss=1.0), _batch(1, range(0, 1000), loss=1.0),
               _batch(0, range(1000, 2000), loss=1.0), _batch(1, range(1000, 2000), loss=1.0)]
    batches[2].samples[500].loss = math.nan
    thinned = _thin_batches(batches, 400)
    pairs = [(b.rank, x.step) for b in thinned for x in b.samples]
    assert 400 <= len(pairs) <= 410
    assert [b.rank for b in thinned] == [0, 1, 0, 1]
    assert (0, 1500) in pairs and pairs[-1] == (1, 1999)
    assert all(b.last_step == max(x.step for x in b.samples) for b in thinned)


def test_the_driver_feeds_only_steps_its_engine_has_not_seen_and_advances_per_rank() -> None:
    rd = _RunDiag(engine=None, on_critical="warn", status="running", step_hw={0: 9})  # type: ignore[arg-type]
    records = _fresh_steps(rd, [_batch(0, range(5, 15)), _batch(1, range(3, 4), loss=0.5, grad_norm=2.0)])
    assert [(r.rank, r.step) for r in records] == [(0, s) for s in range(10, 15)] + [(1, 3)]
    assert (records[0].loss, records[0].time) == (None, None)
    assert (records[-1].loss, records[-1].grad_norm) == (0.5, 2.0)
    assert rd.step_hw == {0: 14, 1: 3}
