"""The store's value conventions that are no wire conversion: what a plotted or averaged column holds.

Every conversion between atlas.v1 messages, diagnostics records and JSON lives in `atlas_proto.convert`; import it
from there. The names re-exported below are imported from this module by collector modules other sessions edit at
the same time (_ingest, _queries, _driver, _policy, _commands, _alerts, _alerts_rpc, _web/_api); once they import
from `atlas_proto.convert`, the re-exports go."""
from __future__ import annotations

import math

from atlas_proto.convert import (  # noqa: F401 - re-exported, see the docstring
    COMMAND_NAMES,
    COMMAND_VALUES,
    ENDED_STATUSES,
    FRAMEWORK_NAMES,
    FRAMEWORK_VALUES,
    ON_CRITICAL_NAMES,
    ON_CRITICAL_VALUES,
    STATUS_NAMES,
    STATUS_VALUES,
    dict_to_struct,
    float_to_ts,
    iso,
    message_to_dict,
    opt,
    ts_to_float,
)
from atlas_proto.convert import struct_dict as struct_to_dict  # noqa: F401 - _ingest's name for it


def finite_or_none(value: float | None) -> float | None:
    """Store NaN/Inf as NULL in columns that are averaged or plotted; the payload keeps the real value."""
    if value is None or not math.isfinite(value):
        return None
    return value
