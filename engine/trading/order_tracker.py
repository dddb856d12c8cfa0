"""The engine's own orders, each moved through its lifecycle by the messages about it.

Pure bookkeeping, no I/O. Every actor that needs order state owns an :class:`OrderTracker` and
feeds it the messages it sees (:meth:`OrderTracker.apply`): the rebalancer its decisions and
what follows them, the risk actor its approvals and what follows them, the router its commands
and the order events. Actors share the type, never an instance: each builds the same picture
from the same bus, so it evolves identically in replay.

The states are :data:`~ballast.engine.kernel.order_state.OrderState`. A record starts where its
owner first hears of it: ``planned`` (an intent of a ``RebalanceDecided``), ``approved``
(``IntentApproved``), ``submitted`` (``SubmitOrder``), or the venue's state (an
``OrderStatusReported`` for an order the tracker did not know: reconciliation after a restart).
A message that would make an illegal move (a late ``OrderAccepted`` after the fill, a fill after
a cancel, ...) is reported in the returned :class:`Transition` (``problem``) and leaves the state
alone; a fill still adds to the filled quantity, because an execution is a fact whatever the
state machine thought. An acknowledgement or a status report that says an earlier state than
the order reached (``open`` after the fill: a live venue's streams and answers race) is refused
as ``stale``: out of order, not news, its owner ignores it quietly. A cancel or a reject ends an
order in any working state: it is the last word about it.

``filled_qty`` counts the executions received (``OrderFilled``), which is what the portfolio
booked; a venue status report moves the state but adds no quantity to an order the tracker
knows (its executions arrive as ``OrderFilled`` and would count twice).

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
from typing import Final

from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.events import (
    IntentApproved,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderStatusReported,
    OrderSubmitted,
    OrderVetoed,
    RebalanceDecided,
    Side,
)
from ballast.engine.kernel.instruments import base_of
from ballast.engine.kernel.order_state import (
    LIVE_STATES,
    MOVES,
    TERMINAL_STATES,
    WORKING_STATES,
    OrderState,
    ReportedOrderState,
)

ORDER_EVENTS: Final = (
    OrderSubmitted,
    OrderAccepted,
    OrderFilled,
    OrderCanceled,
    OrderRejected,
    OrderStatusReported,
)
"""The events about an order once it was sent (from the venue, or the router's lookups)."""

TRACKED: Final = (RebalanceDecided, IntentApproved, OrderVetoed, SubmitOrder, *ORDER_EVENTS)
"""The message types :meth:`OrderTracker.apply` understands."""

# What a venue's status answer means in lifecycle terms ("unknown": the venue never received it).
_REPORTED: Final[dict[ReportedOrderState, OrderState | None]] = {
    "open": "open",
    "partially_filled": "partially_filled",
    "filled": "filled",
    "canceled": "canceled",
    "rejected": "rejected",
    "unknown": None,
}

CLIENT_ID_PREFIX: Final = "bl-"
CLIENT_ID_MAX_LEN: Final = 36
_BINANCE_ALLOWED: Final = re.compile(r"[.A-Z:/a-z0-9_-]")
_BINANCE_ID: Final = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_ZERO: Final = Decimal(0)
_KEEP_PROBLEMS: Final = 1000
KEEP_FINISHED: Final = 10_000
"""Finished orders (terminal states) a tracker remembers, the most recently finished; an older
one is forgotten, so the trackers of a long-running engine stay bounded (three trackers that
kept every order, vetoed intents included, grew without end). Far more than any late message
needs: a message about a forgotten order is an unknown one (``problems``); a venue report of it
adopts it again, finished."""

_Key = tuple[str, str]
"""A record's key: ("intent", intent id), or ("order", client order id) for an order found at
the venue that no intent of this engine explains."""


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
    """One order as its owner knows it. ``client_order_id`` is empty until the order is sent;
    ``qty`` is the planned, then approved (maybe cut), then sent quantity; ``since_ns`` the event
    time the tracker first heard of it; ``avg_price`` the volume-weighted fill price."""

    client_order_id: str
    intent_id: str
    symbol: str
    side: Side
    qty: Decimal
    state: OrderState
    since_ns: int = 0
    venue_order_id: str = ""
    filled_qty: Decimal = _ZERO
    avg_price: Decimal | None = None
    reason: str = ""

    @property
    def live(self) -> bool:
        """It may still trade (not in a terminal state)."""
        return self.state in LIVE_STATES

    @property
    def working(self) -> bool:
        """Sent and still live: the venue has it, or may have it."""
        return self.state in WORKING_STATES

    @property
    def asset(self) -> str:
        return base_of(self.symbol)


@dataclass(frozen=True, slots=True)
class Transition:
    """What one message did to one order. ``problem`` is set when it was refused."""

    client_order_id: str
    before: OrderState | None
    after: OrderState | None
    problem: str | None = None
    intent_id: str = ""
    stale: bool = False
    """The refused message was a late, out-of-order update about an order that has already moved
    past what it says (an acknowledgement or a status report arriving after the fill was booked):
    expected on a live venue, whose streams and REST answers race each other."""

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def ended(self) -> bool:
        """This message took the order into a terminal state."""
        return self.before != self.after and self.after in TERMINAL_STATES


class OrderTracker:
    """Every order its owner planned, approved, sent or found at the venue (module docstring)."""

    def __init__(self, *, keep_finished: int = KEEP_FINISHED) -> None:
        if keep_finished < 1:
            raise ValueError(f"keep_finished: must be >= 1, got {keep_finished}")
        self._orders: dict[_Key, TrackedOrder] = {}
        self._live: dict[_Key, None] = {}  # the live ones, in the order they were first heard of
        self._by_client_id: dict[str, _Key] = {}
        self.keep_finished = keep_finished
        self._finished: deque[_Key] = deque()  # the finished ones, in the order they finished
        self.problems: deque[Transition] = deque(maxlen=_KEEP_PROBLEMS)
        """The latest refused moves (most recent last), for diagnostics."""

    def __len__(self) -> int:
        return len(self._orders)

    # ------------------------------------------------------------------ queries

    def get(self, client_order_id: str) -> TrackedOrder | None:
        key = self._by_client_id.get(client_order_id)
        return None if key is None else self._orders[key]

    def for_intent(self, intent_id: str) -> TrackedOrder | None:
        """The order of ``intent_id`` in any state, or None if the tracker never heard of it."""
        return self._orders.get(("intent", intent_id))

    def live_for_intent(self, intent_id: str) -> TrackedOrder | None:
        """The intent's order while it may still trade."""
        order = self.for_intent(intent_id)
        return order if order is not None and order.live else None

    def live(self) -> list[TrackedOrder]:
        """Every order that may still trade, in the order the tracker first heard of them."""
        return [self._orders[key] for key in self._live]

    def working(self) -> list[TrackedOrder]:
        """Every order sent and still live (the ones to look up at the venue)."""
        return [order for order in self.live() if order.working]

    def in_flight(self) -> list[TrackedOrder]:
        """The live orders of the engine's own intents, in the order first heard of. An order
        found at the venue that no intent of this engine explains (placed by hand, or by another
        program) is tracked, but not in flight."""
        return [self._orders[key] for key in self._live if key[0] == "intent"]

    def busy_assets(self) -> set[str]:
        """The assets with an order in flight: not to be planned again until it ends."""
        return {order.asset for order in self.in_flight()}

    def orders(self) -> list[TrackedOrder]:
        return list(self._orders.values())

    # ------------------------------------------------------------------ updates

    def apply(self, message: Message) -> tuple[Transition, ...]:
        """Apply a message about orders; one transition per order it concerned (none for a
        message of a type not in :data:`TRACKED`). Refused ones are also kept in ``problems``."""
        match message:
            case RebalanceDecided():
                results = tuple(self._plan(i, message.ts_event) for i in message.intents)
            case IntentApproved():
                results = (self._approve(message.intent, message.ts_event),)
            case OrderVetoed():
                results = (self._end_intent(message.intent_id, "vetoed", message.reason),)
            case SubmitOrder():
                results = (self._submit(message),)
            case OrderSubmitted():
                results = (self._confirm(message),)
            case OrderAccepted():
                results = (self._accept(message),)
            case OrderFilled():
                results = (self._fill(message),)
            case OrderCanceled():
                results = (self._finish(message.client_order_id, "canceled", message.reason),)
            case OrderRejected():
                results = (self._finish(message.client_order_id, "rejected", message.reason),)
            case OrderStatusReported():
                results = (self._report(message),)
            case _:
                return ()
        for result in results:  # no generator per message
            if result.problem is not None:
                self.problems.append(result)
        return results

    def abandon(self, intent_id: str, reason: str) -> Transition:
        """Stop waiting for an intent that was never sent (its owner's decision)."""
        return self._end_intent(intent_id, "abandoned", reason)

    def _plan(self, intent: OrderIntent, ts_ns: int) -> Transition:
        key: _Key = ("intent", intent.intent_id)
        known = self._orders.get(key)
        if known is not None:
            return _refused(known, "already planned")
        self._add(key, _new(intent.intent_id, intent, "planned", ts_ns))
        return Transition("", None, "planned", intent_id=intent.intent_id)

    def _approve(self, intent: OrderIntent, ts_ns: int) -> Transition:
        key: _Key = ("intent", intent.intent_id)
        known = self._orders.get(key)
        if known is None:
            self._add(key, _new(intent.intent_id, intent, "approved", ts_ns))
            return Transition("", None, "approved", intent_id=intent.intent_id)
        return self._move(key, "approved", qty=intent.qty)

    def _end_intent(self, intent_id: str, state: OrderState, reason: str) -> Transition:
        key: _Key = ("intent", intent_id)
        if key not in self._orders:
            return Transition("", None, None, "unknown intent id", intent_id)
        return self._move(key, state, reason=reason)

    def _submit(self, cmd: SubmitOrder) -> Transition:
        sent = self.get(cmd.client_order_id)
        if sent is not None:
            return _refused(sent, "already submitted")
        key: _Key = ("intent", cmd.intent_id)
        known = self._orders.get(key)
        if known is None:
            self._add(key, _new(cmd.intent_id, cmd, "submitted", cmd.ts_event))
            self._by_client_id[cmd.client_order_id] = key
            return Transition(cmd.client_order_id, None, "submitted", intent_id=cmd.intent_id)
        if known.client_order_id:
            return _refused(known, "already submitted")
        return self._send(key, cmd.client_order_id, cmd.qty)

    def _send(self, key: _Key, client_order_id: str, qty: Decimal) -> Transition:
        """A planned or approved order goes out under ``client_order_id``."""
        result = self._move(key, "submitted", qty=qty, client_order_id=client_order_id)
        if result.ok:
            self._by_client_id[client_order_id] = key
        return result

    def _confirm(self, event: OrderSubmitted) -> Transition:
        """The venue's echo of a sent order: nothing moves, unless the owner missed the
        ``SubmitOrder`` of one of its intents (then this is how it learns the client order id)."""
        order = self.get(event.client_order_id)
        if order is not None:
            return Transition(
                event.client_order_id, order.state, order.state, None, order.intent_id
            )
        key: _Key = ("intent", event.intent_id)
        known = self._orders.get(key)
        if known is None or known.client_order_id:
            return _unknown(event.client_order_id)
        return self._send(key, event.client_order_id, event.qty)

    def _accept(self, event: OrderAccepted) -> Transition:
        key = self._by_client_id.get(event.client_order_id)
        if key is None:
            return _unknown(event.client_order_id)
        order = self._orders[key]
        if not order.venue_order_id:
            self._orders[key] = replace(order, venue_order_id=event.venue_order_id)
        if _is_late(order.state, "open"):
            return _refused(order, f"illegal transition {order.state} -> open", stale=True)
        return self._move(key, "open")

    def _fill(self, event: OrderFilled) -> Transition:
        key = self._by_client_id.get(event.client_order_id)
        if key is None:
            return _unknown(event.client_order_id)
        order = self._orders[key]
        filled = order.filled_qty + event.qty
        paid = (order.avg_price or _ZERO) * order.filled_qty + event.price * event.qty
        self._orders[key] = replace(
            order,
            filled_qty=filled,
            avg_price=paid / filled if filled else None,
            venue_order_id=order.venue_order_id or event.venue_order_id,
        )
        return self._move(key, "filled" if filled >= order.qty else "partially_filled")

    def _finish(self, client_order_id: str, state: OrderState, reason: str) -> Transition:
        key = self._by_client_id.get(client_order_id)
        if key is None:
            return _unknown(client_order_id)
        return self._move(key, state, reason=reason)

    def _report(self, event: OrderStatusReported) -> Transition:
        """A venue lookup: adopt an order the tracker did not know (reconciliation after a
        restart), or move a known one to the venue's state."""
        state = _reported_state(event)
        key = self._by_client_id.get(event.client_order_id)
        if key is None:
            return self._adopt(event, state)
        order = self._orders[key]
        if state is None or state == order.state or _is_stale(order.state, state):
            return Transition(
                order.client_order_id, order.state, order.state, None, order.intent_id
            )
        if _is_late(order.state, state):
            return _refused(order, f"illegal transition {order.state} -> {state}", stale=True)
        return self._move(key, state)

    def _adopt(self, event: OrderStatusReported, state: OrderState | None) -> Transition:
        coid = event.client_order_id
        if state is None:
            return _unknown(coid)
        intent = coid.removeprefix(CLIENT_ID_PREFIX)
        intent_id = intent if client_order_id_for(intent) == coid else ""
        key: _Key = ("intent", intent_id) if intent_id else ("order", coid)
        known = self._orders.get(key)
        if known is not None:  # one of its intents, whose SubmitOrder it missed
            sent = self._send(key, coid, event.qty)
            return self._move(key, state) if sent.ok else sent
        self._add(key, _from_report(event, intent_id, state))
        self._by_client_id[coid] = key
        return Transition(coid, None, state, intent_id=intent_id)

    def _add(self, key: _Key, order: TrackedOrder) -> None:
        self._orders[key] = order
        if order.live:
            self._live[key] = None
        else:
            self._finish_key(key)

    def _finish_key(self, key: _Key) -> None:
        """``key`` finished: remembered among the latest :attr:`keep_finished`; the oldest
        finished order beyond them is forgotten."""
        self._live.pop(key, None)
        self._finished.append(key)
        while len(self._finished) > self.keep_finished:
            old = self._finished.popleft()
            order = self._orders.get(old)
            if order is None or order.live:
                continue  # terminal states never move: defensive only
            del self._orders[old]
            if order.client_order_id and self._by_client_id.get(order.client_order_id) == old:
                del self._by_client_id[order.client_order_id]

    def _move(
        self,
        key: _Key,
        state: OrderState,
        *,
        qty: Decimal | None = None,
        client_order_id: str = "",
        reason: str = "",
    ) -> Transition:
        order = self._orders[key]
        if state not in MOVES[order.state]:
            return _refused(order, f"illegal transition {order.state} -> {state}")
        # Built field by field: dataclasses.replace looks the fields up on every call (this runs
        # several times per order, on the path from a quote to its order).
        self._orders[key] = TrackedOrder(
            client_order_id or order.client_order_id,
            order.intent_id,
            order.symbol,
            order.side,
            order.qty if qty is None else qty,
            state,
            order.since_ns,
            order.venue_order_id,
            order.filled_qty,
            order.avg_price,
            reason or order.reason,
        )
        if state in TERMINAL_STATES and order.state not in TERMINAL_STATES:
            self._finish_key(key)
        coid = client_order_id or order.client_order_id
        return Transition(coid, order.state, state, intent_id=order.intent_id)


def _new(
    intent_id: str, source: OrderIntent | SubmitOrder, state: OrderState, ts_ns: int
) -> TrackedOrder:
    coid = source.client_order_id if isinstance(source, SubmitOrder) else ""
    return TrackedOrder(coid, intent_id, source.symbol, source.side, source.qty, state, ts_ns)


def _reported_state(event: OrderStatusReported) -> OrderState | None:
    state = _REPORTED[event.state]
    if state == "open" and event.filled_qty > 0:
        return "partially_filled"
    return state


def _is_stale(current: OrderState, reported: OrderState) -> bool:
    """A lookup that raced the order's own events: it reports an earlier working state."""
    return current == "partially_filled" and reported == "open"


def _is_late(current: OrderState, said: OrderState) -> bool:
    """An acknowledgement or status report that says an earlier state than the order reached
    (``open`` after a fill, ``partially_filled`` after the fill or a cancel): out of order, not
    news. A fill is never late: an execution is a fact whatever the state (a fill after a
    cancel stays a problem)."""
    return _PROGRESS.get(said, _LAST) < _PROGRESS.get(current, -1)


_LAST: Final = 3
_PROGRESS: Final[dict[OrderState, int]] = {
    "submitted": 0,
    "open": 1,
    "partially_filled": 2,
    "filled": _LAST,
    "canceled": _LAST,
    "rejected": _LAST,
}
"""How far a sent order got (the terminal states of a sent order last)."""


def _refused(order: TrackedOrder, problem: str, *, stale: bool = False) -> Transition:
    return Transition(
        order.client_order_id, order.state, order.state, problem, order.intent_id, stale
    )


def _unknown(client_order_id: str) -> Transition:
    return Transition(client_order_id, None, None, "unknown client order id")


def _from_report(event: OrderStatusReported, intent_id: str, state: OrderState) -> TrackedOrder:
    return TrackedOrder(
        client_order_id=event.client_order_id,
        intent_id=intent_id,
        symbol=event.symbol,
        side=event.side,
        qty=event.qty,
        state=state,
        since_ns=event.ts_event,
        venue_order_id=event.venue_order_id,
        filled_qty=event.filled_qty,
        avg_price=event.avg_price,
    )
