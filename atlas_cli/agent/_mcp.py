"""`atlas mcp`: the agent's read-only tools as an MCP server over stdio (the `mcp` package's low-level server).

Tool failures (an unknown run, a bad argument) come back as results with `is_error` set and the one-line message."""
from __future__ import annotations

import json
from typing import Any


def _error_of(result: str) -> str | None:
    try:
        data = json.loads(result)
    except ValueError:
        return None
    return data["error"] if isinstance(data, dict) and set(data) == {"error"} else None


def serve(obj: Any) -> None:
    import anyio
    import mcp.types as types
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server

    from ._tools import READ_ONLY, ToolRunner

    runner = ToolRunner(obj, allow_actions=False)

    async def list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=[types.Tool(name=t.name, description=t.description,
                                                       input_schema=t.parameters) for t in READ_ONLY])

    async def call_tool(ctx: Any, params: Any) -> Any:
        result = await anyio.to_thread.run_sync(runner.run, params.name, dict(params.arguments or {}))
        error = _error_of(result)
        return types.CallToolResult(content=[types.TextContent(type="text", text=error or result)],
                                    is_error=error is not None)

    server = Server("atlas", on_list_tools=list_tools, on_call_tool=call_tool)

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)
