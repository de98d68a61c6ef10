"""The diagnostics driver and the on_critical policy, over real gRPC and both real stores."""
from __future__ import annotations

import math

import pytest

from atlas_collector import load_config, run_server
from atlas_collector import _schema as s
from atlas_proto.v1 import query_pb2 as qpb
from atlas_proto.v1 import telemetry_pb2 as tpb

from coll_support import Trainer, query, rows, wait_for

OVERFIT = [(2.0, 2.1), (1.5, 1.6), (1.0, 1.2), (0.8, 1.3), (0.6, 1.45), (0.5, 1.6), (0.4, 1.8)]


@pytest.mark.parametrize(("policy", "kind"), [(tpb.ON_CRITICAL_STOP, tpb.COMMAND_KIND_STOP),
                                              (tpb.ON_CRITICAL_PAUSE, tpb.COMMAND_KIND_PAUSE)], ids=["stop", "pause"])
def test_nan_loss_within_a_batch_applies_on_critical(db_url: str, policy: int, kind: int) -> None:
    with run_server(db=db_url) as collector:
        trainer = Trainer(collector.address).start(name="nan", on_critical=policy)
        trainer.steps([1.0, 0.9, 0.8])
        trainer.steps([0.7, math.nan], first_step=4)  # no epoch summary yet: judged on the step batch
        cmd = trainer.wait_command()
        assert (cmd.kind, cmd.issue_check, cmd.sender) == (kind, "nan_loss", "policy")
        assert cmd.reason.startswith("nan_loss: ")
        [row] = rows(collector.store, s.commands, run_id=trainer.run_id)
        assert (row["issue_check"], row["sender"], row["id"]) == ("nan_loss", "policy", cmd.command_id)

        [issue] = [i for i in rows(collector.store, s.issues, run_id=trainer.run_id) if i["check_id"] == "nan_loss"]
        assert issue["severity"] == "critical" and issue["active"] and issue["step"] == 5
        assert rows(collector.store, s.runs, id=trainer.run_id)[0]["health_score"] <= 80

        trainer.steps([math.nan], first_step=6)  # the same issue again: no second command
        trainer.wait_acked()
        collector.collector.driver.settle(trainer.run_id)
        assert len(rows(collector.store, s.commands, run_id=trainer.run_id)) == 1
        trainer.finish()


def test_warn_records_the_issue_and_sends_nothing(tmp_path) -> None:
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        trainer = Trainer(collector.address).start(name="warned")  # on_critical WARN
        trainer.steps([1.0, math.inf])
        trainer.wait_acked()
        issues = query(collector.address).ListIssues(qpb.IssuesRequest(run="warned", severity="critical"), timeout=10)
        assert [i.check for i in issues.issues] == ["nan_loss"]
        assert trainer.commands() == [] and rows(collector.store, s.commands) == []
        trainer.finish()


def test_an_issue_that_persists_across_epochs_is_one_row_with_first_and_last_epoch(db_url: str) -> None:
    with run_server(db=db_url) as collector:
        trainer = Trainer(collector.address).start(name="overfit")
        for n, (train, val) in enumerate(OVERFIT):
            trainer.epoch(n, train, val_loss=val)
        trainer.wait_acked()
        collector.collector.driver.settle(trainer.run_id)
        overfit = rows(collector.store, s.issues, run_id=trainer.run_id, check_id="overfitting")
        assert len(overfit) == 1
        assert (overfit[0]["first_seen_epoch"], overfit[0]["last_seen_epoch"], overfit[0]["active"]) == (4, 6, True)
        diag = max(rows(collector.store, s.diagnostic_runs, run_id=trainer.run_id), key=lambda d: d["id"])
        run = rows(collector.store, s.runs, id=trainer.run_id)[0]
        # "rebuild": the stream's holder bookkeeping made the driver drop its engine (it may have streamed to another
        # replica) and the next update re-read the run: under load that can come after the last epoch's update
        assert (diag["epoch"], diag["health_score"]) == (6, run["health_score"])
        assert diag["trigger"] in ("epoch", "rebuild"), diag["trigger"]
        assert diag["summary"]["severity_breakdown"]["warning"] >= 1
        trainer.finish()


def test_per_run_thresholds_and_collector_thresholds(tmp_path) -> None:
    config_file = tmp_path / "collector.toml"
    config_file.write_text("[diagnostics]\nloss_explosion_ratio = 1.4\n")
    config = load_config({"config": str(config_file), "db": f"sqlite:///{tmp_path / 'c.db'}",
                          "listen": "127.0.0.1:0"}, env={})
    with run_server(config) as collector:
        strict = Trainer(collector.address).start(name="strict", thresholds={"loss_explosion_ratio": 1.2,
                                                                              "loss_divergence_epochs": 5})
        default = Trainer(collector.address).start(name="collector-default")
        for t in (strict, default):
            t.epoch(0, 1.0)
            t.epoch(1, 1.3)  # x1.3: above the run's 1.2, below the collector's 1.4
            t.wait_acked()
        checks = lambda name: {i.check for i in query(collector.address).ListIssues(  # noqa: E731
            qpb.IssuesRequest(run=name), timeout=10).issues}
        assert "loss_explosion" in checks("strict")
        assert "loss_explosion" not in checks("collector-default")
        default.epoch(2, 2.0)  # x1.54 > 1.4 (the default would need x2)
        default.wait_acked()
        assert "loss_explosion" in checks("collector-default")
        # the run's overrides are part of its detail (`atlas runs show`), the collector's own are not
        detail = query(collector.address).GetRun(qpb.RunRef(run="strict"), timeout=10)
        assert dict(detail.thresholds) == {"loss_explosion_ratio": 1.2, "loss_divergence_epochs": 5}
        assert not query(collector.address).GetRun(qpb.RunRef(run="collector-default"), timeout=10).HasField(
            "thresholds")
        strict.finish()
        default.finish()


def test_a_restarted_collector_rebuilds_the_run_and_acts_once(db_url: str) -> None:
    with run_server(db=db_url) as first:
        trainer = Trainer(first.address).start(name="moved", on_critical=tpb.ON_CRITICAL_STOP)
        trainer.epoch(0, 1.0)
        trainer.steps([math.nan], first_step=11)
        trainer.wait_command()
        trainer.finish()
    with run_server(db=db_url) as second:  # the stream comes back to another collector process
        again = Trainer(second.address, trainer.run_id).start(name="moved", on_critical=tpb.ON_CRITICAL_STOP)
        again.steps([0.9], first_step=12)
        again.wait_acked()
        second.collector.driver.settle(trainer.run_id)
        commands = rows(second.store, s.commands, run_id=trainer.run_id)
        assert [c["issue_check"] for c in commands] == ["nan_loss"]  # the rebuilt engine re-found it: no repeat
        assert len(rows(second.store, s.issues, run_id=trainer.run_id, check_id="nan_loss")) == 1

        again.epoch(1, 9.0)  # x9 over epoch 0, which only the store remembers
        cmd = wait_for(lambda: [c for c in again.commands() if c.issue_check == "loss_explosion"],
                       what="STOP for loss_explosion")[0]
        assert cmd.kind == tpb.COMMAND_KIND_STOP
        again.finish()


def test_a_cuda_run_whose_cpu_uses_most_of_the_energy_is_told_so(tmp_path) -> None:
    with run_server(db=f"sqlite:///{tmp_path / 'c.db'}") as collector:
        runs = {}
        for name, (cpu_kwh, gpu_kwh) in {"cpu-bound": (6e-5, 1e-5), "balanced": (2e-5, 6e-5)}.items():
            trainer = runs[name] = Trainer(collector.address).start(name=name, device="cuda")
            for n in range(2):
                m = trainer._msg()
                e = m.epoch_summary
                e.epoch, e.duration_seconds, e.global_step = n, 60.0, (n + 1) * 10
                e.loss.mean, e.loss.count = 1.0 - 0.1 * n, 10
                c = e.carbon
                c.epoch_cpu_energy_kwh, c.epoch_gpu_energy_kwh, c.epoch_ram_energy_kwh = cpu_kwh, gpu_kwh, 1e-6
                c.epoch_energy_kwh = cpu_kwh + gpu_kwh + 1e-6
                c.cumulative_energy_kwh = c.epoch_energy_kwh * (n + 1)
                c.epoch_co2_kg, c.cumulative_co2_kg, c.power_draw_watts = 1e-5, 1e-5 * (n + 1), 5.0
                trainer.outbox.put(m)
            trainer.wait_acked()
            collector.collector.driver.settle(trainer.run_id)
        checks = {name: {i.check for i in query(collector.address).ListIssues(qpb.IssuesRequest(run=name),
                                                                               timeout=10).issues} for name in runs}
        assert "cpu_dominant_training" in checks["cpu-bound"]
        assert "cpu_dominant_training" not in checks["balanced"]
        [issue] = [i for i in rows(collector.store, s.issues, run_id=runs["cpu-bound"].run_id)
                   if i["check_id"] == "cpu_dominant_training"]
        assert issue["metric_value"] == pytest.approx(6.0)
        for trainer in runs.values():
            trainer.finish()
