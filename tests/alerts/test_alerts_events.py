"""Run events: failed, stopped or paused by the on_critical policy, stalled; completed only when asked for."""
from __future__ import annotations

import math

from atlas_proto.v1 import telemetry_pb2 as tpb

from alert_support import Receiver, Trainer, alert_collector, wait_for

ALL = ["issue", "alert", "failed", "stopped", "paused", "stalled", "completed"]


def _events(rx: Receiver) -> list[tuple[str, str]]:
    return [(b["event"], b["run"]["name"] if b["run"] else "") for b in rx.bodies()]


def test_failed_and_completed_runs(db_url: str) -> None:
    with Receiver() as default, Receiver() as everything, alert_collector(db_url, [
            {"name": "default", "kind": "webhook", "url": default.url()},
            {"name": "all", "kind": "webhook", "url": everything.url(), "events": ALL}]) as c:
        ok = Trainer(c.address).start(name="fine")
        ok.epoch(0, 1.0)
        ok.end(tpb.RUN_STATUS_COMPLETED)
        bad = Trainer(c.address).start(name="crash")
        m = bad._msg()
        m.run_end.status, m.run_end.error_type, m.run_end.error_message = tpb.RUN_STATUS_FAILED, "RuntimeError", "boom"
        m.run_end.ended_at.GetCurrentTime()
        bad.outbox.put(m)
        ok.wait_acked()
        bad.wait_acked()
        wait_for(lambda: len(everything.ok()) == 2 and default.ok(), 15, "the run events")
        assert sorted(_events(everything)) == [("completed", "fine"), ("failed", "crash")]
        assert _events(default) == [("failed", "crash")]  # completed is off by default
        [failed] = [b for b in default.bodies()]
        assert failed["severity"] == "critical" and failed["explanation"] == "RuntimeError: boom"
        ok.finish()
        bad.finish()


def test_policy_stop_and_a_stalled_run(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    with Receiver() as rx, alert_collector(db, [{"name": "ops", "kind": "webhook", "url": rx.url()}],
                                           config={"stale_after_s": 1.0}) as c:
        stopped = Trainer(c.address).start(name="policy", on_critical=tpb.ON_CRITICAL_STOP)
        stopped.steps([math.nan])
        stopped.wait_command()
        silent = Trainer(c.address).start(name="silent")
        silent.epoch(0, 1.0)
        silent.wait_acked()
        wait_for(lambda: {("stopped", "policy"), ("stalled", "silent")} <= set(_events(rx)), 20,
                 "stopped and stalled")
        events = _events(rx)
        assert ("issue", "policy") in events
        assert len(events) == len(set(events)), events  # each event once
        [stop] = [b for b in rx.bodies() if b["event"] == "stopped"]
        assert stop["check"] == "nan_loss" and stop["explanation"].startswith("nan_loss: ")
        stopped.finish()
        silent.finish()


def test_a_malformed_alert_is_refused_alone_and_not_sent(tmp_path) -> None:
    from alert_support import rows
    from atlas_collector import _schema as s

    db = f"sqlite:///{tmp_path / 'a.db'}"
    with Receiver() as rx, alert_collector(db, [{"name": "ops", "kind": "webhook", "url": rx.url()}]) as c:
        trainer = Trainer(c.address).start(name="raw")
        for title, level in (("bad level", "loud"), ("", "warning"), ("good", "error")):
            m = trainer._msg()
            m.alert.title, m.alert.level, m.alert.text = title, level, "x\x00y"
            trainer.outbox.put(m)
        trainer.wait_acked()
        def alerts() -> list[tuple[str, str]]:
            # (the two refusals are kept with the run as ERROR log lines, never silent: an `error_logs` issue may
            # be notified beside them, as an issue, not as an alert)
            return [(b["title"], b["explanation"]) for b in rx.bodies() if b["event"] == "alert"]

        wait_for(alerts, 10, "the good alert")
        assert alerts() == [("good", "x\ufffdy")]
        refused = [r["message"] for r in rows(c.store, s.logs, run_id=trainer.run_id) if r["kind"] == "refused"]
        assert len(refused) == 2
        assert "Alert.level must be one of info, warning, error, got 'loud'" in refused[0]
        assert "Alert.title is empty" in refused[1]
        trainer.finish()
