"""The collector's timer: silent runs become stale, heartbeats keep them alive, time-based checks fire."""
from __future__ import annotations

import time

from atlas_collector import run_server
from atlas_collector import _schema as s
from atlas_proto.v1 import query_pb2 as qpb

from coll_support import Trainer, query, rows, wait_for


def test_silent_run_goes_stale_heartbeats_keep_one_alive_and_data_revives(tmp_path) -> None:
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}", stale_after_s=0.6) as collector:
        silent = Trainer(collector.address).start(name="silent")
        beating = Trainer(collector.address).start(name="beating")
        for t in (silent, beating):
            t.steps([1.0])
            t.wait_acked()
        status = lambda t: rows(collector.store, s.runs, id=t.run_id)[0]["status"]  # noqa: E731
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            beating.heartbeat(paused=True)  # a paused trainer is alive, not stale
            time.sleep(0.1)
        assert status(silent) == "stale"
        assert status(beating) == "running"

        silent.steps([0.9], first_step=2)
        silent.wait_acked()
        assert status(silent) == "running"  # data again: the run goes on
        for t in (silent, beating):
            t.finish()


def test_stalled_training_fires_from_the_timer_and_clears_with_new_data(tmp_path) -> None:
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}", stale_after_s=0.4) as collector:
        trainer = Trainer(collector.address).start(name="stuck", thresholds={"stalled_seconds": 1.0})
        trainer.steps([1.0])
        trainer.wait_acked()

        def stalled(include_inactive: bool = False) -> list[qpb.Issue]:
            issues = query(collector.address).ListIssues(
                qpb.IssuesRequest(run="stuck", include_inactive=include_inactive), timeout=10).issues
            return [i for i in issues if i.check == "stalled_training"]

        assert stalled() == []
        [issue] = wait_for(stalled, timeout=6, what="stalled_training from the timer")
        assert issue.severity == "warning" and issue.metric_value > 1.0

        trainer.steps([0.9], first_step=2)
        trainer.wait_acked()
        wait_for(lambda: not stalled(), timeout=6, what="stalled_training to clear")
        [cleared] = stalled(include_inactive=True)
        assert not cleared.active
        trainer.finish()
