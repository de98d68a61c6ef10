"""JSON-safe ``to_dict``/``from_dict`` for the frozen record dataclasses.

Non-finite floats are written as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (strict JSON has no
NaN) and read back as floats, so an exported run round-trips exactly. Unknown keys and wrong types raise
:class:`RecordError` naming the field.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, TypeVar

from ._exceptions import RecordError

T = TypeVar("T")

_NONFINITE_OUT = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
_NONFINITE_IN = {"NaN": math.nan, "nan": math.nan, "Infinity": math.inf, "inf": math.inf,
                 "-Infinity": -math.inf, "-inf": -math.inf}


def encode(value: Any) -> Any:
    """A JSON-safe copy of a record value."""
    if isinstance(value, float):
        return value if math.isfinite(value) else _NONFINITE_OUT[repr(value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [encode(v) for v in value]
    return value


def decode_float(owner: str, name: str, value: Any, optional: bool = True) -> float | None:
    if value is None:
        if optional:
            return None
        raise RecordError(f"{owner}.{name} is required")
    if isinstance(value, str) and value in _NONFINITE_IN:
        return _NONFINITE_IN[value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(f"{owner}.{name} must be a number, got {value!r}")
    return float(value)


def decode_int(owner: str, name: str, value: Any, optional: bool = True) -> int | None:
    if value is None:
        if optional:
            return None
        raise RecordError(f"{owner}.{name} is required")
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise RecordError(f"{owner}.{name} must be an integer, got {value!r}")
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], nested: Mapping[str, Any] | None = None) -> T:
    """Build ``cls`` from ``data``, decoding by the field's annotation.

    ``nested`` maps a field name to ``(kind, record_class)`` with kind ``"one"``, ``"tuple"`` or ``"dict"``.
    """
    owner = cls.__name__
    if not isinstance(data, Mapping):
        raise RecordError(f"{owner} must be built from a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise RecordError(f"{owner} has no field {unknown[0]!r}; allowed: {', '.join(fields)}")
    nested = nested or {}
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        f = fields[name]
        type_name = str(f.type)
        optional = "None" in type_name
        if name in nested:
            kind, sub = nested[name]
            kwargs[name] = _decode_nested(owner, name, kind, sub, value)
        elif type_name.startswith("float"):
            kwargs[name] = decode_float(owner, name, value, optional)
        elif type_name.startswith("int"):
            kwargs[name] = decode_int(owner, name, value, optional)
        elif type_name.startswith("bool"):
            if not isinstance(value, bool) and not (value is None and optional):
                raise RecordError(f"{owner}.{name} must be true or false, got {value!r}")
            kwargs[name] = value
        elif type_name.startswith("str"):
            if value is not None and not isinstance(value, str):
                raise RecordError(f"{owner}.{name} must be a string, got {value!r}")
            kwargs[name] = value
        elif type_name.startswith("tuple[float"):
            if not isinstance(value, (list, tuple)):
                raise RecordError(f"{owner}.{name} must be a list of numbers, got {value!r}")
            kwargs[name] = tuple(decode_float(owner, name, v, False) for v in value)
        elif type_name.startswith("tuple[int"):
            if not isinstance(value, (list, tuple)):
                raise RecordError(f"{owner}.{name} must be a list of integers, got {value!r}")
            kwargs[name] = tuple(decode_int(owner, name, v, False) for v in value)
        elif type_name.startswith("tuple[str"):
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise RecordError(f"{owner}.{name} must be a list of strings, got {value!r}")
            kwargs[name] = tuple(value)
        elif type_name.startswith("dict[str, float"):
            if not isinstance(value, Mapping):
                raise RecordError(f"{owner}.{name} must be an object of numbers, got {value!r}")
            kwargs[name] = {str(k): decode_float(owner, f"{name}.{k}", v, False) for k, v in value.items()}
        elif type_name.startswith("dict[str, int"):
            if not isinstance(value, Mapping):
                raise RecordError(f"{owner}.{name} must be an object of integers, got {value!r}")
            kwargs[name] = {str(k): decode_int(owner, f"{name}.{k}", v, False) for k, v in value.items()}
        else:  # open-ended values (architecture extras): kept as given
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise RecordError(f"{owner}: {exc}") from None


def _decode_nested(owner: str, name: str, kind: str, sub: Any, value: Any) -> Any:
    if value is None:
        return None if kind == "one" else (() if kind == "tuple" else {})
    if kind == "one":
        return value if isinstance(value, sub) else sub.from_dict(value)
    if kind == "tuple":
        if not isinstance(value, (list, tuple)):
            raise RecordError(f"{owner}.{name} must be a list, got {value!r}")
        return tuple(v if isinstance(v, sub) else sub.from_dict(v) for v in value)
    if not isinstance(value, Mapping):
        raise RecordError(f"{owner}.{name} must be an object, got {value!r}")
    return {str(k): v if isinstance(v, sub) else sub.from_dict(v) for k, v in value.items()}
