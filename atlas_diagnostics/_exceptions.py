"""Exceptions raised by :mod:`atlas_diagnostics`.

One tree, rooted at :class:`DiagnosticsError`::

    DiagnosticsError (Exception)
    ├── ThresholdError (also ValueError)   a bad threshold override: unknown key, wrong type, out of range
    ├── RecordError (also ValueError)      a record that cannot be built: unknown field, wrong type, bad value
    └── UnknownCheckError (also KeyError)  a check id that is not registered

The collector maps the tree to gRPC status codes (all three are INVALID_ARGUMENT); the CLI turns any of them into
one line and exit status 1.
"""

from __future__ import annotations

__all__ = ["DiagnosticsError", "RecordError", "ThresholdError", "UnknownCheckError"]


class DiagnosticsError(Exception):
    """Base class of every error raised by the diagnostics package."""


class ThresholdError(DiagnosticsError, ValueError):
    """A threshold override names an unknown key, has the wrong type or an impossible value."""


class RecordError(DiagnosticsError, ValueError):
    """A telemetry record cannot be built from the data given."""


class UnknownCheckError(DiagnosticsError, KeyError):
    """A check id that no rule is registered under."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""
