"""`atlas ask` (the agent) and `atlas mcp` (the same read-only tools over the Model Context Protocol)."""
from __future__ import annotations

import sys
from typing import Any

import click

from ._app import Ctx, Result, cli, echo, output
from ._terminal import safe


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
@output(clean_numbers=False, json_help="Print the answer, belief and tool calls as JSON.")
def ask(obj: Ctx, question: str | None, run_ref: str | None, provider: str | None, model: str | None,
        allow_actions: bool) -> Result | None:
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

    run = _resolve(obj, run_ref)
    providers = configured(provider, model)
    if not providers:
        return _fallback(diagnostics_answer(obj, run))
    runner = ToolRunner(obj, allow_actions=allow_actions)
    agent = Agent(providers, runner, run, stream=None if obj.json else stdout_writer)  # text: the answer as it comes
    if not question and obj.json:
        raise click.UsageError("--json needs a QUESTION (the interactive mode prints text)")
    if not question:
        return _converse(obj, agent, run, providers[0].label())
    try:
        answer = agent.ask(question)
    except AllProvidersFailed as exc:
        return _llms_failed(obj, run, exc)
    return Result({"answer": answer.text, "run": run["id"] if run else None, "provider": answer.provider,
                   "rounds": answer.rounds, "hit_round_limit": answer.hit_round_limit,
                   "tool_calls": [{"name": n, "arguments": a} for n, a in answer.tool_calls],
                   "belief": answer.belief.to_dict(), "revised": answer.revised},
                  text=lambda: _print_belief(answer))


def _converse(obj: Ctx, agent: Any, run: dict[str, Any] | None, label: str) -> Result | None:
    """The interactive conversation, printed as it goes; the diagnostics' answer (a `Result`) when every LLM
    failed."""
    from .agent import AllProvidersFailed

    echo(f"Atlas agent ({label}) on run {run['name'] + ' ' + run['id'][:8] if run else '(none yet)'}. "
         "Ctrl-D or `exit` to leave.")
    while True:
        try:
            q = input("\nyou> ").strip()
        except (EOFError, KeyboardInterrupt):
            echo("")
            return None
        if q in ("exit", "quit"):
            return None
        if not q:
            continue
        echo("atlas> ", nl=False)
        try:
            answer = agent.ask(q)
        except AllProvidersFailed as exc:
            return _llms_failed(obj, run, exc)
        _print_belief(answer)


def _print_belief(answer: Any) -> None:
    """After an answer streamed to the terminal: its text again when the agent hit the round limit, then the
    belief it holds now."""
    if answer.hit_round_limit:
        echo(answer.text)
    echo("")
    prefix = "belief revised -> " if answer.revised else ""
    click.echo(click.style(safe(prefix + answer.belief.summary()), dim=True), err=False)


def _llms_failed(obj: Ctx, run: dict[str, Any] | None, exc: Exception) -> Result:
    from .agent._fallback import diagnostics_answer

    return _fallback(diagnostics_answer(obj, run, f"Every configured LLM failed ({exc}); this answer comes from the "
                                                  "diagnostics alone."))


def _fallback(result: dict[str, Any]) -> Result:
    """The answer from the diagnostics alone (no LLM configured, or every one failed)."""
    return Result({"answer": result["text"], "run": result["run"], "provider": None, "health": result["health"],
                   "green": result["green"]}, text=lambda: echo(result["text"]))


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
