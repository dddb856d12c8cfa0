"""Integer-nanosecond timestamps to and from text: the one way a time given by a user (a CLI
option, a config key, a cell of a market-data file) becomes an instant.

:func:`parse_time` reads, in this order:

- a whole number: epoch **seconds, milliseconds, microseconds or nanoseconds, told apart by
  magnitude**: below 10**11 it is seconds (up to the year 5138), below 10**14 milliseconds,
  below 10**17 microseconds, else nanoseconds. ``1700000000``, ``1700000000000``,
  ``1700000000000000`` and ``1700000000000000000`` are one instant, 2023-11-14T22:13:20Z. (So a
  number cannot name an instant before 1973-03-03 in milliseconds or finer: write a date.)
- an ISO 8601 date or date-time: ``2024-01-31``, ``2024-01-31T08:00``, ``2024-01-31 08:00:00.5``,
  with ``Z`` or an offset like ``+02:00``; without one it is UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from ballast.engine.kernel.clock import (
    NS_PER_MICROSECOND,
    NS_PER_MILLISECOND,
    NS_PER_SECOND,
)

TIME_FORMS: Final = "ISO 8601 like 2024-01-31 or 2024-01-31T08:00Z, or epoch s/ms/us/ns"
"""What :func:`parse_time` reads, in a few words for help texts and errors."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_UNITS: Final = (
    (10**11, NS_PER_SECOND),
    (10**14, NS_PER_MILLISECOND),
    (10**17, NS_PER_MICROSECOND),
)
"""(below this magnitude, the number counts units of this many ns); larger: nanoseconds."""


def ns_to_iso(ns: int) -> str:
    seconds, rest = divmod(ns, NS_PER_SECOND)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rest // NS_PER_MICROSECOND:06d}Z"


def parse_time(text: str) -> int:
    """Epoch ns of ``text``: a number of epoch s/ms/us/ns by magnitude or an ISO 8601 date or
    date-time (naive means UTC); see the module docstring. Raises ValueError saying what it
    reads."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        return epoch_number_to_ns(int(text))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use {TIME_FORMS})") from None
    return datetime_to_ns(moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))


def epoch_number_to_ns(value: int) -> int:
    """A non-negative count of epoch seconds, milliseconds, microseconds or nanoseconds (told
    apart by magnitude, see the module docstring) in nanoseconds."""
    for below, unit in _UNITS:
        if value < below:
            return value * unit
    return value


def datetime_to_ns(moment: datetime) -> int:
    """Epoch ns of an aware datetime, exactly (no float on the way)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment} is ambiguous: give a timezone")
    return (moment - _EPOCH) // _MICROSECOND * NS_PER_MICROSECOND
