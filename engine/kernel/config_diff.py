"""Configurations compared key by key (dotted paths such as ``risk.stale_after_s``).

``ballast replay J -c CONFIG`` uses this to say which keys of CONFIG differ from what each session
recorded, and to build the configuration it replays with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from ballast.engine.kernel.config import Config, config_from_json

_MISSING: Any = object()


def flatten(config: Config) -> dict[str, Any]:
    """Every leaf of ``config`` by dotted key (tables are walked, lists are leaves)."""
    out: dict[str, Any] = {}
    _walk(msgspec.to_builtins(config), "", out)
    return out


def _walk(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and (value or not prefix):
        for key in sorted(value):
            _walk(value[key], f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = value


def differing(a: Config, b: Config) -> list[str]:
    """Dotted keys whose values differ between ``a`` and ``b`` (or that only one has)."""
    left, right = flatten(a), flatten(b)
    keys = sorted(set(left) | set(right))
    return [k for k in keys if left.get(k, _MISSING) != right.get(k, _MISSING)]


def shown(config: Config, key: str) -> str:
    """The value of ``key`` in ``config`` as JSON (``absent`` when it has none)."""
    value = flatten(config).get(key, _MISSING)
    return "absent" if value is _MISSING else msgspec.json.encode(value).decode()


def with_keys(base: Config, source: Config, keys: list[str]) -> Config:
    """``base`` with the values of ``keys`` taken from ``source``."""
    merged = msgspec.to_builtins(base)
    given = flatten(source)
    for key in keys:
        *path, leaf = key.split(".")
        table = merged
        for part in path:
            table = table.setdefault(part, {})
        if key in given:
            table[leaf] = given[key]
        else:
            table.pop(leaf, None)
    return config_from_json(msgspec.json.encode(merged).decode())
