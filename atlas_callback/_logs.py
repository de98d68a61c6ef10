"""Log capture: Python logging records and warnings emitted during the run, batched to the collector.

A handler on the root logger (and `logging.captureWarnings`) turns each record at or above `level` into
a LogRecord handed to the sender; counts per epoch go into the epoch summary. Atlas's own loggers and
gRPC's are skipped (no feedback loop). At most `max_per_epoch` records per epoch are sent; the counts
stay exact."""
from __future__ import annotations

import logging
import threading
from typing import Callable

from atlas_proto.v1 import telemetry_pb2 as tpb

_SKIP = ("atlas_callback", "atlas_collector", "grpc", "codecarbon")


class LogCapture(logging.Handler):
    atlas_own = True  # one of Atlas's handlers: it does not count as the application showing a record

    def __init__(self, send: Callable[[tpb.LogRecord], None], *, level: int = logging.INFO,
                 max_per_epoch: int = 1000) -> None:
        super().__init__(level)
        self._send = send
        self._max = max_per_epoch
        self._lock_counts = threading.Lock()
        self.epoch = 0
        self.console = self.warning = self.error = 0
        self._sent_this_epoch = 0
        self._captured_warnings = False

    def attach(self) -> None:
        root = logging.getLogger()
        if self not in root.handlers:
            root.addHandler(self)
        if root.level > self.level:
            # Records below the root's level never reach handlers; leave the user's level alone.
            pass
        self._captured_warnings = not any(not isinstance(h, logging.NullHandler)
                                          for h in logging.getLogger("py.warnings").handlers)
        logging.captureWarnings(True)

    def detach(self) -> None:
        logging.getLogger().removeHandler(self)
        if self._captured_warnings:
            logging.captureWarnings(False)

    def contribute(self, summary: tpb.EpochSummary) -> None:
        """The `Channel` epoch contribution: the epoch's counts of console lines, warnings and errors."""
        summary.log_counts.CopyFrom(self.epoch_counts(summary.epoch + 1))

    def close(self) -> None:
        """The `Channel` close: stop capturing (as `logging.Handler.close`, which `logging.shutdown` calls too)."""
        self.detach()
        super().close()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.name.startswith(_SKIP):
                return
            self._last_resort(record)
            kind = "warning" if record.name == "py.warnings" else ("error" if record.levelno >= logging.ERROR
                                                                   else "console")
            with self._lock_counts:
                if kind == "error":
                    self.error += 1
                elif kind == "warning" or record.levelno == logging.WARNING:
                    self.warning += 1
                else:
                    self.console += 1
                if self._sent_this_epoch >= self._max:
                    return
                self._sent_this_epoch += 1
            out = tpb.LogRecord(level=_level(record.levelno), logger=record.name[:200],
                                message=_message(record), epoch=self.epoch, kind=kind)
            out.time.FromNanoseconds(int(record.created * 1e9))
            self._send(out)
        except Exception:  # noqa: BLE001 - logging must never break the program
            pass

    @staticmethod
    def _last_resort(record: logging.LogRecord) -> None:
        """What Python would have printed without this handler: with no handler of the application's on the
        record's way up, a WARNING or worse goes to `logging.lastResort` (stderr). Attaching the capture must not
        silence a script's own warnings in its terminal."""
        last = logging.lastResort
        if last is None or record.levelno < last.level:
            return
        if not shown_elsewhere(record):
            last.handle(record)

    def epoch_counts(self, epoch_after: int) -> tpb.LogCounts:
        with self._lock_counts:
            counts = tpb.LogCounts(console=self.console, warning=self.warning, error=self.error)
            self.console = self.warning = self.error = 0
            self._sent_this_epoch = 0
            self.epoch = epoch_after
        return counts


def _level(levelno: int) -> str:
    for value, name in ((50, "CRITICAL"), (40, "ERROR"), (30, "WARNING"), (20, "INFO")):
        if levelno >= value:
            return name
    return "DEBUG"


def _message(record: logging.LogRecord) -> str:
    try:
        text = record.getMessage()
    except Exception:  # noqa: BLE001
        text = str(record.msg)
    if record.exc_info and record.exc_info[1] is not None:
        text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
    return text[:10_000]


def shown_elsewhere(record: logging.LogRecord) -> bool:
    """Whether a handler of the application's (not one of Atlas's: `atlas_own`) on the record's way up to the root
    would handle it."""
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        for h in logger.handlers:
            # (a NullHandler shows nothing: a library's `logging.getLogger("py.warnings").addHandler(NullHandler())`
            # must not make the script's warnings vanish from its terminal)
            if getattr(h, "atlas_own", False) or isinstance(h, logging.NullHandler) or record.levelno < h.level:
                continue
            return True
        if not logger.propagate:
            break
        logger = logger.parent
    return False
