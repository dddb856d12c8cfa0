"""The order book of the engine's own orders: one lifecycle state machine per client order id.

Pure bookkeeping, no I/O: :meth:`OrderBook.apply` takes a ``SubmitOrder`` command or an order
event and returns the :class:`Transition` it caused. States::

    submitted ─┬─> accepted ─┬─> partially_filled ─┬─> filled
               │             │                     └─> canceled
               ├─────────────┴─> filled / canceled
               └─> rejected / partially_filled

``submitted`` is entered when the engine issues ``SubmitOrder`` (the venue may not have it yet).
``filled``, ``canceled`` and ``rejected`` are terminal. An event that would make an illegal move
(a late ``OrderAccepted`` after the fill, a fill after a cancel, …) is reported in the returned
transition (``problem``) and leaves the state alone; fills still add to the filled quantity,
because an execution is a fact whatever the state machine thought.

Client order ids are derived from intent ids (:func:`client_order_id_for`), so one intent maps to
exactly one order and the id survives restarts: a resend of the same intent is idempotent at the
venue, and an order found at the venue after a restart is recognised as that intent's order.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Final, Literal

from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.events import (
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatusReported,
    OrderSubmitted,
    Side,
)

LifecycleState = Literal[
    "submitted", "accepted", "partially_filled", "filled", "canceled", "rejected"
]

LIVE_STATES: Final[frozenset[LifecycleState]] = frozenset(
    {"submitted", "accepted", "partially_filled"}
)
TERMINAL_STATES: Final[frozenset[LifecycleState]] = frozenset({"filled", "canceled", "rejected"})

_NEXT: Final[dict[LifecycleState, frozenset[LifecycleState]]] = {
    "submitted": frozenset({"accepted", "partially_filled", "filled", "canceled", "rejected"}),
    "accepted": frozenset({"partially_filled", "filled", "canceled"}),
    "partially_filled": frozenset({"partially_filled", "filled", "canceled"}),
    "filled": frozenset(),
    "canceled": frozenset(),
    "rejected": frozenset(),
}

# What a venue's status answer means in lifecycle terms ("unknown": the venue never received it).
_REPORTED: Final[dict[str, LifecycleState | None]] = {
    "open": "accepted",
    "partially_filled": "partially_filled",
    "filled": "filled",
    "canceled": "canceled",
    "rejected": "rejected",
    "expired": "canceled",
    "unknown": None,
}

CLIENT_ID_PREFIX: Final = "bl-"
CLIENT_ID_MAX_LEN: Final = 36
_BINANCE_ALLOWED: Final = re.compile(r"[.A-Z:/a-z0-9_-]")
_BINANCE_ID: Final = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_ZERO: Final = Decimal(0)
_KEEP_PROBLEMS: Final = 1000


def client_order_id_for(intent_id: str) -> str:
    """The deterministic client order id of an intent: ``"bl-" + intent_id`` when that is a valid
    Binance id (characters ``[.A-Z:/a-z0-9_-]``, at most 36), else the sanitised, shortened id
    with a hash of the full intent id appended (so distinct intents keep distinct ids)."""
    plain = CLIENT_ID_PREFIX + intent_id
    if _BINANCE_ID.match(plain):
        return plain
    clean = "".join(c if _BINANCE_ALLOWED.match(c) else "_" for c in intent_id)
    digest = hashlib.sha256(intent_id.encode()).hexdigest()[:8]
    room = CLIENT_ID_MAX_LEN - len(CLIENT_ID_PREFIX) - len(digest) - 1
    return f"{CLIENT_ID_PREFIX}{clean[:room]}-{digest}"


def is_valid_client_order_id(client_order_id: str) -> bool:
    """Whether Binance accepts ``client_order_id`` (``^[.A-Z:/a-z0-9_-]{1,36}$``)."""
    return _BINANCE_ID.match(client_order_id) is not None


@dataclass(frozen=True, slots=True)
class TrackedOrder:
    """One order as the engine knows it. ``avg_price`` is the volume-weighted fill price."""

    client_order_id: str
    intent_id: str
    symbol: str
    side: Side
    qty: Decimal
    state: LifecycleState
    venue_order_id: str = ""
    filled_qty: Decimal = _ZERO
    avg_price: Decimal | None = None
    reason: str = ""

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def remaining_qty(self) -> Decimal:
        return max(self.qty - self.filled_qty, _ZERO)


@dataclass(frozen=True, slots=True)
class Transition:
    """What one command or event did to one order. ``problem`` is set when it was refused."""

    client_order_id: str
    before: LifecycleState | None
    after: LifecycleState | None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


class OrderBook:
    """Every order the engine issued or found at the venue, by client order id."""

    def __init__(self) -> None:
        self._orders: dict[str, TrackedOrder] = {}
        self._by_intent: dict[str, str] = {}
        self.problems: deque[Transition] = deque(maxlen=_KEEP_PROBLEMS)
        """The latest refused moves (most recent last), for diagnostics."""

    def __len__(self) -> int:
        return len(self._orders)

    # ------------------------------------------------------------------ queries

    def get(self, client_order_id: str) -> TrackedOrder | None:
        return self._orders.get(client_order_id)

    def for_intent(self, intent_id: str) -> TrackedOrder | None:
        """The order of ``intent_id`` in any state, or None if the intent never had one."""
        coid = self._by_intent.get(intent_id) or client_order_id_for(intent_id)
        return self._orders.get(coid)

    def live_for_intent(self, intent_id: str) -> TrackedOrder | None:
        """The intent's order while it can still trade (submitted, accepted, partially filled)."""
        order = self.for_intent(intent_id)
        return order if order is not None and order.live else None

    def live(self) -> list[TrackedOrder]:
        return [o for o in self._orders.values() if o.live]

    def orders(self) -> list[TrackedOrder]:
        return list(self._orders.values())

    # ------------------------------------------------------------------ updates

    def apply(self, message: Message) -> Transition | None:
        """Apply a SubmitOrder or an order event; None for messages the book does not track."""
        match message:
            case SubmitOrder():
                result = self._submit(message)
            case OrderSubmitted():
                result = self._confirm(message.client_order_id)
            case OrderAccepted():
                result = self._accept(message)
            case OrderFilled():
                result = self._fill(message)
            case OrderCanceled():
                result = self._finish(message.client_order_id, "canceled", message.reason)
            case OrderRejected():
                result = self._finish(message.client_order_id, "rejected", message.reason)
            case OrderStatusReported():
                result = self._report(message)
            case _:
                return None
        if not result.ok:
            self.problems.append(result)
        return result

    def _submit(self, cmd: SubmitOrder) -> Transition:
        known = self._orders.get(cmd.client_order_id)
        if known is not None:
            return Transition(cmd.client_order_id, known.state, known.state, "already submitted")
        self._orders[cmd.client_order_id] = TrackedOrder(
            cmd.client_order_id, cmd.intent_id, cmd.symbol, cmd.side, cmd.qty, "submitted"
        )
        self._by_intent[cmd.intent_id] = cmd.client_order_id
        return Transition(cmd.client_order_id, None, "submitted")

    def _confirm(self, client_order_id: str) -> Transition:
        order = self._orders.get(client_order_id)
        if order is None:
            return _unknown(client_order_id)
        return Transition(client_order_id, order.state, order.state)

    def _accept(self, event: OrderAccepted) -> Transition:
        result = self._move(event.client_order_id, "accepted")
        order = self._orders.get(event.client_order_id)
        if order is not None and not order.venue_order_id:
            self._orders[order.client_order_id] = replace(
                order, venue_order_id=event.venue_order_id
            )
        return result

    def _fill(self, event: OrderFilled) -> Transition:
        order = self._orders.get(event.client_order_id)
        if order is None:
            return _unknown(event.client_order_id)
        filled = order.filled_qty + event.qty
        paid = (order.avg_price or _ZERO) * order.filled_qty + event.price * event.qty
        self._orders[order.client_order_id] = replace(
            order,
            filled_qty=filled,
            avg_price=paid / filled if filled else None,
            venue_order_id=order.venue_order_id or event.venue_order_id,
        )
        target: LifecycleState = "filled" if filled >= order.qty else "partially_filled"
        return self._move(order.client_order_id, target)

    def _finish(self, client_order_id: str, state: LifecycleState, reason: str) -> Transition:
        result = self._move(client_order_id, state)
        order = self._orders.get(client_order_id)
        if result.ok and order is not None:
            self._orders[client_order_id] = replace(order, reason=reason)
        return result

    def _report(self, event: OrderStatusReported) -> Transition:
        """A venue lookup: adopt an order the book did not know (reconciliation after a restart),
        or move a known one to the venue's state."""
        state = _reported_state(event)
        order = self._orders.get(event.client_order_id)
        if order is None:
            if state is None:
                return _unknown(event.client_order_id)
            self._orders[event.client_order_id] = _from_report(event, state)
            return Transition(event.client_order_id, None, state)
        if event.filled_qty > order.filled_qty:
            self._orders[order.client_order_id] = replace(
                order, filled_qty=event.filled_qty, avg_price=event.avg_price
            )
        if state is None or state == order.state or _is_stale(order.state, state):
            return Transition(order.client_order_id, order.state, order.state)
        return self._move(order.client_order_id, state)

    def _move(self, client_order_id: str, state: LifecycleState) -> Transition:
        order = self._orders.get(client_order_id)
        if order is None:
            return _unknown(client_order_id)
        if state not in _NEXT[order.state]:
            problem = f"illegal transition {order.state} -> {state}"
            return Transition(client_order_id, order.state, order.state, problem)
        self._orders[client_order_id] = replace(order, state=state)
        return Transition(client_order_id, order.state, state)


def _reported_state(event: OrderStatusReported) -> LifecycleState | None:
    state = _REPORTED.get(event.state)
    if state == "accepted" and event.filled_qty > 0:
        return "partially_filled"
    return state


def _is_stale(current: LifecycleState, reported: LifecycleState) -> bool:
    """A lookup that raced the order's own events: it reports an earlier live state."""
    return current == "partially_filled" and reported == "accepted"


def _unknown(client_order_id: str) -> Transition:
    return Transition(client_order_id, None, None, "unknown client order id")


def _from_report(event: OrderStatusReported, state: LifecycleState) -> TrackedOrder:
    intent = event.client_order_id.removeprefix(CLIENT_ID_PREFIX)
    return TrackedOrder(
        client_order_id=event.client_order_id,
        intent_id=intent if client_order_id_for(intent) == event.client_order_id else "",
        symbol=event.symbol,
        side=event.side,
        qty=event.qty,
        state=state,
        venue_order_id=event.venue_order_id,
        filled_qty=event.filled_qty,
        avg_price=event.avg_price,
    )
