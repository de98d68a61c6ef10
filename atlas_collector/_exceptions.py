"""Errors of the collector.

    CollectorError                 base; never escapes a servicer unmapped
    ├── ConfigError                a bad flag, environment value or config entry (refused at start)
    ├── InvalidMessage             a malformed client message        -> INVALID_ARGUMENT
    ├── ProtocolMismatch           a protocol version we cannot serve -> FAILED_PRECONDITION
    ├── RunNotStarted              records for a run never started   -> FAILED_PRECONDITION
    ├── RunNotFound                a query names no run              -> NOT_FOUND
    ├── AmbiguousRun               a prefix that matches many runs   -> INVALID_ARGUMENT
    ├── RunEnded                   a command to a run that has ended -> FAILED_PRECONDITION
    ├── SequenceGap                a message skips a sequence (never acked over) -> ABORTED (the client resends)
    ├── StoreUnavailable           the store cannot write right now  -> UNAVAILABLE (the client resends)
    ├── StoreUnusable              the store cannot be opened at start (refused at start, one line)
    └── Unauthenticated            a missing or wrong token           -> UNAUTHENTICATED

`GRPC_STATUS` is the one table that maps them to gRPC status codes.
"""
from __future__ import annotations

import grpc


class CollectorError(Exception):
    """Base of every error the collector raises on purpose."""


class ConfigError(CollectorError):
    """A configuration value is invalid; the message names it and what is allowed."""


class InvalidMessage(CollectorError):
    """A client message is malformed; the message names the field."""


class ProtocolMismatch(CollectorError):
    """The client speaks a protocol version this collector cannot serve."""


class RunNotStarted(CollectorError):
    """A record names a run that no RunStart has created."""


class RunNotFound(CollectorError):
    """A query names a run that does not exist."""

    def __init__(self, message: str, suggestions: list[str] | None = None) -> None:
        super().__init__(message)
        self.suggestions = suggestions or []


class AmbiguousRun(CollectorError):
    """An id prefix matches more than one run."""


class RunEnded(CollectorError):
    """A command names a run that is completed, failed or stopped."""


class SequenceGap(CollectorError):
    """A sequenced message skips ahead of what is committed: not stored, not acked; the client resends."""


class StoreUnavailable(CollectorError):
    """The store cannot write (disk full, locked, connection lost): nothing is acked; the client resends."""


class StoreUnusable(CollectorError):
    """The store cannot be opened, created or migrated at start: a path that is not a directory, a read-only file,
    a database server that refuses the connection. The message names the URL and what the store said."""


class Unauthenticated(CollectorError):
    """The bearer token is missing or wrong."""


GRPC_STATUS: dict[type[CollectorError], grpc.StatusCode] = {
    InvalidMessage: grpc.StatusCode.INVALID_ARGUMENT,
    ProtocolMismatch: grpc.StatusCode.FAILED_PRECONDITION,
    RunNotStarted: grpc.StatusCode.FAILED_PRECONDITION,
    RunNotFound: grpc.StatusCode.NOT_FOUND,
    AmbiguousRun: grpc.StatusCode.INVALID_ARGUMENT,
    RunEnded: grpc.StatusCode.FAILED_PRECONDITION,
    SequenceGap: grpc.StatusCode.ABORTED,
    StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
}


def grpc_status(exc: BaseException) -> grpc.StatusCode:
    """The status code for `exc`: its class in `GRPC_STATUS`, else INTERNAL."""
    for cls in type(exc).__mro__:
        if cls in GRPC_STATUS:
            return GRPC_STATUS[cls]
    return grpc.StatusCode.INTERNAL
