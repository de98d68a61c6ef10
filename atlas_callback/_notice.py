"""One line on stderr when Atlas acts on a run, whatever the logging setup.

Atlas's messages go through ``logging`` (``atlas_callback.*`` loggers). A script that configures no logging would
still see a WARNING through Python's last-resort handler, but Atlas's own log capture (``track_logs``) puts a
handler on the root logger, which turns that last resort off: a stop, a pause or a lost collector would then reach
the collector's log store and nobody's terminal. This handler prints such records (WARNING and up) as one line on stderr, unless a handler of the
application's own on their way up prints them already (no line twice), or every live run asked for silence
(``AtlasConfig(quiet=True)``).
"""
from __future__ import annotations

import logging
import sys

from ._logs import shown_elsewhere

_LOGGER = "atlas_callback"
_quiet_runs: set[int] = set()
_loud_runs: set[int] = set()


class StderrNotice(logging.Handler):
    atlas_own = True  # one of Atlas's handlers: it does not count as the application showing a record

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        if not _loud_runs and _quiet_runs:
            return
        if shown_elsewhere(record):
            return
        try:
            stream = sys.stderr
            if stream is not None:
                stream.write(record.getMessage() + "\n")
                stream.flush()
        except Exception:  # noqa: BLE001 - a closed stderr must not break training
            pass


def install(run_key: int, quiet: bool) -> None:
    """Register a run (its ``id()``) as quiet or not, and install the handler once per process."""
    (_quiet_runs if quiet else _loud_runs).add(run_key)
    logger = logging.getLogger(_LOGGER)
    if not any(isinstance(h, StderrNotice) for h in logger.handlers):
        logger.addHandler(StderrNotice())


def forget(run_key: int) -> None:
    _quiet_runs.discard(run_key)
    _loud_runs.discard(run_key)
