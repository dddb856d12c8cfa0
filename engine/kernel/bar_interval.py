"""Bar intervals: the span of one candle, from one minute to one week.

A bar interval is written as a count and a unit, as exchanges name candles: ``1m``, ``15m``,
``1h``, ``4h``, ``1d``, ``1w`` (units ``s``, ``m``, ``h``, ``d``, ``w``). :func:`parse_bar_interval`
reads one (the ``[paper] bar_interval`` key and the ``--bar-interval`` option),
:func:`interval_label` writes one (file names such as ``btcusdt_spot_1h.csv``, reports).
"""

from __future__ import annotations

import re
from typing import Final

MIN_BAR_S: Final = 60
"""The shortest bar interval: one minute."""
MAX_BAR_S: Final = 7 * 86_400
"""The longest bar interval: one week."""

_UNITS: Final = {"w": 7 * 86_400, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
BAR_INTERVAL_FORMS: Final = "a count and a unit s/m/h/d/w, like 1m, 15m, 1h, 4h, 1d or 1w"


def parse_bar_interval(text: str) -> int:
    """Seconds of an interval written like ``1h`` or ``1d`` (module docstring), from one minute to
    one week. Raises ValueError saying what it reads."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if match is None:
        raise ValueError(f"not a bar interval: {text!r} (use {BAR_INTERVAL_FORMS})")
    seconds = int(match[1]) * _UNITS[match[2]]
    check_bar_interval(seconds, text.strip())
    return seconds


def check_bar_interval(seconds: int, what: str | None = None) -> None:
    """ValueError unless ``seconds`` is from one minute to one week."""
    if not MIN_BAR_S <= seconds <= MAX_BAR_S:
        shown = what or interval_label(seconds)
        raise ValueError(f"bar interval {shown} is outside 1m .. 1w")


def interval_label(seconds: int) -> str:
    """``60`` → ``1m``, ``3600`` → ``1h``, ``86400`` → ``1d``, ``604800`` → ``1w`` (as in
    exchange file names); the largest unit that divides it."""
    for unit, size in _UNITS.items():
        if seconds > 0 and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
