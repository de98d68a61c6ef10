"""Commands (stop, pause, resume) from a client to a trainer stream, on both stores, over real gRPC."""
from __future__ import annotations

import grpc
import pytest

from atlas_collector import run_server
from atlas_collector import _schema as s
from atlas_proto.v1 import telemetry_pb2 as tpb

from coll_support import Trainer, rows, send, wait_for


def test_stop_reaches_the_trainer_and_its_ack_marks_it_delivered(db_url: str) -> None:
    with run_server(db=db_url) as collector:
        trainer = Trainer(collector.address).start(name="victim")
        trainer.steps([1.0, 0.9])
        trainer.wait_acked()

        resp = send(collector.address, "victim", tpb.COMMAND_KIND_STOP, reason="enough", sender="cli:alice")
        assert resp.delivered and resp.run_id == trainer.run_id and resp.issued_at.seconds > 0

        cmd = trainer.wait_command()
        assert (cmd.command_id, cmd.kind, cmd.reason, cmd.sender, cmd.issue_check) == (
            resp.command_id, tpb.COMMAND_KIND_STOP, "enough", "cli:alice", "")
        [row] = rows(collector.store, s.commands, run_id=trainer.run_id)
        assert row["delivered_at"] is None and row["kind"] == "stop"

        trainer.wait_acked(trainer.ack_command(cmd, step=12))
        trainer.wait_acked(trainer.end(tpb.RUN_STATUS_STOPPED))
        trainer.finish()
        [row] = rows(collector.store, s.commands, run_id=trainer.run_id)
        assert row["delivered_at"] is not None and row["delivered_step"] == 12
        assert row["sender"] == "cli:alice" and row["reason"] == "enough"
        assert rows(collector.store, s.runs, id=trainer.run_id)[0]["status"] == "stopped"


def test_pause_and_resume_acks_move_the_run_status(tmp_path) -> None:
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        trainer = Trainer(collector.address).start(name="pausable")
        trainer.steps([1.0])
        trainer.wait_acked()
        status = lambda: rows(collector.store, s.runs, id=trainer.run_id)[0]["status"]  # noqa: E731

        send(collector.address, trainer.run_id[:8], tpb.COMMAND_KIND_PAUSE, reason="look at it")
        trainer.wait_acked(trainer.ack_command(trainer.wait_command()))
        assert status() == "paused"

        send(collector.address, "latest", tpb.COMMAND_KIND_RESUME)
        trainer.wait_acked(trainer.ack_command(trainer.wait_command(count=2)))
        assert status() == "running"
        assert [c.kind for c in trainer.commands()] == [tpb.COMMAND_KIND_PAUSE, tpb.COMMAND_KIND_RESUME]
        trainer.finish()


def test_every_stream_of_the_run_gets_the_command_and_other_runs_none(tmp_path) -> None:
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        rank0 = Trainer(collector.address).start(name="ddp")
        rank1 = Trainer(collector.address, rank0.run_id, rank=1).start(name="ddp")
        other = Trainer(collector.address).start(name="bystander")
        for t in (rank0, rank1, other):
            t.steps([1.0])
            t.wait_acked()
        send(collector.address, rank0.run_id, tpb.COMMAND_KIND_STOP)
        assert rank0.wait_command().command_id == rank1.wait_command().command_id
        other.steps([0.5])
        other.wait_acked()
        assert other.commands() == []
        for t in (rank0, rank1, other):
            t.finish()


def test_a_command_with_no_stream_is_kept_and_sent_when_the_run_reconnects(db_url: str) -> None:
    with run_server(db=db_url) as collector:
        first = Trainer(collector.address).start(name="flaky")
        first.steps([1.0])
        first.wait_acked()
        first.finish()
        wait_for(lambda: not collector.collector.hub.holds(first.run_id), what="stream to close")

        resp = send(collector.address, "flaky", tpb.COMMAND_KIND_PAUSE, reason="while you were away")
        assert not resp.delivered
        [row] = rows(collector.store, s.commands, run_id=first.run_id)
        assert row["delivered_at"] is None

        again = Trainer(collector.address, first.run_id).start(name="flaky")  # a new process of the same run
        cmd = again.wait_command()
        assert (cmd.command_id, cmd.kind, cmd.reason) == (resp.command_id, tpb.COMMAND_KIND_PAUSE,
                                                           "while you were away")
        again.wait_acked(again.ack_command(cmd))
        again.finish()
        assert rows(collector.store, s.commands, run_id=first.run_id)[0]["delivered_at"] is not None


def test_commands_to_ended_or_unknown_runs_are_refused(tmp_path) -> None:
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        trainer = Trainer(collector.address).start(name="done")
        trainer.wait_acked(trainer.end())
        trainer.finish()
        with pytest.raises(grpc.RpcError) as ended:
            send(collector.address, "done", tpb.COMMAND_KIND_STOP)
        assert ended.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "completed" in ended.value.details()
        with pytest.raises(grpc.RpcError) as unknown:
            send(collector.address, "no-such-run", tpb.COMMAND_KIND_STOP)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as nokind:
            send(collector.address, "latest", tpb.COMMAND_KIND_UNSPECIFIED)
        assert nokind.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert rows(collector.store, s.commands) == []
