"""The insight of an issue: an LLM's short explanation when one is configured (a local server speaking the OpenAI or
Anthropic wire format, driven by the real SDKs), once per issue, bounded; else a summary of the evidence."""
from __future__ import annotations

import json
import math
import pathlib
import sys

import pytest

from atlas_collector import _schema as s

from alert_support import Receiver, Trainer, alert_collector, rows, wait_for

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "cli"))
from llm_fakes import FakeLLM, Reply  # noqa: E402

INSIGHT = "The loss became NaN at step 3 after falling normally; check the input normalisation first."


def _llm_env(monkeypatch: pytest.MonkeyPatch, kind: str, url: str) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ATLAS_LLM_PROVIDER", kind)
    monkeypatch.setenv("ATLAS_LLM_MODEL", "test-model")
    if kind == "openai":
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    else:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_llm_insight_goes_into_the_message_and_the_issue_once(kind, tmp_path, monkeypatch) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    with FakeLLM(kind, [Reply(text=INSIGHT)]) as llm:
        _llm_env(monkeypatch, kind, llm.url)
        with Receiver() as a, Receiver() as b, alert_collector(db, [
                {"name": "a", "kind": "webhook", "url": a.url()}, {"name": "b", "kind": "slack", "url": b.url()}],
                insight_max_tokens=120) as c:
            trainer = Trainer(c.address).start(name="insightful")
            trainer.epoch(0, 1.2, val_loss=1.3)
            trainer.steps([0.9, math.nan], first_step=11)
            trainer.wait_acked()
            wait_for(lambda: a.ok() and b.ok(), 20, "both routes")
            assert a.bodies()[0]["insight"] == INSIGHT
            assert INSIGHT in json.dumps(b.bodies()[0])
            [issue] = [i for i in rows(c.store, s.issues, run_id=trainer.run_id) if i["check_id"] == "nan_loss"]
            assert issue["insight"] == INSIGHT
            trainer.finish()
    assert len(llm.requests) == 1, "one LLM call per issue, whatever the number of routes"
    request = llm.requests[0]
    assert request["max_tokens"] == 120 and request["model"] == "test-model"
    prompt = json.dumps(request["messages"])
    assert "nan_loss" in prompt and "insightful" in prompt and "1.2" in prompt  # grounded in the run's numbers


def test_a_failing_llm_leaves_the_evidence_summary(tmp_path, monkeypatch) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    with FakeLLM("openai", [Reply(status=500)]) as llm:
        _llm_env(monkeypatch, "openai", llm.url)
        with Receiver() as rx, alert_collector(db, [{"name": "a", "kind": "webhook", "url": rx.url()}]) as c:
            trainer = Trainer(c.address).start(name="no-llm")
            trainer.steps([math.nan])
            trainer.wait_acked()
            wait_for(lambda: rx.ok(), 20, "the message")
            insight = rx.bodies()[0]["insight"]
            assert insight and insight != INSIGHT and "Evidence:" in insight
            trainer.finish()


def test_without_an_llm_the_insight_is_a_summary_of_the_evidence(tmp_path, monkeypatch) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    db = f"sqlite:///{tmp_path / 'a.db'}"
    with Receiver() as rx, alert_collector(db, [{"name": "a", "kind": "webhook", "url": rx.url()}]) as c:
        trainer = Trainer(c.address).start(name="plain")
        trainer.steps([math.nan], first_step=7)
        trainer.wait_acked()
        wait_for(lambda: rx.ok(), 20, "the message")
        body = rx.bodies()[0]
        assert "step 7" in body["insight"] and "First step:" in body["insight"]
        from alert_support import query
        from atlas_proto.v1 import query_pb2 as qpb

        issues = query(c.address).ListIssues(qpb.IssuesRequest(run=trainer.run_id), timeout=10).issues
        assert [i.insight for i in issues if i.check == "nan_loss"] == [body["insight"]]
        trainer.finish()
