"""`atlas ask` (the agent) and `atlas mcp` (the same read-only tools over the Model Context Protocol)."""
from __future__ import annotations

import json
import sys
from typing import Any

import click

from ._app import Ctx, cli, echo, safe


def _resolve(obj: Ctx, run: str | None) -> dict[str, Any] | None:
    from ._client import NotFound
    from ._runs import get_run

    try:
        return get_run(obj, run or "latest")
    except NotFound:
        if run:
            raise
        return None  # no runs yet; the agent can still list them


@cli.command()
@click.argument("question", required=False)
@click.option("--run", "run_ref", help="The run to talk about (id, prefix, name, `latest`). [default: latest]")
@click.option("--provider", type=click.Choice(["openai", "anthropic"]), envvar="ATLAS_LLM_PROVIDER",
              help="Try this provider first. Env ATLAS_LLM_PROVIDER.")
@click.option("--model", envvar="ATLAS_LLM_MODEL", help="Model of the first provider. Env ATLAS_LLM_MODEL.")
@click.option("--allow-actions", is_flag=True, help="Let the agent stop or pause the run itself.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer, belief and tool calls as JSON.")
@click.pass_obj
def ask(obj: Ctx, question: str | None, run_ref: str | None, provider: str | None, model: str | None,
        allow_actions: bool, as_json: bool) -> None:
    """Ask the Atlas agent about a run; without QUESTION, start a conversation (exit with Ctrl-D or `exit`).

    The agent reads the run through tools (epochs, health, issues, logs, architecture, green report), keeps a
    belief state per run in ATLAS_HOME/agent and shows it after each answer. Providers: an OpenAI-compatible
    endpoint (OPENAI_BASE_URL, OPENAI_API_KEY) first, Anthropic (ANTHROPIC_API_KEY) as fallback. With no
    provider configured it answers from the diagnostics alone.

    \b
    Examples:
      atlas ask "why did my validation loss go up?"
      atlas ask --run baseline --allow-actions "stop it if the loss is NaN"
      OPENAI_BASE_URL=http://localhost:8000/v1 ATLAS_LLM_MODEL=Qwen/Qwen3-8B atlas ask
    """
    from .agent import Agent, AllProvidersFailed, ToolRunner, configured
    from .agent._fallback import diagnostics_answer
    from .agent._loop import stdout_writer

    as_json = as_json or obj.json
    run = _resolve(obj, run_ref)
    providers = configured(provider, model)
    if not providers:
        _print_fallback(diagnostics_answer(obj, run), as_json)
        return
    runner = ToolRunner(obj, allow_actions=allow_actions)
    agent = Agent(providers, runner, run, stream=None if as_json else stdout_writer)
    questions = [question] if question else None
    if questions is None and as_json:
        raise click.UsageError("--json needs a QUESTION (the interactive mode prints text)")
    if questions is None:
        echo(f"Atlas agent ({providers[0].label()}) on run "
             f"{run['name'] + ' ' + run['id'][:8] if run else '(none yet)'}. Ctrl-D or `exit` to leave.")
    while True:
        if questions is not None:
            if not questions:
                return
            q = questions.pop()
        else:
            try:
                q = input("\nyou> ").strip()
            except (EOFError, KeyboardInterrupt):
                echo("")
                return
            if q in ("exit", "quit"):
                return
            if not q:
                continue
            echo("atlas> ", nl=False)
        try:
            answer = agent.ask(q)
        except AllProvidersFailed as exc:
            _print_fallback(diagnostics_answer(obj, run, f"Every configured LLM failed ({exc}); this answer comes "
                                                         "from the diagnostics alone."), as_json)
            return
        if as_json:
            echo(json.dumps({"answer": answer.text, "run": run["id"] if run else None,
                             "provider": answer.provider, "rounds": answer.rounds,
                             "hit_round_limit": answer.hit_round_limit,
                             "tool_calls": [{"name": n, "arguments": a} for n, a in answer.tool_calls],
                             "belief": answer.belief.to_dict(), "revised": answer.revised}, indent=2))
            continue
        if answer.hit_round_limit:
            echo(answer.text)
        echo("")
        prefix = "belief revised -> " if answer.revised else ""
        click.echo(click.style(safe(prefix + answer.belief.summary()), dim=True), err=False)


def _print_fallback(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo(json.dumps({"answer": result["text"], "run": result["run"], "provider": None,
                         "health": result["health"], "green": result["green"]}, indent=2))
    else:
        echo(result["text"])


@cli.command()
@click.pass_obj
def mcp(obj: Ctx) -> None:
    """Serve the agent's read-only tools over the Model Context Protocol on stdio (Claude Desktop, IDEs).

    \b
    Examples:
      atlas mcp     # speaks MCP on stdin/stdout until the client closes it
    In Claude Desktop's claude_desktop_config.json:
      {"mcpServers": {"atlas": {"command": "atlas", "args": ["--collector", "localhost:50051", "mcp"]}}}
    """
    from .agent._mcp import serve

    serve(obj)
    sys.stdout.flush()
