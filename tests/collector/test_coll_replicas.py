"""Scale-out: two real collector processes on one PostgreSQL serve one fleet."""
from __future__ import annotations

from atlas_collector import Store
from atlas_collector import _schema as s
from atlas_proto.v1 import telemetry_pb2 as tpb

from coll_support import Trainer, rows, send, wait_for


def _fresh(url: str) -> str:
    from conftest import reset_pg

    return reset_pg(url)


def test_a_stop_sent_through_replica_b_reaches_the_trainer_on_replica_a(pg_database: str) -> None:
    from conftest import start_collector_process

    url = _fresh(pg_database)
    a = start_collector_process(url)
    b = start_collector_process(url)
    try:
        trainer = Trainer(a.address).start(name="fleet")
        trainer.epoch(0, 1.0)
        trainer.wait_acked()
        store = Store(url)
        wait_for(lambda: rows(store, s.run_streams, run_id=trainer.run_id), what="A to note it holds the stream")

        resp = send(b.address, "fleet", tpb.COMMAND_KIND_STOP, reason="from b")
        assert resp.delivered and resp.run_id == trainer.run_id
        cmd = trainer.wait_command(timeout=10)
        assert (cmd.command_id, cmd.kind, cmd.reason) == (resp.command_id, tpb.COMMAND_KIND_STOP, "from b")

        trainer.wait_acked(trainer.ack_command(cmd))
        trainer.wait_acked(trainer.end(tpb.RUN_STATUS_STOPPED))
        trainer.finish()
        [row] = rows(store, s.commands, run_id=trainer.run_id)
        assert row["delivered_at"] is not None
        assert rows(store, s.runs, id=trainer.run_id)[0]["status"] == "stopped"
        wait_for(lambda: not rows(store, s.run_streams, run_id=trainer.run_id), what="A to release the stream")

        # A run whose trainer is connected nowhere: the command is kept, and reported as not delivered.
        idle = Trainer(b.address).start(name="idle")
        idle.steps([1.0])
        idle.wait_acked()
        wait_for(lambda: rows(store, s.run_streams, run_id=idle.run_id), what="B to note it holds the stream")
        idle.finish()
        wait_for(lambda: not rows(store, s.run_streams, run_id=idle.run_id), what="B to release the stream")
        assert not send(a.address, "idle", tpb.COMMAND_KIND_PAUSE).delivered
        store.close()
    finally:
        assert a.stop() == 0 and b.stop() == 0
