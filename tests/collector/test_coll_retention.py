"""Retention of step samples (count per run, age) and run deletion, on both stores."""
from __future__ import annotations

import math
import time

import sqlalchemy as sa

from atlas_collector import run_server
from atlas_collector import _schema as s
from atlas_collector import _steps
from atlas_proto.v1 import query_pb2 as qpb
from atlas_proto.v1 import telemetry_pb2 as tpb

from coll_support import Trainer, query, rows, send, wait_for


def _count(store, table, run_id: str) -> int:
    with store.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(table.c.run_id == run_id)).scalar()


def _stored_steps(store, run_id: str) -> int:
    with store.connect() as conn:
        return _steps.count(conn, run_id)


def test_the_timer_keeps_the_newest_steps_per_run_and_everything_else(db_url: str) -> None:
    with run_server(db=db_url, retention_steps_per_run=50, stale_after_s=0.4) as collector:
        trainer = Trainer(collector.address).start(name="long")
        for chunk in range(4):
            trainer.steps([1.0 - 0.001 * i for i in range(100)], first_step=chunk * 100 + 1)
        trainer.epoch(0, 0.9)
        trainer.steps([math.nan], first_step=401)
        trainer.wait_acked()
        send(collector.address, "long", tpb.COMMAND_KIND_PAUSE)
        wait_for(lambda: _stored_steps(collector.store, trainer.run_id) == 50, timeout=10,
                 what="retention to trim the run to 50 step samples")
        steps = query(collector.address).GetSteps(qpb.StepsRequest(run="long"), timeout=10).samples
        assert [x.step for x in steps] == list(range(352, 402))  # the newest 50
        assert _count(collector.store, s.epochs, trainer.run_id) == 1
        assert _count(collector.store, s.issues, trainer.run_id) >= 1
        assert _count(collector.store, s.commands, trainer.run_id) == 1
        trainer.finish()


def test_age_retention_deletes_old_samples_only(tmp_path) -> None:
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        trainer = Trainer(collector.address).start(name="aged")
        m = trainer._msg()
        for step, age_days in ((1, 10.0), (2, 3.0), (3, 0.0)):
            x = m.step_batch.samples.add(step=step, epoch=0, loss=1.0)
            x.time.FromNanoseconds(int((time.time() - age_days * 86400) * 1e9))
        trainer.outbox.put(m)
        trainer.wait_acked()
        from atlas_collector._retention import apply_retention

        with collector.store.begin() as conn:
            assert apply_retention(conn, days=7.0, now=time.time()) == 1
        with collector.store.connect() as conn:
            assert [r["step"] for r in collector.store.steps(conn, trainer.run_id)] == [2, 3]
            assert _steps.count(conn, trainer.run_id) == 2
        trainer.finish()


def test_deleting_a_run_deletes_all_of_it(db_url: str) -> None:
    with run_server(db=db_url) as collector:
        doomed = Trainer(collector.address).start(name="doomed")
        kept = Trainer(collector.address).start(name="kept")
        for t in (doomed, kept):
            t.steps([1.0, math.nan])
            t.epoch(0, 1.0)
            t.wait_acked()
        send(collector.address, "doomed", tpb.COMMAND_KIND_STOP)
        send(collector.address, "kept", tpb.COMMAND_KIND_PAUSE)
        collector.collector.driver.settle()
        doomed.finish()
        assert query(collector.address).DeleteRun(qpb.RunRef(run="doomed"), timeout=10).id == doomed.run_id
        for table in (s.runs, s.step_batches, s.epochs, s.issues, s.diagnostic_runs, s.commands, s.ingest_cursors):
            key = "id" if table is s.runs else "run_id"
            assert rows(collector.store, table, **{key: doomed.run_id}) == [], table.name
            assert rows(collector.store, table, **{key: kept.run_id}) != [], table.name
        kept.finish()
