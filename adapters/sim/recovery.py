"""Rebuilding the simulated exchange from a journal: the paper book survives a restart.

The exchange model is deterministic, so its state (balances, positions, every order it received,
its open orders, prices, and the counters behind venue order ids ``sim-N``, trade ids ``t-N`` and
liquidation ids) is rebuilt by feeding a fresh :class:`~ballast.adapters.sim.exchange.SimExchange`
the journal's own records of what reached it, at their recorded times, in journal order:

- market data (the venue takes it in just before emitting it);
- an order, when the exchange's answer to it (``OrderAccepted`` or ``OrderRejected``) is met: the
  journaled ``SubmitOrder`` is handed over at that answer's time (the fill latency is applied by
  the venue in front of the exchange, so the answer's time is the hand-over's);
- a cancel, when its answer (``OrderCanceled`` or ``OrderRejected``) is met;
- a funding settlement, when its ``FundingPaid`` is met.

Everything the exchange produces must then be what the journal recorded next, event for event
(``ts_init`` aside): a difference means the journal is not this exchange's history (another
venue model, other fees) and the rebuild stops with :class:`BookMismatch` rather than trade on a
book that is not the journal's. Events the exchange produced that a killed process never
journaled are left over at the end of a session; the exchange's state includes them, as the lost
process's did, and the restarted session reports the account afresh.

A journal with a delivery delay (``ack_ns``) is not supported: paper runs have none.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import msgspec

from ballast.adapters.sim.exchange import SimExchange
from ballast.engine.kernel.commands import CancelOrder, SubmitOrder
from ballast.engine.kernel.errors import BallastError
from ballast.engine.kernel.events import (
    AccountEvent,
    FundingPaid,
    MarketEvent,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderRejected,
    OrderStatusReported,
    OrderSubmitted,
    SessionStarted,
)

TRANSPORT = "transport:"
"""Reason prefix of the rejections the router publishes itself (the order never reached the
venue)."""


class BookMismatch(BallastError):
    """The exchange rebuilt from the journal does not reproduce what the journal recorded."""


def _same(a: Message, b: Message) -> bool:
    return msgspec.structs.replace(a, ts_init=0) == msgspec.structs.replace(b, ts_init=0)


class BookRebuild:
    """Folds journal records into ``exchange`` (a fresh one); see the module docstring."""

    def __init__(self, exchange: SimExchange) -> None:
        self.exchange = exchange
        self.records = 0
        self.applied = 0
        self.unjournaled = 0
        """Events the exchange produced that the journal never got (a killed process)."""
        self._expected: deque[Message] = deque()
        self._orders: dict[str, SubmitOrder] = {}
        self._handed: set[str] = set()
        self._cancels: dict[str, deque[CancelOrder]] = {}

    def apply(self, seq: int, message: Message) -> None:
        self.records += 1
        match message:
            case SessionStarted():
                self._drop_unjournaled()
            case SubmitOrder():
                self._orders[message.client_order_id] = message
            case CancelOrder():
                self._cancels.setdefault(message.client_order_id, deque()).append(message)
            case MarketEvent():
                self._none_missing(seq, message)
                self._produced(self.exchange.on_market(message))  # type: ignore[arg-type]
                self.applied += 1
            case OrderSubmitted() | OrderStatusReported():
                pass  # the venue's local fact, and answers to lookups: no exchange input
            case OrderRejected() if message.reason.startswith(TRANSPORT):
                pass  # the router gave the order up: it never reached the exchange
            case OrderEvent() | AccountEvent():
                self._venue_output(seq, message)

    def _none_missing(self, seq: int, message: Message) -> None:
        if self._expected:
            raise BookMismatch(
                f"seq {seq}: the journal recorded {type(message).__name__} where the simulated "
                f"exchange rebuilt from it produced {type(self._expected[0]).__name__} "
                f"{msgspec.json.encode(self._expected[0]).decode()}"
            )

    def finish(self) -> None:
        self._drop_unjournaled()

    # ------------------------------------------------------------------ matching

    def _venue_output(self, seq: int, message: Message) -> None:
        if not self._expected:
            self._cause(message)
        if not self._expected:
            return  # not the exchange's (an account statement at a session's start, a transport
            # give-up of the router): nothing to apply
        produced = self._expected.popleft()
        if not _same(produced, message):
            raise BookMismatch(
                f"seq {seq}: the journal recorded {type(message).__name__} "
                f"{msgspec.json.encode(message).decode()}, the simulated exchange rebuilt from it "
                f"produced {type(produced).__name__} {msgspec.json.encode(produced).decode()}"
            )

    def _cause(self, message: Message) -> None:
        """The exchange input ``message`` answers, applied at its time (if it answers one)."""
        now = message.ts_event
        match message:
            case OrderAccepted() | OrderRejected() if self._pending_order(message.client_order_id):
                cmd = self._orders[message.client_order_id]
                self._handed.add(cmd.client_order_id)
                events = self.exchange.submit(cmd, now)
                self._produced(e for e in events if not isinstance(e, OrderSubmitted))
            case OrderCanceled() | OrderRejected() if self._cancels.get(message.client_order_id):
                cancel = self._cancels[message.client_order_id].popleft()
                self._produced(self.exchange.cancel(cancel, now))
            case FundingPaid():
                paid = self.exchange.settle_funding(
                    message.symbol, message.rate, message.mark_price, now
                )
                self._produced(paid)
            case _:
                return
        self.applied += 1

    def _pending_order(self, client_order_id: str) -> bool:
        return client_order_id in self._orders and client_order_id not in self._handed

    def _produced(self, events: Iterable[Message]) -> None:
        self._expected.extend(events)

    def _drop_unjournaled(self) -> None:
        self.unjournaled += len(self._expected)
        self._expected.clear()
