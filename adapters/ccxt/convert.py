"""ccxt's unified structures → the engine's exact values and events.

The venue has ccxt hand over amounts as the exchange's decimal strings (``client.number = str``),
taken as they are. Where ccxt still gives a float (the markets' precision and limits, loaded
before the switch) the value is a short decimal (a tick, a lot, a fee rate): at most 15
significant digits survive string → float → shortest ``repr`` exactly, so ``Decimal(repr(x))``
recovers it.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from ballast.engine.kernel.clock import NS_PER_MILLISECOND
from ballast.engine.kernel.instruments import plain
from ballast.engine.kernel.order_state import VenueOrderState

ZERO = Decimal(0)


def dec(value: Any, default: Decimal | None = ZERO) -> Decimal | None:
    """An exact Decimal of a ccxt number or an exchange string; ``default`` when absent."""
    if value is None or value == "":
        return default
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, bool):
        raise TypeError(f"not an amount: {value!r}")
    try:
        if isinstance(value, float):
            return plain(Decimal(repr(value)))
        return plain(Decimal(str(value)))
    except InvalidOperation as e:
        raise ValueError(f"not an amount: {value!r}") from e


def amount(value: Any) -> Decimal:
    """:func:`dec` with 0 for an absent value."""
    found = dec(value)
    assert found is not None
    return found


def ms_to_ns(ms: Any, default_ns: int) -> int:
    """An exchange time in ms → ns; ``default_ns`` when absent."""
    if ms is None or ms == "":
        return default_ns
    try:
        return int(ms) * NS_PER_MILLISECOND
    except (TypeError, ValueError):
        return default_ns


def order_state(status: Any, filled: Decimal) -> VenueOrderState:
    """ccxt's unified order status (open, closed, canceled, expired, rejected) → the venue
    state."""
    if status == "closed":
        return "filled"
    if status in ("canceled", "expired", "canceling"):
        return "canceled"
    if status == "rejected":
        return "rejected"
    return "partially_filled" if filled > 0 else "open"
