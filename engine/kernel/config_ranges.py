"""Allowed ranges of numeric config keys: one :class:`Range` per key, in its section's ``RANGES``.

The same table checks a loaded file (:func:`check_ranges`, from each section's ``__post_init__``)
and states the bounds in the JSON Schema (:meth:`Range.schema`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

_Number = Decimal | float | int


@dataclass(frozen=True)
class Range:
    """The allowed values of a numeric key: ``low`` and ``high`` are inclusive unless ``*_open``;
    ``None`` is no bound. Every numeric key has one (in its section's ``RANGES``), so a value the
    engine cannot work with (a leverage cap of 1e308, a band of 150 pp) is a config error naming
    the key, and ``ballast config schema`` states the same bounds."""

    low: _Number | None = None
    high: _Number | None = None
    low_open: bool = False
    high_open: bool = False

    def problem(self, value: _Number) -> str | None:
        if isinstance(value, Decimal | float) and not math.isfinite(value):
            return f"must be a finite number, got {value}"
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and (
            value >= self.high if self.high_open else value > self.high
        )
        return f"must be {self.describe()}, got {value}" if below or above else None

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high}")
        return " and ".join(parts)

    def schema(self) -> dict[str, Any]:
        """The JSON Schema keywords of these bounds (they apply to numbers only)."""
        out: dict[str, Any] = {}
        if self.low is not None:
            out["exclusiveMinimum" if self.low_open else "minimum"] = json_number(self.low)
        if self.high is not None:
            out["exclusiveMaximum" if self.high_open else "maximum"] = json_number(self.high)
        return out


def json_number(value: _Number) -> int | float:
    """A bound or default as JSON has it: 3 for Decimal(3), 0.25 for Decimal("0.25")."""
    return int(value) if value == int(value) else float(value)


def between(low: str, high: str, *, low_open: bool = False, high_open: bool = False) -> Range:
    """A range of exact decimals: ``between("0", "1", low_open=True)`` is (0, 1]."""
    return Range(Decimal(low), Decimal(high), low_open, high_open)


def check_ranges(section: msgspec.Struct) -> None:
    """Raise ``ValueError("key: problem")`` for the first value outside its section's range."""
    for name, bounds in getattr(section, "RANGES", {}).items():
        value = getattr(section, name)
        items = value.items() if isinstance(value, Mapping) else [(None, value)]
        for key, item in items:
            problem = None if item is None else bounds.problem(item)
            if problem is not None:
                raise ValueError(f"{name if key is None else f'{name}.{key}'}: {problem}")
