"""`atlas-collector`: serve (bare command), or `atlas-collector migrate`."""
from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

import click

from ._config import LOG_LEVELS, CollectorConfig, load_config
from ._exceptions import ConfigError, StoreUnusable

log = logging.getLogger("atlas_collector")

_FLAGS = [
    click.option("--listen", help="HOST:PORT to serve on (port 0 binds a free port). Env ATLAS_LISTEN. "
                 "[default: 127.0.0.1:50051]"),
    click.option("--http", help="HOST:PORT for the web UI and its JSON API, or off. Env ATLAS_HTTP. Off loopback "
                 "it needs --token. [default: 127.0.0.1:8765; a free port when --listen takes port 0]"),
    click.option("--db", help="Store URL: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB. Env ATLAS_DB. "
                 "[default: sqlite file atlas.db under ATLAS_HOME]"),
    click.option("--token", help="Bearer token every client must send. Env ATLAS_TOKEN. Required off loopback."),
    click.option("--tls-cert", help="PEM certificate for TLS. Env ATLAS_TLS_CERT."),
    click.option("--tls-key", help="PEM private key for TLS. Env ATLAS_TLS_KEY."),
    click.option("--otlp-endpoint", help="OTLP endpoint to export runs to. Env ATLAS_OTLP_ENDPOINT."),
    click.option("--config", type=click.Path(dir_okay=False), help="TOML config file. Env ATLAS_CONFIG."),
    click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False),
                 help="Log level. Env ATLAS_LOG_LEVEL. [default: INFO]"),
    click.option("--alert-webhook", metavar="URL", help="Send warnings and above (issues, failed/stopped/stalled "
                 "runs, training-code alerts) to this generic webhook; more routes in the config's "
                 "[[alerts.routes]]. Env ATLAS_ALERT_WEBHOOK."),
]


def _with_flags(fn: Any) -> Any:
    for option in reversed(_FLAGS):
        fn = option(fn)
    return fn


def _config(flags: dict[str, Any]) -> CollectorConfig:
    try:
        return load_config(flags)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _check_port(listen: str, flag: str = "--listen") -> None:
    """Refuse at once, in one line, an address this process cannot bind (taken, or not this machine's)."""
    import errno
    import socket

    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    if not port.isdigit() or int(port) == 0:
        return
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except OSError:
        return  # let the server say what it makes of the name
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds: a TIME_WAIT port is free
        try:
            probe.bind(address)
        except OSError as exc:
            why = ("the port is taken by another process" if exc.errno == errno.EADDRINUSE
                   else (exc.strerror or str(exc)))
            raise click.ClickException(f"cannot listen on {listen}: {why} (nothing was opened or migrated; choose "
                                       f"another {flag}, or stop what holds it)") from None


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr,
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
    )
    # Alembic says at INFO what it does at every start ("Context impl SQLiteImpl.", its plugins): noise above the
    # one line that matters (the store that cannot be used, or `listening on`). Our own migration log says what
    # changed; DEBUG shows Alembic's too.
    if logging.getLevelName(level) > logging.DEBUG:
        logging.getLogger("alembic").setLevel(logging.WARNING)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@_with_flags
@click.pass_context
def cli(ctx: click.Context, **flags: Any) -> None:
    """Atlas collector: receive training telemetry over gRPC, store it, diagnose runs.

    \b
    Examples:
      atlas-collector                                   # 127.0.0.1:50051, SQLite under ~/.atlas
      atlas-collector --listen 127.0.0.1:0 --db sqlite:///runs.db
      atlas-collector --db postgresql+psycopg://atlas@db/atlas --listen 0.0.0.0:50051 --token "$T"
    """
    ctx.obj = flags
    if ctx.invoked_subcommand is not None:
        return
    config = _config(flags)
    _setup_logging(config.log_level)
    _check_port(config.listen)  # before the store is opened or migrated: a taken port changes nothing on disk
    config = _check_http_port(config)
    from ._server import Collector

    try:
        asyncio.run(_serve(Collector(config)))
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    except StoreUnusable as exc:
        raise click.ClickException(str(exc)) from None


def _check_http_port(config: CollectorConfig) -> CollectorConfig:
    """The web UI's address, like gRPC's: a chosen one that is taken is refused in one line; the default one
    (127.0.0.1:8765) taken, by another collector say, gives way to a free port, with a warning."""
    http = config.http_listen
    if http is None:
        return config
    if config.http:
        _check_port(http, "--http (or --http off)")
        return config
    try:
        _check_port(http)
    except click.ClickException:
        import dataclasses

        log.warning("the web UI's default address %s is taken; serving it on a free port instead (choose one with "
                    "--http HOST:PORT, or --http off)", http)
        return dataclasses.replace(config, http="127.0.0.1:0")
    return config


async def _serve(collector: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await collector.start()
    except RuntimeError as exc:  # grpc raises RuntimeError when the port cannot be bound
        raise click.ClickException(f"cannot listen on {collector.config.listen}: {exc}") from None
    click.echo(f"listening on {collector.address}")
    if collector.http_url:
        click.echo(f"web UI on {collector.http_url}")
    sys.stdout.flush()
    await stop.wait()
    log.info("shutting down (signal)")
    await collector.stop()


@cli.command()
@_with_flags
@click.pass_context
def migrate(ctx: click.Context, **flags: Any) -> None:
    """Create or upgrade the store's schema, then exit.

    \b
    Example:
      atlas-collector migrate --db postgresql+psycopg://atlas@db/atlas
    """
    merged = {k: v if v is not None else ctx.obj.get(k) for k, v in flags.items()}
    config = _config(merged)
    from ._store import Store

    _setup_logging(config.log_level)
    try:
        store = Store(config.db_url)
        try:
            before, after = store.create_schema()
        finally:
            store.close()
    except StoreUnusable as exc:
        raise click.ClickException(str(exc)) from None
    if before == after:
        click.echo(f"schema up to date at revision {after}: {store.url}")
    else:
        click.echo(f"schema migrated from {before or 'empty'} to revision {after}: {store.url}")


from ._otel_cli import make_otel_replay  # noqa: E402 - built with the flags above

cli.add_command(make_otel_replay(_with_flags, _config))


def main() -> None:
    cli(prog_name="atlas-collector")
