"""The order lifecycle's states: one Literal, its live and terminal sets, and the venue's subset.

An order's life starts when the rebalancer plans it and ends in exactly one terminal state; the
legal moves are :data:`MOVES`::

    planned           -> approved, vetoed, abandoned, submitted
    approved          -> submitted, abandoned
    submitted         -> open, partially_filled, filled, canceled, rejected
    open              -> partially_filled, filled, canceled, rejected
    partially_filled  -> partially_filled, filled, canceled, rejected
    vetoed, abandoned, filled, canceled, rejected: terminal, nothing moves them

- ``planned``: an intent of a ``RebalanceDecided``, waiting for the pre-trade check.
- ``approved``: passed the check (``IntentApproved``, perhaps cut), not yet sent.
- ``vetoed``: refused by the check (``OrderVetoed``). Terminal.
- ``abandoned``: planned or approved but never sent, and no longer waited for. Terminal.
- ``submitted``: the router issued ``SubmitOrder``; the venue may not have it yet.
- ``open``: the venue acknowledged it (``OrderAccepted``); nothing filled yet.
- ``partially_filled``, ``filled``, ``canceled``, ``rejected``: as the words say; the last three
  are terminal.

A venue knows only the states from ``open`` on (:data:`VenueOrderState`, the ``state`` of the
Venue contract's ``OrderStatus``); a status lookup adds ``unknown``, "the venue never received
it" (:data:`ReportedOrderState`, the ``state`` of ``OrderStatusReported``). These strings are on
the wire: they never change.

:class:`~ballast.engine.trading.order_tracker.OrderTracker` moves orders through these states.
"""

from __future__ import annotations

from typing import Final, Literal

OrderState = Literal[
    "planned",
    "approved",
    "vetoed",
    "abandoned",
    "submitted",
    "open",
    "partially_filled",
    "filled",
    "canceled",
    "rejected",
]
"""Where an order is in its life (module docstring)."""

VenueOrderState = Literal["open", "partially_filled", "filled", "canceled", "rejected"]
"""The subset of :data:`OrderState` a venue reports for an order it has."""

ReportedOrderState = Literal[VenueOrderState, "unknown"]
"""A venue lookup's answer: a :data:`VenueOrderState`, or ``unknown`` (never received)."""

PENDING_STATES: Final[frozenset[OrderState]] = frozenset({"planned", "approved"})
"""Live, not yet sent to the venue."""

WORKING_STATES: Final[frozenset[OrderState]] = frozenset({"submitted", "open", "partially_filled"})
"""Live and sent: the venue has it (or may have it) and it can still trade."""

LIVE_STATES: Final[frozenset[OrderState]] = PENDING_STATES | WORKING_STATES
"""Not finished: the order may still trade."""

TERMINAL_STATES: Final[frozenset[OrderState]] = frozenset(
    {"vetoed", "abandoned", "filled", "canceled", "rejected"}
)
"""Finished: nothing moves an order out of these."""

MOVES: Final[dict[OrderState, frozenset[OrderState]]] = {
    "planned": frozenset({"approved", "vetoed", "abandoned", "submitted"}),
    "approved": frozenset({"submitted", "abandoned"}),
    "submitted": frozenset({"open", "partially_filled", "filled", "canceled", "rejected"}),
    "open": frozenset({"partially_filled", "filled", "canceled", "rejected"}),
    "partially_filled": frozenset({"partially_filled", "filled", "canceled", "rejected"}),
    **{state: frozenset() for state in TERMINAL_STATES},
}
"""The legal moves: state → the states an order in it may go to (a fill before the venue's
acknowledgement goes straight from ``submitted``; a cancel or a reject is the last word about a
working order, whatever its state)."""
