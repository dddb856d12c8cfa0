"""ccxt's unified structures → the engine's exact values and events.

The venue has ccxt hand over amounts as the exchange's decimal strings (``client.number = str``),
taken as they are. Where ccxt still gives a float (the markets' precision and limits, loaded
before the switch) the value is a short decimal (a tick, a lot, a fee rate): at most 15
significant digits survive string → float → shortest ``repr`` exactly, so ``Decimal(repr(x))``
recovers it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ballast.engine.kernel.clock import NS_PER_MILLISECOND
from ballast.engine.kernel.instruments import plain
from ballast.engine.kernel.order_state import VenueOrderState

ZERO = Decimal(0)


def dec(value: Any, default: Decimal | None = ZERO, *, finite: bool = True) -> Decimal | None:
    """An exact Decimal of a ccxt number or an exchange string; ``default`` when absent.
    ``finite``: NaN or an infinity is not an amount (ValueError); else it is returned as it is
    (a market price: the market gate rejects it, naming it)."""
    if value is None or value == "":
        return default
    if isinstance(value, Decimal):
        if not value.is_finite():
            if finite:
                raise ValueError(f"not a finite amount: {value!r}")
            return value
        return plain(value)
    if isinstance(value, bool):
        raise TypeError(f"not an amount: {value!r}")
    try:
        found = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
        if found.is_finite():
            return plain(found)
        if finite:
            raise ValueError(f"not a finite amount: {value!r}")
        return found
    except ArithmeticError as e:  # InvalidOperation, or an exponent beyond the context's
        raise ValueError(f"not an amount: {value!r}") from e


def market_price(value: Any) -> Decimal | None:
    """:func:`dec` of a streamed market price or rate: None when absent, NaN or an infinity as
    it is (the market gate rejects it)."""
    return dec(value, None, finite=False)


def amount(value: Any) -> Decimal:
    """:func:`dec` with 0 for an absent value."""
    found = dec(value)
    assert found is not None
    return found


MAX_MS = (2**63 - 1) // NS_PER_MILLISECOND
"""The latest time in ms whose ns fit a journal's signed 64-bit integer."""


def ms_to_ns(ms: Any, default_ns: int) -> int:
    """An exchange time in ms → ns; ``default_ns`` when absent, unreadable or beyond what a
    journal can hold."""
    if ms is None or ms == "":
        return default_ns
    try:
        value = int(ms)
    except (TypeError, ValueError):
        return default_ns
    return value * NS_PER_MILLISECOND if -MAX_MS <= value <= MAX_MS else default_ns


def strict_ms_to_ns(ms: Any, default_ns: int) -> int:
    """:func:`ms_to_ns` for a time that must be readable: absent → ``default_ns``; not an
    integer, or beyond what a journal can hold → ValueError."""
    if ms is None or ms == "":
        return default_ns
    if isinstance(ms, bool) or not isinstance(ms, int | str):
        raise ValueError(f"not a time in ms: {ms!r}")
    try:
        value = int(ms)
    except ValueError:
        raise ValueError(f"not a time in ms: {ms!r}") from None
    if not -MAX_MS <= value <= MAX_MS:
        raise ValueError(f"time out of range: {ms!r}")
    return value * NS_PER_MILLISECOND


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
