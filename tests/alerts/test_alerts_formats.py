"""Slack, Discord and e-mail messages, delivered to real local receivers, with a hostile run name and alert text:
nothing pings a channel, injects a link or reaches a terminal as a control sequence."""
from __future__ import annotations

import json
import math

from atlas_callback import AtlasConfig, Observer

from alert_support import Receiver, Trainer, alert_collector, smtp_server, wait_for

EVIL_NAME = "evil\x1b]0;pwned\x07<!channel> @everyone <https://evil.example|click>"
EVIL_TEXT = "see [here](https://evil.example) & <@U123> <b>bold</b>\x1b[31m"


def _start_evil(address: str) -> Trainer:
    trainer = Trainer(address).start(project="p&<>", name=EVIL_NAME)
    trainer.steps([math.nan])
    return trainer


def test_slack_block_kit_and_discord_embeds_are_neutralised(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    with Receiver() as slack, Receiver() as discord, alert_collector(db, [
            {"name": "slack", "kind": "slack", "url": slack.url("/services/T/B/x")},
            {"name": "discord", "kind": "discord", "url": discord.url("/api/webhooks/1/tok")}]) as c:
        trainer = _start_evil(c.address)
        trainer.wait_acked()
        wait_for(lambda: slack.ok() and discord.ok(), 15, "both messages")
        [s] = slack.bodies()
        assert s["blocks"][0]["type"] == "section" and "nan_loss" in json.dumps(s)
        text = json.dumps(s, ensure_ascii=False)
        assert "<!channel>" not in text and "<https://evil.example|click>" not in text
        assert "&lt;!channel&gt;" in text and "&lt;https://evil.example|click&gt;" in text
        assert "\x1b" not in text and "\\\\x1b]0;pwned\\\\x07" in text  # shown as an escape
        [d] = discord.bodies()
        assert d["allowed_mentions"] == {"parse": []}
        embed = json.dumps(d["embeds"], ensure_ascii=False)
        assert "@everyone" not in embed and "@\u200beveryone" in embed
        assert "\x1b" not in embed
        trainer.finish()


def test_email_plain_and_html_via_smtp(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    with smtp_server() as (smtp, received):
        with alert_collector(db, [{"name": "mail", "kind": "email", "smtp_host": "127.0.0.1",
                                   "smtp_port": smtp.port, "smtp_from": "atlas@example.com",
                                   "to": ["oncall@example.com", "lead@example.com"], "min_severity": "info"}]) as c:
            with Observer(project="mailing", run_name=EVIL_NAME, collector=c.address,
                          config=AtlasConfig(track_carbon=False, track_gpu=False, quiet=True)) as obs:
                obs.step(0.5)
                obs.alert("<script>alert(1)</script> done", EVIL_TEXT, level="info")
                obs.flush()
            wait_for(lambda: received, 15, "the e-mail")
    envelope, msg = received[0]
    assert envelope.rcpt_tos == ["oncall@example.com", "lead@example.com"]
    assert msg["Subject"].startswith("Atlas: [info] ")
    plain = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "\x1b" not in plain and "\\x1b" in plain
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "\x1b" not in html
    assert "see [here](https://evil.example)" in plain
