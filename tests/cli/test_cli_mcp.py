"""`atlas mcp` answers a real MCP client (the `mcp` package's stdio client): lists and calls the read-only tools."""
from __future__ import annotations

import json
from typing import Any, Iterator

import anyio
import pytest

from cli_support import Store, atlas_json, stored_runs
from conftest import BIN, cli_env


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    yield stored_runs()  # built once per session, stopped at exit


def session_calls(address: str, calls: list[tuple[str, dict[str, Any]]]) -> tuple[list[Any], list[Any]]:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    async def main() -> tuple[list[Any], list[Any]]:
        params = StdioServerParameters(command=str(BIN / "atlas"), args=["--collector", address, "mcp"],
                                       env=cli_env())
        with anyio.fail_after(60):
            async with stdio_client(params) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    tools = (await session.list_tools()).tools
                    results = [await session.call_tool(name, args) for name, args in calls]
                    return tools, results

    return anyio.run(main)


def test_mcp_lists_the_read_only_tools_and_answers_calls(store: Store) -> None:
    tools, (health, logs, unknown, fresh) = session_calls(store.address, [
        ("get_run_health", {"run": "hot"}),
        ("get_run_logs", {"run": "streamed", "errors_only": True}),
        ("get_run_detail", {"run": "baselin"}),
        ("diagnose_run", {"run": "hot"}),
    ])
    names = {t.name for t in tools}
    assert {"list_runs", "get_run_health", "get_run_epochs", "get_sustainability_report", "compare_runs"} <= names
    assert not names & {"stop_run", "pause_run"}
    schema = next(t for t in tools if t.name == "get_run_epochs").input_schema
    assert schema["required"] == ["run"] and "from_epoch" in schema["properties"]

    assert not health.is_error
    expected = atlas_json("health", "hot", collector=store.address)
    assert json.loads(health.content[0].text) == expected
    assert [r["level"] for r in json.loads(logs.content[0].text)] == ["ERROR", "ERROR"]
    assert unknown.is_error and "'baseline'" in unknown.content[0].text
    rediagnosed = json.loads(fresh.content[0].text)
    assert rediagnosed["run"] == store.runs["hot"] and rediagnosed["health_score"] == expected["health_score"]
