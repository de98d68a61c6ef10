"""Alerts from training code (`alert()` on Observer, AtlasCallback, AtlasTracker) and a real training run whose bug
opens an issue: each reaches the receiver and `atlas issues`."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch

from atlas_callback import AtlasCallback, AtlasConfig, Observer

from alert_support import Receiver, alert_collector, notifications, verify, wait_for

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from _lit import TinyClassifier, loaders, trainer  # noqa: E402
from conftest import BIN, cli_env  # noqa: E402
from _wait import holds_for

QUIET = AtlasConfig(track_carbon=False, track_gpu=False, quiet=True)


def atlas(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "atlas"), "--collector", address, *args], capture_output=True, text=True,
                          env=cli_env(), timeout=60)


def test_observer_alert_reaches_the_route_and_atlas_issues(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    with Receiver() as rx, alert_collector(db, [{"name": "ops", "kind": "webhook", "url": rx.url()}]) as c:
        with Observer(project="plain", run_name="loop", collector=c.address, config=QUIET) as obs:
            for step in range(1, 6):
                obs.step(torch.tensor(1.0 / step))
            obs.alert("val loss spiked", "val_loss=3.2 at step 5", level="error")
            obs.alert("just so you know", level="info")  # below the route's min_severity (warning): not sent
            obs.flush()
        wait_for(lambda: rx.ok(), 15, "the alert at the receiver")
        [body] = rx.bodies()
        assert (body["event"], body["severity"], body["check"]) == ("alert", "critical", "user_alert")
        assert (body["title"], body["explanation"]) == ("val loss spiked", "val_loss=3.2 at step 5")
        assert body["run"]["id"] == obs.run_id and body["run"]["name"] == "loop"
        done = atlas(c.address, "issues", obs.run_id, "--json")
        assert done.returncode == 0, done.stderr
        alerts = [i for i in json.loads(done.stdout) if i["check"] == "user_alert"]
        assert sorted((i["title"], i["severity"]) for i in alerts) == [("just so you know", "info"),
                                                                      ("val loss spiked", "critical")]
        table = atlas(c.address, "issues", obs.run_id)
        assert "val loss spiked" in table.stdout


@pytest.mark.parametrize("kwargs, message", [
    ({"title": "x", "level": "loud"}, r"`level` must be one of 'info', 'warning', 'error', got 'loud'"),
    ({"title": ""}, r"`title` must be a non-empty string"),
    ({"title": "x", "text": 3}, r"`text` must be a string"),
])
def test_alert_arguments_are_checked_at_once(kwargs, message, monkeypatch) -> None:
    monkeypatch.setenv("ATLAS_MODE", "disabled")
    obs = Observer(project="p", config=QUIET)
    with pytest.raises(ValueError, match=message):
        obs.alert(**kwargs)
    obs.alert("fine", level="WARN")  # wandb.AlertLevel's spelling is accepted
    obs.close() if hasattr(obs, "close") else None


def test_an_alert_spooled_offline_arrives_with_atlas_sync(tmp_path, monkeypatch) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    with Receiver() as rx, alert_collector(db, [{"name": "ops", "kind": "webhook", "url": rx.url()}]) as c:
        monkeypatch.setenv("ATLAS_MODE", "offline")
        with Observer(project="plain", run_name="offline", collector=c.address, config=QUIET) as obs:
            obs.step(torch.tensor(0.5))
            obs.alert("disk almost full", "97% used")
            obs.flush()
        assert not rx.requests
        done = subprocess.run([str(BIN / "atlas"), "--collector", c.address, "sync"], capture_output=True, text=True,
                              env=cli_env(ATLAS_HOME=os.environ["ATLAS_HOME"]), timeout=60)
        assert done.returncode == 0, done.stderr
        wait_for(lambda: rx.ok(), 15, "the replayed alert")
        assert [b["title"] for b in rx.bodies()] == ["disk almost full"]


class NanAfter(TinyClassifier):
    """A bug: from step 6 on, the loss is multiplied by NaN (a bad normalisation)."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        if self.global_step >= 6:
            loss = loss * float("nan")
        if self.global_step == 2:
            self.trainer.callbacks[0].alert("warming up slowly", "lr may be too low")
        return loss


@pytest.mark.slow
def test_lightning_run_bug_sends_one_signed_webhook_and_its_own_alert(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    secret = "lightning-secret"
    with Receiver() as rx, alert_collector(db, [{"name": "ops", "kind": "webhook", "url": rx.url(),
                                                 "secret": secret}]) as c:
        callback = AtlasCallback(project="lit", run_name="nan-bug", collector=c.address, config=QUIET)
        trainer([callback], max_epochs=2, limit_train_batches=8, limit_val_batches=1).fit(NanAfter(), *loaders())
        wait_for(lambda: len(rx.ok()) >= 2, 20, "the issue's and the alert's messages")
        def one_per_opening() -> bool:
            checks = [b["check"] for b in rx.bodies() if b["event"] == "issue"]
            return len(checks) == len(set(checks))

        holds_for(one_per_opening, 1.0, "one message per opening")
        bodies = rx.bodies()
        issues = [b for b in bodies if b["event"] == "issue"]
        checks = [b["check"] for b in issues]
        assert "nan_loss" in checks and len(checks) == len(set(checks)), checks  # one message per opening
        assert all(verify(secret, r) for r in rx.ok())
        [nan] = [b for b in issues if b["check"] == "nan_loss"]
        assert nan["run"]["id"] == callback.run_id and nan["severity"] == "critical"
        assert nan["evidence"] and nan["fix"] and nan["explanation"]
        assert [b["title"] for b in bodies if b["event"] == "alert"] == ["warming up slowly"]
        wait_for(lambda: {n["state"] for n in notifications(c.store)} == {"sent"}, 10, "rows marked sent")


@pytest.mark.slow
def test_accelerate_tracker_alert(tmp_path) -> None:
    from accelerate import Accelerator
    from torch import nn

    from atlas_callback import AtlasTracker

    db = f"sqlite:///{tmp_path / 'a.db'}"
    with Receiver() as rx, alert_collector(db, [{"name": "ops", "kind": "webhook", "url": rx.url()}]) as c:
        tracker = AtlasTracker(project="acc", run_name="tracked", collector=c.address, config=QUIET)
        accelerator = Accelerator(cpu=True, log_with=[tracker])
        accelerator.init_trackers("acc", config={"lr": 0.1})
        model = nn.Linear(4, 1)
        for step in range(3):
            accelerator.log({"loss": 1.0 / (step + 1)}, step=step)
        tracker.alert("loss plateau", "no progress in 3 steps", level="warning")
        accelerator.end_training()
        wait_for(lambda: rx.ok(), 15, "the tracker's alert")
        [body] = rx.bodies()
        assert (body["event"], body["title"], body["severity"]) == ("alert", "loss plateau", "warning")
        assert body["run"]["id"] == tracker.run_id
        del model
