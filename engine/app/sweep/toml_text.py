"""A parsed TOML document written back as TOML text (every table inline), so that a sweep's
variant goes through the one config parser, :func:`~ballast.engine.kernel.config.parse_config`,
exactly as a file would. Numbers are read with ``parse_float=Decimal`` and written back as
written."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ballast.engine.kernel.config import toml_key


def toml_text(document: Mapping[str, Any]) -> str:
    """``key = value`` per top-level key, tables as inline tables."""
    return "".join(f"{toml_key(key)} = {toml_value(value)}\n" for key, value in document.items())


def toml_value(value: Any) -> str:
    """One TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if value.is_nan():
            return "nan"
        if value.is_infinite():
            return "-inf" if value < 0 else "inf"
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        inner = ", ".join(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items())
        return f"{{ {inner} }}" if inner else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"not a TOML value: {value!r}")
