"""`atlas-collector otel-replay RUN`: send a run's trace again, from the store, to the OTLP backend."""
from __future__ import annotations

import logging
from typing import Any, Callable

import click

from ._exceptions import CollectorError, ConfigError


def make_otel_replay(with_flags: Callable[[Any], Any], load: Callable[[dict[str, Any]], Any]) -> click.Command:
    """The subcommand, built with the group's shared flags (`with_flags`) and config loader (`load`)."""

    @click.command("otel-replay")
    @click.argument("run")
    @click.option("--project", default="", help="Resolve RUN by name within this project.")
    @click.option("--with-open-root", is_flag=True,
                  help="Also send the root span of a run that has not ended (stale or running), ending at its "
                       "last data. Its real root is sent again when the run ends.")
    @with_flags
    @click.pass_context
    def otel_replay(ctx: click.Context, run: str, project: str, with_open_root: bool, **flags: Any) -> None:
        """Export RUN's trace (epoch spans, then the root once the run has ended) from the store to the
        OTLP endpoint (--otlp-endpoint / ATLAS_OTLP_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT), e.g. for a
        backend that was down while the run trained. Span ids derive from the run id, so what the backend
        already holds is sent with the same ids. RUN: an id, an id prefix (6+ characters), a name, or `latest`.

        \b
        Example:
          atlas-collector otel-replay latest --db sqlite:///runs.db --otlp-endpoint 127.0.0.1:4317
        """
        merged = {k: v if v is not None else (ctx.obj or {}).get(k) for k, v in flags.items()}
        config = load(merged)
        logging.basicConfig(level=config.log_level, format="%(asctime)s level=%(levelname)s logger=%(name)s "
                            "%(message)s")
        from ._otel import OtelExporter
        from ._store import Store

        store = Store(config.db_url)
        try:
            try:
                exporter = OtelExporter.from_config(config, store)
            except ConfigError as exc:
                raise click.UsageError(str(exc)) from None
            if exporter is None:
                raise click.UsageError("no OTLP endpoint: give --otlp-endpoint (or ATLAS_OTLP_ENDPOINT, or "
                                       "OTEL_EXPORTER_OTLP_ENDPOINT)")
            try:
                with store.connect() as conn:
                    run_id = store.resolve_run(conn, run, project)
                sent = exporter.replay(run_id, include_root=True if with_open_root else None)
                exporter.force_flush(5.0)
            except CollectorError as exc:
                raise click.ClickException(str(exc)) from None
            except ConnectionError as exc:
                raise click.ClickException(str(exc)) from None
            finally:
                exporter.shutdown(5.0)
        finally:
            store.close()
        click.echo(f"exported {sent} span(s) of run {run_id}")

    return otel_replay
