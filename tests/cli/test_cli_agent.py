"""`atlas ask` with the real `openai` and `anthropic` SDKs against local servers speaking their wire formats."""
from __future__ import annotations

import json
import os
import pathlib
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

from cli_support import Store, atlas_json, stored_runs
from llm_fakes import FakeLLM, Reply

READ_ONLY = {"list_runs", "get_run_detail", "get_run_epochs", "get_run_health", "get_diagnostic_detail",
             "diagnose_run", "get_model_architecture", "get_run_logs", "get_project_trend",
             "get_sustainability_report", "compare_runs"}


def belief_block(primary: str, confidence: float, severity: str = "warning", grade: str = "D") -> str:
    return "<belief>" + json.dumps({
        "primary_issue": primary, "confidence": confidence, "severity": severity, "sustainability_grade": grade,
        "key_observations": [f"{primary} observed"], "recommended_actions": ["add early stopping"]}) + "</belief>"


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    yield stored_runs()  # built once per session, stopped at exit


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def ask(store: Store, *args: str, openai: FakeLLM | None = None, anthropic: FakeLLM | None = None,
        check: bool = True, input: str | None = None, **env: str) -> Done:
    """`atlas ask` in this process (the click app as the `atlas` script runs it), so the SDKs load once."""
    from click.testing import CliRunner

    from atlas_cli import cli

    extra: dict[str, str | None] = {k: None for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL",
                                                      "ANTHROPIC_API_KEY", "ATLAS_LLM_PROVIDER", "ATLAS_LLM_MODEL")}
    extra.update(env)
    if openai is not None:
        extra.update(OPENAI_BASE_URL=openai.url, OPENAI_API_KEY="sk-test-openai")
    if anthropic is not None:
        extra.update(ANTHROPIC_BASE_URL=anthropic.url, ANTHROPIC_API_KEY="sk-ant-test")
    result = CliRunner().invoke(cli, ["--collector", store.address, "ask", *args], env=extra, input=input,
                                prog_name="atlas")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    done = Done(result.exit_code, result.stdout, result.stderr)
    if check and done.returncode != 0:
        raise AssertionError(f"atlas ask exited {done.returncode}:\n{done.stderr}\n{done.stdout}")
    return done


def tool_names(request: dict[str, Any]) -> set[str]:
    return {t["function"]["name"] if "function" in t else t["name"] for t in request.get("tools", [])}


def belief_file(run_id: str) -> dict[str, Any]:
    return json.loads((pathlib.Path(os.environ["ATLAS_HOME"]) / "agent" / f"{run_id}.json").read_text())


def test_openai_tool_calls_stream_and_belief_is_stored_then_revised(store: Store) -> None:
    hot = store.runs["hot"]
    first = [Reply(tool_calls=[("get_run_health", {"run": hot}),
                               ("get_run_epochs", {"run": hot, "from_epoch": 1, "to_epoch": 2})]),
             Reply(text="<think>the val loss goes up, so...</think>Validation loss rises after epoch 0 while the "
                        "training loss falls: the model overfits.\n" + belief_block("overfitting", 0.7))]
    with FakeLLM("openai", first) as llm:
        done = ask(store, "--run", "hot", "why does my validation loss go up?", openai=llm,
                   ATLAS_LLM_MODEL="qwen3-test")
    assert len(llm.requests) == 2
    r1, r2 = llm.requests
    assert r1["model"] == "qwen3-test" and r1["stream"] is True
    assert tool_names(r1) == READ_ONLY  # no stop/pause without --allow-actions
    system = r1["messages"][0]["content"]
    assert "EUR 50 per tonne" in system and "never an instruction" in system and "<belief>" in system
    assert hot in system and r1["messages"][-1] == {
        "role": "user", "content": "why does my validation loss go up?"}
    assert llm.headers[0]["authorization"] == "Bearer sk-test-openai"
    # the tool results went back, delimited as data, with the collector's numbers in them
    tool_msgs = [m for m in r2["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_msgs] == ["call_1_0", "call_1_1"]
    health = atlas_json("health", "hot", collector=store.address)
    assert tool_msgs[0]["content"].startswith('<tool_result tool="get_run_health">')
    assert f'"health_score": {health["health_score"]}' in tool_msgs[0]["content"]
    assert "never an instruction" in tool_msgs[0]["content"]
    epochs = json.loads(tool_msgs[1]["content"].split("\n", 1)[1].rsplit("\n</tool_result>", 1)[0])
    assert [e["epoch"] for e in epochs["epochs"]] == [1, 2]
    # streamed answer without the reasoning or the belief block, then the belief
    assert "the model overfits." in done.stdout
    assert "the val loss goes up" not in done.stdout and "<belief>" not in done.stdout
    assert "belief: overfitting | confidence 70% | severity warning | grade D | revision 0" in done.stdout
    stored = belief_file(hot)
    assert (stored["primary_issue"], stored["revision_count"], stored["confidence"]) == ("overfitting", 0, 0.7)

    # the next question carries the belief; contradicting data revises it explicitly
    second = [Reply(text="The learning rate of 3.0 is the root cause, not overfitting alone: I revise my belief.\n"
                         + belief_block("lr_too_high", 0.8))]
    with FakeLLM("openai", second) as llm2:
        done2 = ask(store, "--run", "hot", "what about the learning rate?", openai=llm2)
    system = llm2.requests[0]["messages"][0]["content"]
    assert '"primary_issue": "overfitting"' in system
    assert "belief revised -> belief: lr_too_high | confidence 80%" in done2.stdout
    stored = belief_file(hot)
    assert (stored["primary_issue"], stored["revision_count"]) == ("lr_too_high", 1)
    assert stored["history"][0]["primary_issue"] == "overfitting"


def test_qwen_tool_call_tags_are_executed_and_log_text_stays_data(store: Store) -> None:
    streamed = store.runs["streamed"]
    call = json.dumps({"name": "get_run_logs", "arguments": {"run": streamed, "errors_only": True}})
    replies = [Reply(text=f"<think>check the logs</think>Let me look at the errors.\n<tool_call>{call}</tool_call>"),
               Reply(text="The run ran out of GPU memory in both epochs.\n" + belief_block("out_of_memory", 0.9,
                                                                                          "critical", "C"))]
    with FakeLLM("openai", replies) as llm:
        done = ask(store, "--run", streamed, "any errors?", openai=llm)
    assert len(llm.requests) == 2
    last = llm.requests[1]["messages"][-1]
    assert last["role"] == "user" and last["content"].startswith('<tool_result tool="get_run_logs">')
    result = json.loads(last["content"].split("\n", 1)[1].rsplit("\n</tool_result>", 1)[0])
    assert [r["level"] for r in result] == ["ERROR", "ERROR"]
    assert "CUDA out of memory" in result[0]["message"]
    assert "<tool_call>" not in done.stdout and "check the logs" not in done.stdout
    assert "Let me look at the errors." in done.stdout and "ran out of GPU memory" in done.stdout


def test_anthropic_tool_use_and_json_output(store: Store) -> None:
    hot = store.runs["hot"]
    replies = [Reply(text="Checking the carbon account.", tool_calls=[("get_sustainability_report", {"run": hot})]),
               Reply(text="Grade D: three epochs after the best one were wasted.\n"
                          + belief_block("early_stopping_missed", 0.6))]
    with FakeLLM("anthropic", replies) as llm:
        done = ask(store, "--run", "hot", "how green was it?", "--json", anthropic=llm)
    out = json.loads(done.stdout)
    assert out["answer"] == "Grade D: three epochs after the best one were wasted."
    assert out["tool_calls"] == [{"name": "get_sustainability_report", "arguments": {"run": hot}}]
    assert out["provider"].startswith("anthropic:") and out["rounds"] == 2
    assert out["belief"]["primary_issue"] == "early_stopping_missed" and out["revised"] is False
    r1, r2 = llm.requests
    assert llm.paths[0] == "/v1/messages"
    key = llm.headers[0].get("x-api-key") or llm.headers[0].get("authorization", "")  # the SDK sends either
    assert "sk-ant-test" in key, llm.headers[0]
    assert r1["stream"] is True and tool_names(r1) == READ_ONLY and "Atlas" in r1["system"]
    assert r2["messages"][1]["content"][1] == {"type": "tool_use", "id": "toolu_1_0",
                                               "name": "get_sustainability_report", "input": {"run": hot}}
    result = r2["messages"][2]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_1_0"
    green = atlas_json("green", "hot", collector=store.address)
    assert f'"grade": "{green["grade"]}"' in result["content"]


def test_the_loop_stops_after_8_rounds(store: Store) -> None:
    with FakeLLM("openai", [Reply(tool_calls=[("list_runs", {"limit": 2})])]) as llm:
        done = ask(store, "--run", "hot", "loop forever", openai=llm)
    assert len(llm.requests) == 8
    assert "stopped after 8 rounds of tool calls" in done.stdout


def test_a_failing_provider_falls_back_to_the_next(store: Store) -> None:
    with FakeLLM("openai", [Reply(status=500)]) as bad, \
            FakeLLM("anthropic", [Reply(text="Answer from the fallback.\n"
                                             + belief_block("overfitting", 0.5))]) as good:
        done = ask(store, "--run", "hot", "hello?", openai=bad, anthropic=good)
    assert len(bad.requests) == 1 and len(good.requests) == 1
    assert "openai-compatible" in done.stderr and "falling back to anthropic" in done.stderr
    assert "Answer from the fallback." in done.stdout
    # ATLAS_LLM_PROVIDER puts Anthropic first: the OpenAI endpoint is not asked at all
    with FakeLLM("openai", [Reply(text="from openai")]) as o, \
            FakeLLM("anthropic", [Reply(text="from anthropic")]) as a:
        done = ask(store, "--run", "hot", "who answers?", openai=o, anthropic=a, ATLAS_LLM_PROVIDER="anthropic")
    assert "from anthropic" in done.stdout and not o.requests


def test_every_provider_failing_answers_from_the_diagnostics(store: Store) -> None:
    with FakeLLM("openai", [Reply(status=503)]) as bad, FakeLLM("anthropic", [Reply(status=500)]) as worse:
        done = ask(store, "--run", "hot", "hello?", openai=bad, anthropic=worse)
    assert done.returncode == 0
    assert "Every configured LLM failed" in done.stdout and "Top issues:" in done.stdout


def test_without_any_llm_the_diagnostics_answer(store: Store) -> None:
    from cli_support import atlas

    done = atlas("ask", "--run", "hot", "what is wrong?", collector=store.address)  # the installed script
    health = atlas_json("health", "hot", collector=store.address)
    assert "No LLM is configured" in done.stdout and "ANTHROPIC_API_KEY" in done.stdout
    assert "OPENAI_BASE_URL" in done.stdout
    assert f"health {health['health_score']}/100" in done.stdout
    top = health["top_issues"][0]
    assert top["title"] in done.stdout and top["suggestion"] in done.stdout
    assert "Green-AI grade" in done.stdout
    out = json.loads(ask(store, "--run", "hot", "what is wrong?", "--json").stdout)
    assert out["provider"] is None and out["health"]["health_score"] == health["health_score"]


def test_actions_need_allow_actions(store: Store) -> None:
    base = store.runs["baseline"]
    replies = [Reply(tool_calls=[("stop_run", {"run": base, "reason": "agent thinks so"})]),
               Reply(text="I cannot stop it; run `atlas stop baseline`.")]
    with FakeLLM("openai", replies) as llm:
        ask(store, "--run", "baseline", "stop it", openai=llm)
    result = [m for m in llm.requests[1]["messages"] if m["role"] == "tool"][0]["content"]
    assert "disabled" in result and "--allow-actions" in result
    with FakeLLM("openai", [Reply(text="ok")]) as llm:
        ask(store, "--run", "baseline", "stop it", "--allow-actions", openai=llm)
    assert tool_names(llm.requests[0]) == READ_ONLY | {"stop_run", "pause_run"}


def test_interactive_conversation_keeps_history(store: Store) -> None:
    replies = [Reply(text="First answer."), Reply(text="Second answer.")]
    with FakeLLM("openai", replies) as llm:
        done = ask(store, "--run", "hot", openai=llm, input="first question\nsecond question\nexit\n")
    assert "First answer." in done.stdout and "Second answer." in done.stdout
    roles = [(m["role"], m["content"]) for m in llm.requests[1]["messages"][1:]]
    assert roles == [("user", "first question"), ("assistant", "First answer."), ("user", "second question")]


def test_unknown_run_and_bad_provider_are_one_line_errors(store: Store) -> None:
    from cli_support import one_line_error

    assert "'baseline'" in one_line_error(ask(store, "--run", "baselin", "q", check=False))  # type: ignore[arg-type]
    line = one_line_error(ask(store, "--run", "hot", "q", check=False, ATLAS_LLM_PROVIDER="anthropic"))
    assert "ANTHROPIC_API_KEY" in line
    assert one_line_error(ask(store, "q", "--provider", "nope", check=False), code=2)


def test_stream_filter_hides_tags_split_anywhere() -> None:
    from atlas_cli.agent import StreamFilter, parse_tag_calls, strip_think

    text = ("<think>plan</think>Answer <b>bold</b> part.<tool_call>{\"name\": \"x\"}</tool_call> "
            "end.<belief>{\"primary_issue\": \"y\"}</belief>")
    for size in range(1, 12):
        out: list[str] = []
        f = StreamFilter(out.append)
        for i in range(0, len(text), size):
            f.feed(text[i:i + size])
        f.flush()
        assert "".join(out) == "Answer <b>bold</b> part. end.", size
    assert strip_think("reasoning only</think>final") == "final"
    assert parse_tag_calls('<tool_call>{"name": "get_run_health", "arguments": "{\\"run\\": \\"a\\"}"}</tool_call>') \
        == [{"id": "tag_0", "name": "get_run_health", "arguments": {"run": "a"}, "via_text": True}]


def test_tool_results_are_capped_at_12_kb(store: Store) -> None:
    from atlas_cli._app import Ctx
    from atlas_cli.agent import RESULT_CAP, ToolRunner
    from atlas_cli.agent._tools import as_data, cap
    from cli_support import stream_run

    big = cap("x" * 50_000)
    assert len(big.encode()) <= RESULT_CAP and "[truncated: " in big
    obj = Ctx(collector=store.address, token=None, tls_ca=None, json=True)
    runner = ToolRunner(obj)
    try:
        long_run = stream_run(store.address, project="cli-long", name="long-run", epochs=120)
        result = runner.run("get_run_epochs", {"run": long_run})
        assert len(as_data("get_run_epochs", result).encode()) <= RESULT_CAP
        data = json.loads(result)  # still valid JSON: the latest epochs that fit, and what was left out
        assert data["truncated"]["total"] == 120 and 0 < data["truncated"]["shown"] < 120
        assert data["epochs"][-1]["epoch"] == 119 and len(data["epochs"]) == data["truncated"]["shown"]
        ranged = json.loads(runner.run("get_run_epochs", {"run": long_run, "from_epoch": 10, "to_epoch": 12}))
        assert [e["epoch"] for e in ranged["epochs"]] == [10, 11, 12] and "truncated" not in ranged
        steps_like = runner.run("get_run_logs", {"run": "streamed", "limit": 1000})
        assert json.loads(steps_like)[0]["level"] == "INFO"
        assert "unknown tool" in runner.run("rm_rf", {})
        assert "missing ['run']" in runner.run("get_run_health", {})
    finally:
        obj.client().close()
