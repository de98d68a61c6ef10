"""Delivery survives a collector killed with SIGKILL; a slow receiver never slows ingest or acks."""
from __future__ import annotations

import math
import pathlib
import signal
import sys

import sqlalchemy as sa

from atlas_collector import _schema as s

from alert_support import Receiver, Trainer, alert_collector, wait_for

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from conftest import free_port, start_collector_process  # noqa: E402
from _wait import holds_for


def _rows(db: str) -> list[dict]:
    engine = sa.create_engine(db)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(s.notifications).order_by(s.notifications.c.id))]
    finally:
        engine.dispose()


def test_a_pending_notification_is_delivered_once_after_kill_9(db_url: str, tmp_path) -> None:
    port = free_port()
    db = db_url
    config = tmp_path / "atlas.toml"
    config.write_text(f'[alerts]\nretry_base_s = 0.3\nretry_max_s = 1\n[[alerts.routes]]\nname = "ops"\n'
                      f'kind = "webhook"\nurl = "http://127.0.0.1:{port}/hook"\nsecret = "k"\n')
    first = start_collector_process(db, "--config", str(config))
    try:
        trainer = Trainer(first.address).start(name="killed")
        trainer.steps([math.nan])
        trainer.wait_acked()
        wait_for(lambda: _rows(db) and _rows(db)[0]["attempts"] >= 2, 20, "failed attempts while the receiver is down")
        assert _rows(db)[0]["state"] == "pending"
        assert "cannot reach http://127.0.0.1:" in _rows(db)[0]["last_error"]
        trainer.finish()
    finally:
        first.stop(signal.SIGKILL)
    with Receiver(port=port) as rx:
        second = start_collector_process(db, "--config", str(config))
        try:
            wait_for(lambda: rx.ok(), 20, "the delivery after the restart")
            holds_for(lambda: len(rx.ok()) == 1, 1.5, "delivered once after the restart")
            [body] = rx.bodies()
            assert (body["event"], body["check"], body["run"]["name"]) == ("issue", "nan_loss", "killed")
            wait_for(lambda: _rows(db)[0]["state"] == "sent", 10, "the row marked sent")
            [row] = _rows(db)
            assert row["attempts"] >= 3
        finally:
            second.stop()


def test_a_slow_receiver_never_slows_acks(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    with Receiver(held=True) as rx, alert_collector(db, [{"name": "slow", "kind": "webhook", "url": rx.url(),
                                                         "timeout_s": 30}]) as c:
        trainer = Trainer(c.address).start(name="slow-receiver")
        trainer.steps([math.nan])
        trainer.wait_acked()
        wait_for(lambda: rx.waiting == 1, 10, "the send in flight, held by the receiver")
        for epoch in range(20):
            trainer.epoch(epoch, 1.0)
            trainer.wait_acked(timeout=20)
        assert rx.waiting == 1 and not rx.ok(), "the 20 acks came while the receiver still held the send"
        rx.release.set()
        wait_for(lambda: rx.ok(), 15, "the slow delivery")
        trainer.finish()
