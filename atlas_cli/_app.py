"""The `atlas` click group, its context object and the one output decorator for `--json`.

Import-light on purpose: `atlas --help` loads click only; gRPC, protobuf and rich load when a command
runs. Nothing here (or anywhere in the CLI) imports torch."""
from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import click

DEFAULT_COLLECTOR = "localhost:50051"


@dataclass
class Ctx:
    collector: str
    token: str | None
    tls_ca: str | None
    json: bool
    _client: Any = None

    def client(self) -> Any:
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

# Bidi controls reorder what a terminal shows (the "Trojan Source" trick); shown as escapes like control characters.
_BIDI = frozenset([0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])


def safe(text: str, *, lines: bool = True) -> str:
    """`text` (a run name, a log line: anything a trainer sent) as it may reach a terminal: control characters (the
    ESC that starts a terminal sequence such as an OSC 8 hyperlink, CR, BEL, ...) and bidi controls are shown as
    escapes (``\\x1b``), never sent. Tabs are kept, and newlines when `lines` (else shown as ``\\n``). Rich
    markup needs nothing here: tables print cells as `rich.text.Text`, never parsed for markup."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\t" or (ch == "\n" and lines):
            out.append(ch)
        elif ch == "\n":
            out.append("\\n")
        elif code < 0x20 or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif code in _BIDI:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def echo(message: Any = None, **kwargs: Any) -> None:
    """`click.echo` of text that may hold what a trainer sent: see `safe`."""
    click.echo(safe(message) if isinstance(message, str) else message, **kwargs)


def output(columns: list[Column] | None = None, *, kv: bool = False,
           text: Callable[[Any], None] | None = None) -> Callable[[Callable[..., Any]], Any]:
    """Decorate a command that returns rows (list of dicts) or one dict; render as a table or JSON.

    `text`, when given, renders the result for people instead of the default table or key-value list.
    Adds `--json` to the command, so it is accepted before or after the command name."""

    def decorate(fn: Callable[..., Any]) -> Any:
        @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
        @click.pass_obj
        @functools.wraps(fn)
        def wrapper(obj: Ctx, *args: Any, as_json: bool = False, **kwargs: Any) -> None:
            result = fn(obj, *args, **kwargs)
            if as_json or obj.json:
                from ._client import clean_number

                click.echo(json.dumps(clean_number(result), indent=2, default=str))  # JSON has no NaN/Inf: null
            elif text is not None:
                text(result)
            elif kv or isinstance(result, dict):
                render_kv(result)
            else:
                render_table(result, columns or [(k, k) for k in (result[0] if result else {})])

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
