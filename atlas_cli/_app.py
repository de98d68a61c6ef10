"""The `atlas` click group, its context object and the one output path (`output`, `Result`) for text and `--json`.

Import-light on purpose: `atlas --help` loads click only; gRPC, protobuf and rich load when a command
runs. Nothing here (or anywhere in the CLI) imports torch."""
from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable

import click

from ._terminal import safe

if TYPE_CHECKING:
    from ._client import CollectorClient

DEFAULT_COLLECTOR = "localhost:50051"


@dataclass
class Ctx:
    """The click context object of every command: the global flags and the collector client."""
    collector: str
    token: str | None
    tls_ca: str | None
    json: bool  # --json was given, before or after the command
    _client: Any = None

    def client(self) -> CollectorClient:
        """The `CollectorClient` (typed QueryService calls), opened on first use."""
        if self._client is None:
            from ._client import CollectorClient

            self._client = CollectorClient(self.collector, self.token, self.tls_ca)
        return self._client


def _check_collector(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if "://" in value:  # a URL: gRPC takes HOST:PORT, and the scheme would be looked up as part of the host name
        bare = value.split("://", 1)[1].rstrip("/")
        raise click.BadParameter(f"must be HOST:PORT without a scheme (gRPC, not HTTP), got {value!r}; did you mean "
                                 f"{bare!r}?")
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise click.BadParameter(f"must be HOST:PORT with a port from 1 to 65535 (e.g. localhost:50051), got {value!r}")
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--collector", default=DEFAULT_COLLECTOR, show_default=True, envvar="ATLAS_COLLECTOR",
              callback=_check_collector, help="Collector address HOST:PORT. Env ATLAS_COLLECTOR.")
@click.option("--token", envvar="ATLAS_TOKEN", help="Bearer token for the collector. Env ATLAS_TOKEN.")
@click.option("--tls-ca", envvar="ATLAS_TLS_CA", type=click.Path(exists=True, dir_okay=False),
              help="PEM CA certificate to verify the collector's TLS. Env ATLAS_TLS_CA.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables (also accepted after the command).")
@click.version_option(package_name="atlas-observatory", prog_name="atlas")
@click.pass_context
def cli(ctx: click.Context, collector: str, token: str | None, tls_ca: str | None, as_json: bool) -> None:
    """Atlas: look at your training runs from the shell.

    \b
    Examples:
      atlas demo                      # train a small model against an embedded collector
      atlas runs                      # list runs
      atlas runs show latest --json   # one run, as JSON
      atlas watch latest              # follow a live run until it ends
      atlas issues latest             # what the diagnostics found
      atlas green latest              # grade, wasted epochs, CO2, EUR
      atlas ask "why is my val loss rising?"
    """
    if token and not (token.isascii() and token.isprintable()):
        raise click.BadParameter("must be printable ASCII (it travels in a gRPC header); the one given has other "
                                 "characters", param_hint="'--token' / ATLAS_TOKEN")
    ctx.obj = Ctx(collector=collector, token=token, tls_ca=tls_ca, json=as_json)
    ctx.call_on_close(lambda: ctx.obj._client and ctx.obj._client.close())


# ---------------------------------------------------------------------------------------- output

Column = tuple[str, str]  # (key in the row, header)

def echo(message: Any = None, **kwargs: Any) -> None:
    """`click.echo` of text that may hold what a trainer sent: see `safe`."""
    click.echo(safe(message) if isinstance(message, str) else message, **kwargs)


@dataclass
class Result:
    """What a command returns when its output needs more than the data: `text` prints it for people (instead of
    the command's renderer), `notes` go to stderr after it, and `fail` makes the command exit 1 with that message
    after everything is printed (a sync that left files behind, an alert route that refused the test)."""
    data: Any
    text: Callable[[], None] | None = None
    notes: list[str] = field(default_factory=list)
    fail: str | None = None


def output(columns: list[Column] | None = None, *, kv: bool = False, text: Callable[[Any], None] | None = None,
           stream: bool = False, clean_numbers: bool = True,
           json_help: str = "Print JSON instead of a table.") -> Callable[[Callable[..., Any]], Any]:
    """The one output path of the CLI: decorate a command that returns its data (rows: a list of dicts; or one
    dict; or a `Result`); it prints them as JSON with `--json`, else with `text` (for people), else as a table or a
    key-value list. A command that drew its output itself (a live view) returns None: nothing more is printed.

    `stream`: the command yields its results as they come; each is printed at once (with `--json` as one line of
    JSON: JSON Lines), and Ctrl-C ends the command with exit status 130. `clean_numbers`: NaN/Inf print as null and
    whole floats as integers (`clean_number`); without it the JSON holds the values as the command built them.

    Adds `--json` (help: `json_help`) to the command, so it is accepted before or after the command name; the
    command sees it as `obj.json`. On a group the flag is kept for the subcommand (`atlas runs --json show RUN`)."""

    def render(result: Any, as_json: bool) -> None:
        reply = result if isinstance(result, Result) else Result(result)
        if as_json:
            data = reply.data
            if clean_numbers:
                from atlas_proto.convert import clean_number

                data = clean_number(data)  # JSON has no NaN/Inf: null
            click.echo(json.dumps(data, default=str) if stream else json.dumps(data, indent=2, default=str))
        elif reply.text is not None:
            reply.text()
        elif reply.data is None:
            pass  # the command drew its output itself
        elif text is not None:
            text(reply.data)
        elif kv or isinstance(reply.data, dict):
            render_kv(reply.data)
        else:
            render_table(reply.data, columns or [(k, k) for k in (reply.data[0] if reply.data else {})])
        if stream:
            sys.stdout.flush()
        for note in reply.notes:
            click.echo(note, err=True)
        if reply.fail is not None:
            raise click.ClickException(reply.fail)

    def decorate(fn: Callable[..., Any]) -> Any:
        @click.option("--json", "as_json", is_flag=True, help=json_help)
        @click.pass_obj
        @functools.wraps(fn)
        def wrapper(obj: Ctx, *args: Any, as_json: bool = False, **kwargs: Any) -> None:
            obj.json = obj.json or as_json
            ctx = click.get_current_context()
            if isinstance(ctx.command, click.Group) and ctx.invoked_subcommand is not None:
                return  # the subcommand prints (`obj.json` carries the flag to it)
            if not stream:
                render(fn(obj, *args, **kwargs), obj.json)
                return
            try:
                for result in fn(obj, *args, **kwargs):
                    render(result, obj.json)
            except KeyboardInterrupt:
                raise SystemExit(130) from None

        return wrapper

    return decorate


def _fmt(value: Any) -> str:
    """A value as one table cell (control characters and newlines escaped: see `safe`)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ",".join(_fmt(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return safe(str(value), lines=False)


def render_table(rows: Iterable[dict[str, Any]], columns: list[Column]) -> None:
    rows = list(rows)
    if not rows:
        click.echo("(none)")
        return
    cells = [[_fmt(r.get(key)) for key, _ in columns] for r in rows]
    headers = [header for _, header in columns]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(show_header=True, header_style="bold")
        for header in headers:
            table.add_column(header, overflow="fold")
        for row in cells:  # Text: a run name like "[link=...]" from a trainer is shown as typed, never as markup
            table.add_row(*(Text(cell) for cell in row))
        Console().print(table)
        return
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def render_kv(data: dict[str, Any], indent: int = 0) -> None:
    data = {safe(str(k), lines=False): v for k, v in data.items()}  # keys too: hyperparameter names come from a trainer
    width = max((len(k) for k in data), default=0)
    for key, value in data.items():
        if isinstance(value, dict) and value:
            click.echo(" " * indent + f"{key}:")
            render_kv(value, indent + 2)
        else:
            click.echo(" " * indent + f"{key.ljust(width)}  {_fmt(value)}")
