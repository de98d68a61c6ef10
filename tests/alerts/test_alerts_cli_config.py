"""`atlas alerts` (table, --json, error exit), `atlas alerts test ROUTE`, and routes refused at start."""
from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys

import pytest

from atlas_collector import load_config
from atlas_collector._exceptions import ConfigError

from alert_support import Receiver, Trainer, alert_collector, wait_for, notifications

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from conftest import BIN, cli_env  # noqa: E402


def atlas(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "atlas"), "--collector", address, *args], capture_output=True, text=True,
                          env=cli_env(), timeout=60)


def test_atlas_alerts_lists_deliveries_and_tests_a_route(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    slack_url_secret = "/services/T0SECRET/B0SECRET/XXXXXXXXXXXX"
    with Receiver() as rx, alert_collector(db, [
            {"name": "ops", "kind": "webhook", "url": rx.url()},
            {"name": "team-slack", "kind": "slack", "url": rx.url(slack_url_secret)},
            {"name": "down", "kind": "webhook", "url": "http://127.0.0.1:9/x?token=qs-secret", "timeout_s": 1}],
            max_attempts=1) as c:
        trainer = Trainer(c.address).start(name="evil\x1b]0;pwned\x07name")
        trainer.steps([math.nan])
        trainer.wait_acked()
        wait_for(lambda: len([n for n in notifications(c.store) if n["state"] != "pending"]) == 3, 20, "3 outcomes")

        table = atlas(c.address, "alerts")
        assert table.returncode == 0, table.stderr
        assert "routes: ops (webhook), team-slack (slack), down (webhook)" in table.stdout
        assert "\x1b" not in table.stdout and "evil\\x1b]0;pwned\\x07name" in table.stdout
        assert "sent" in table.stdout and "failed" in table.stdout
        for secret in ("T0SECRET", "qs-secret", "XXXXXXXXXXXX"):
            assert secret not in table.stdout

        rows = json.loads(atlas(c.address, "alerts", "--run", trainer.run_id, "--json").stdout)
        assert {r["route"]: r["state"] for r in rows} == {"ops": "sent", "team-slack": "sent", "down": "failed"}
        assert all(r["run_id"] == trainer.run_id and r["event"] == "issue" and r["check"] == "nan_loss"
                   for r in rows)
        assert rows[0]["run_name"] == "evil\x1b]0;pwned\x07name"  # --json stays exact
        [down] = [r for r in rows if r["route"] == "down"]
        assert down["last_error"].startswith("cannot reach http://127.0.0.1:9/…")

        ok = atlas(c.address, "alerts", "test", "ops")
        assert ok.returncode == 0 and "took the test message" in ok.stdout, ok.stderr
        assert rx.bodies()[-1]["event"] == "test"
        bad = atlas(c.address, "alerts", "test", "down")
        assert bad.returncode == 1 and "did not take the test message: cannot reach" in bad.stderr
        assert "qs-secret" not in bad.stderr
        missing = atlas(c.address, "alerts", "test", "nope")
        assert missing.returncode == 1
        assert "no alert route named 'nope'; configured: ops, team-slack, down" in missing.stderr
        unknown_run = atlas(c.address, "alerts", "--run", "no-such-run")
        assert unknown_run.returncode == 1 and "Traceback" not in unknown_run.stderr
        trainer.finish()
        deleted = atlas(c.address, "runs", "delete", trainer.run_id, "--yes")
        assert deleted.returncode == 0, deleted.stderr
        assert [n["event"] for n in notifications(c.store)] == ["test", "test"]  # the run's went with it


def test_atlas_alerts_without_a_collector_is_one_line_exit_1() -> None:
    done = atlas("127.0.0.1:9", "alerts")
    assert done.returncode == 1
    assert "cannot reach the Atlas collector" in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("route, message", [
    ({"name": "x", "kind": "pager"},
     "alert route 'x': `kind` must be one of webhook, slack, discord, email, got 'pager'"),
    ({"name": "x", "kind": "webhook"}, "alert route 'x': `url` must be an http:// or https:// address, got (empty)"),
    ({"name": "x", "kind": "slack", "url": "ftp://u:pw@h/p"}, "alert route 'x': `url` must be an http:// or https:// "
                                                              "address, got ftp://h/…"),
    ({"name": "x", "kind": "webhook", "url": "http://h/", "min_severity": "high"},
     "alert route 'x': `min_severity` must be one of info, warning, critical, got 'high'"),
    ({"name": "x", "kind": "webhook", "url": "http://h/", "events": ["issue", "bored"]},
     "alert route 'x': `events` may hold issue, alert, failed, stopped, paused, stalled, completed; got 'bored'"),
    ({"name": "x", "kind": "slack", "url": "https://hooks.slack.com/s", "secret": "k"}, "`secret` (HMAC signing) is"),
    ({"name": "x", "kind": "email", "smtp_host": "h", "smtp_from": "a@b"}, "alert route 'x': `to` must list"),
    ({"name": "x", "kind": "webhook", "url": "http://h/", "colour": "red"}, "alert route 'x': unknown key 'colour'"),
    ({"kind": "webhook", "url": "http://h/"}, "[[alerts.routes]] #1: `name` must be 1 to 100 printable characters"),
])
def test_a_malformed_route_is_refused_naming_it(route, message) -> None:
    from atlas_collector import CollectorConfig

    with pytest.raises(ConfigError) as info:
        CollectorConfig(alerts={"routes": [route]})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_the_collector_refuses_a_bad_route_at_start_in_one_line(tmp_path) -> None:
    config = tmp_path / "atlas.toml"
    config.write_text('[[alerts.routes]]\nname = "ops-slack"\nkind = "slack"\n'
                      'url = "hooks.slack.com/services/T1/B2/SECRETTOKEN"\n')
    done = subprocess.run([str(BIN / "atlas-collector"), "--listen", "127.0.0.1:0", "--config", str(config),
                           "--db", f"sqlite:///{tmp_path / 'x.db'}"], capture_output=True, text=True, env=cli_env(),
                          timeout=60)
    assert done.returncode == 2
    [line] = [x for x in done.stderr.splitlines() if x.startswith("Error:")]
    assert "alert route 'ops-slack': `url` must be an http:// or https:// address" in line
    assert "SECRETTOKEN" not in done.stderr
    assert not (tmp_path / "x.db").exists()


def test_alert_webhook_flag_and_env_make_a_warning_route(tmp_path) -> None:
    config = load_config({"alert_webhook": "https://example.com/hook"}, env={})
    [route] = config.alert_settings.routes
    assert (route.name, route.kind, route.min_severity) == ("webhook", "webhook", "warning")
    assert "completed" not in route.events
    config = load_config({}, env={"ATLAS_ALERT_WEBHOOK": "https://example.com/env"})
    assert config.alert_settings.routes[0].url == "https://example.com/env"
    toml = tmp_path / "c.toml"
    toml.write_text('[alerts]\nretry_base_s = 1\nsummary_after = 3\n[[alerts.routes]]\nname = "mail"\nkind = "email"\n'
                    'smtp_host = "127.0.0.1"\nsmtp_from = "atlas@example.com"\nto = ["me@example.com"]\n'
                    'min_severity = "critical"\nprojects = ["vision"]\nevents = ["issue", "completed"]\n')
    settings = load_config({"config": str(toml)}, env={}).alert_settings
    assert settings.retry_base_s == 1.0 and settings.summary_after == 3
    [mail] = settings.routes
    assert mail.wants("issue", "critical", "vision") and not mail.wants("issue", "warning", "vision")
    assert not mail.wants("issue", "critical", "nlp") and mail.wants("completed", "info", "vision")
    assert not mail.wants("failed", "critical", "vision")
    done = subprocess.run([str(BIN / "atlas-collector"), "--help"], capture_output=True, text=True, env=cli_env())
    assert "--alert-webhook URL" in done.stdout
