"""Issues reach a generic webhook: one signed message per opening, the documented body, retries, summaries."""
from __future__ import annotations

import math
import time

from atlas_collector import _schema as s

from alert_support import Receiver, Trainer, alert_collector, notifications, rows, verify, wait_for
from _wait import holds_for

SECRET = "s3cret-hmac-key"
BODY_KEYS = {"delivery_id", "event", "severity", "check", "title", "explanation", "evidence", "fix", "insight", "run",
             "url", "time"}


def test_issue_opening_sends_one_signed_webhook(db_url: str) -> None:
    with Receiver() as rx, alert_collector(db_url, [{"name": "ops", "kind": "webhook", "url": rx.url(),
                                                     "secret": SECRET}]) as collector:
        trainer = Trainer(collector.address).start(project="vision", name="resnet-nan")
        trainer.steps([0.9, 0.8, math.nan], first_step=1)
        trainer.wait_acked()
        wait_for(lambda: rx.ok(), 15, "the webhook")
        [request] = rx.ok()
        assert verify(SECRET, request), "the X-Atlas-Signature does not verify"
        assert not verify("another-secret", request)
        body = rx.bodies()[0]
        assert set(body) == BODY_KEYS
        assert (body["event"], body["check"], body["severity"]) == ("issue", "nan_loss", "critical")
        assert body["run"]["id"] == trainer.run_id
        assert (body["run"]["name"], body["run"]["project"]) == ("resnet-nan", "vision")
        assert body["title"] and body["explanation"] and body["fix"]
        assert body["insight"], "no LLM configured: the insight is the evidence summary"
        assert request["headers"]["x-atlas-event"] == "issue"
        assert request["headers"]["x-atlas-delivery"] == str(body["delivery_id"])
        # the same issue again: no second message; the outbox row says sent
        trainer.steps([math.nan], first_step=4)
        trainer.wait_acked()
        collector.collector.driver.settle(trainer.run_id)
        holds_for(lambda: len(rx.ok()) == 1, 0.5, "no second message for the same issue")
        wait_for(lambda: notifications(collector.store)[0]["state"] == "sent", 10, "the row marked sent")
        [row] = notifications(collector.store)
        assert (row["state"], row["attempts"], row["route"], row["event"]) == ("sent", 1, "ops", "issue")
        [issue] = [i for i in rows(collector.store, s.issues, run_id=trainer.run_id) if i["check_id"] == "nan_loss"]
        assert issue["insight"] == body["insight"]
        trainer.finish()


def test_receiver_errors_are_retried_with_backoff_then_delivered(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    with Receiver(statuses=(500, 503)) as rx, alert_collector(db, [{"name": "ops", "kind": "webhook",
                                                                  "url": rx.url("/hook?token=qs-secret")}]) as c:
        trainer = Trainer(c.address).start()
        trainer.steps([math.nan])
        trainer.wait_acked()
        wait_for(lambda: rx.ok(), 20, "the third attempt")
        assert [r["status"] for r in rx.requests] == [500, 503, 200]
        wait_for(lambda: notifications(c.store)[0]["state"] == "sent", 10, "the row marked sent")
        [row] = notifications(c.store)
        assert (row["state"], row["attempts"]) == ("sent", 3)
        trainer.finish()


def test_unreachable_endpoint_is_retried_reported_and_never_fatal(tmp_path, caplog) -> None:
    import logging
    import socket

    caplog.set_level(logging.DEBUG, logger="atlas_collector")

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://user:pw-secret@127.0.0.1:{port}/hooks/T000/B000/path-secret?key=qs-secret"
    db = f"sqlite:///{tmp_path / 'a.db'}"
    with alert_collector(db, [{"name": "down", "kind": "webhook", "url": url}], max_attempts=3) as c:
        trainer = Trainer(c.address).start()
        trainer.steps([math.nan])
        trainer.wait_acked()
        wait_for(lambda: notifications(c.store) and notifications(c.store)[0]["state"] == "failed", 20,
                 "three failed attempts")
        [row] = notifications(c.store)
        assert row["attempts"] == 3
        assert "cannot reach http://127.0.0.1:" in row["last_error"]
        for secret in ("pw-secret", "path-secret", "qs-secret", "T000"):
            assert secret not in row["last_error"]
        # the collector goes on: more data is acked
        trainer.epoch(0, 1.0)
        trainer.wait_acked()
        trainer.finish()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "route down (webhook) did not take notification" in logged and "gave up" in logged
    for secret in ("pw-secret", "path-secret", "qs-secret", "T000"):
        assert secret not in logged, f"{secret} in the log"


def test_many_at_once_become_one_summary(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    with Receiver() as rx, alert_collector(db, [{"name": "ops", "kind": "webhook", "url": rx.url()}],
                                           summary_after=3) as c:
        c.collector.alerts.dispatcher.shutdown()  # hold sending while six runs fail at once
        trainers = [Trainer(c.address).start(name=f"run-{i}") for i in range(6)]
        for t in trainers:
            t.steps([math.nan])
        for t in trainers:
            t.wait_acked()
        c.collector.driver.settle(None)
        wait_for(lambda: len(notifications(c.store)) == 6, 10, "six notifications")
        from atlas_collector._alerts_dispatch import Dispatcher

        c.collector.alerts.dispatcher = Dispatcher(c.collector.alerts)
        c.collector.alerts.wake()
        wait_for(lambda: rx.ok(), 10, "the summary")
        holds_for(lambda: len(rx.ok()) == 1, 0.5, "one summary, not six messages")
        [body] = rx.bodies()
        assert body["event"] == "summary" and len(body["items"]) == 6
        assert "6 alerts" in body["title"]
        wait_for(lambda: {r["state"] for r in notifications(c.store)} == {"summarized"}, 10, "rows summarized")
        for t in trainers:
            t.finish()


def test_the_message_links_to_the_run_page_of_the_web_ui(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    with Receiver() as rx, alert_collector(db, [{"name": "ops", "kind": "webhook", "url": rx.url()}],
                                           config={"http": "127.0.0.1:0"}) as c:
        base = c.collector.http_url.rstrip("/")
        assert base.startswith("http://127.0.0.1:")
        trainer = Trainer(c.address).start()
        trainer.steps([math.nan])
        trainer.wait_acked()
        wait_for(lambda: rx.ok(), 15, "the webhook")
        body = rx.bodies()[0]
        assert body["url"] == body["run"]["url"] == f"{base}/runs/{trainer.run_id}"
        trainer.finish()


def test_a_route_over_its_rate_limit_waits_for_the_next_minute(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    with Receiver() as rx, alert_collector(db, [{"name": "ops", "kind": "webhook", "url": rx.url(),
                                                 "max_per_minute": 2}], summary_after=100) as c:
        first = [Trainer(c.address).start(name=f"first-{i}") for i in range(2)]
        for t in first:
            t.steps([math.nan])
            t.wait_acked()
            wait_for(lambda: len(rx.ok()) == first.index(t) + 1, 10, "one message")
        late = Trainer(c.address).start(name="late")
        late.steps([math.nan])
        late.wait_acked()
        c.collector.driver.settle(late.run_id)
        wait_for(lambda: len(notifications(c.store)) == 3, 10, "the third notification")
        holds_for(lambda: len(rx.ok()) == 2, 1.0, "no third message within the minute")
        [held] = [n for n in notifications(c.store) if n["state"] == "pending"]
        assert held["attempts"] == 0 and held["next_attempt_at"] > time.time() + 50
        for t in (*first, late):
            t.finish()
