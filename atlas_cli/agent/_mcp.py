"""`atlas mcp`: the agent's read-only tools as an MCP server over stdio (the `mcp` package's low-level server)."""
from __future__ import annotations

import json
from typing import Any


def serve(obj: Any) -> None:
    import anyio
    import mcp.types as types
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server

    from ._tools import READ_ONLY, ToolRunner

    runner = ToolRunner(obj, allow_actions=False)
    server: Server = Server("atlas")

    @server.list_tools()
    async def list_tools() -> list[types.Tool]:
        return [types.Tool(name=t.name, description=t.description, inputSchema=t.parameters) for t in READ_ONLY]

    @server.call_tool()
    async def call_tool(name: str, arguments: dict[str, Any] | None) -> list[types.TextContent]:
        result = await anyio.to_thread.run_sync(runner.run, name, arguments or {})
        try:
            is_error = isinstance(json.loads(result), dict) and set(json.loads(result)) == {"error"}
        except ValueError:
            is_error = False
        if is_error:
            raise ValueError(json.loads(result)["error"])
        return [types.TextContent(type="text", text=result)]

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)
