"""The async venue interface every exchange adapter implements.

A venue receives commands (``submit``/``cancel``) and reports facts as events through the sink it
is attached to (normally ``bus.send``): OrderAccepted, OrderRejected, OrderCanceled, OrderFilled,
BalanceUpdated, PositionUpdated, FundingPaid, market data. A rejection is an event, not an
exception; exceptions mean the transport failed and the outcome is unknown, which the router
resolves by looking the order up by its client order id (``order_status``) before any resend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Self

import msgspec

from ballast.engine.kernel.commands import CancelOrder, SubmitOrder
from ballast.engine.kernel.errors import BallastError
from ballast.engine.kernel.events import Message, Side
from ballast.engine.kernel.instruments import Instrument
from ballast.engine.kernel.order_state import VenueOrderState

EventSink = Callable[[Message], Awaitable[int]]
MarketSink = Callable[[Message], bool]
"""Takes a market data event at once, from a synchronous callback; False when it cannot (the
journal is backlogged: the venue then hands the event to its :data:`EventSink`, which waits)."""


class VenueError(BallastError):
    """The venue could not be reached or answered in an unexpected way; the outcome is unknown."""


class OrderStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What the venue knows about one order, looked up by client order id."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    qty: Decimal
    filled_qty: Decimal
    avg_price: Decimal | None
    state: VenueOrderState


class VenueStats(msgspec.Struct, frozen=True, kw_only=True):
    """A live venue's transport figures, read by the metrics at scrape time (not journaled)."""

    connected: dict[str, bool]
    """Stream name → subscribed now."""
    reconnects: int
    """Reconnections since start, all streams."""
    weight_used: int
    """Request weight spent in the exchange's current window."""
    weight_limit: int
    """The budget of that window (the exchange's limit less the adapter's safety margin)."""


class Venue(ABC):
    """Base of venue adapters. ``async with venue:`` connects and disconnects."""

    name: str = "venue"

    def __init__(self) -> None:
        self._sink: EventSink | None = None
        self._market_sink: MarketSink | None = None

    def attach(self, sink: EventSink, *, market_now: MarketSink | None = None) -> None:
        """Where the venue sends the events it produces (normally ``bus.send``), and optionally
        where a stream handler may deliver market data synchronously, without a hop through
        the event loop (a session passes both)."""
        self._sink = sink
        self._market_sink = market_now

    def emit_market_now(self, event: Message) -> bool:
        """Deliver a market data event synchronously (from a stream's message handler, so the
        decision it triggers starts in the same loop callback). False: not taken, the venue
        must ``await emit(event)`` instead (no synchronous sink, or it would have to wait)."""
        sink = self._market_sink
        return sink is not None and sink(event)

    async def emit(self, event: Message) -> None:
        if self._sink is None:
            raise VenueError(f"{self.name}: no event sink attached")
        await self._sink(event)

    async def connect(self) -> None:  # noqa: B027 - optional hook
        """Open connections and start streams. Default: nothing to do."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Close connections. Default: nothing to do."""

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Called by the session once the venue is attached and its instruments and account are
        published: a live venue starts its streams here, catches up over REST on what it may
        have missed (fills since the journal's last one), reports the account afresh, then
        emits ``VenueConnectionChanged(state="caught_up")``. Default: nothing to do."""

    def stats(self) -> VenueStats | None:
        """Transport figures of a live venue; None for venues without a transport."""
        return None

    @abstractmethod
    async def instruments(self) -> Mapping[str, Instrument]:
        """Tradable instruments by symbol, with their exchange filters."""

    @abstractmethod
    async def submit(self, order: SubmitOrder) -> None:
        """Send an order. Idempotent per client order id: a resend of a known id is not a new
        order. The outcome arrives as events."""

    @abstractmethod
    async def cancel(self, order: CancelOrder) -> None:
        """Ask to cancel an order; the outcome arrives as an event."""

    @abstractmethod
    async def order_status(self, client_order_id: str, symbol: str) -> OrderStatus | None:
        """The venue's view of an order, or None if the venue never received it."""

    @abstractmethod
    async def open_orders(self) -> Sequence[OrderStatus]:
        """Every order still open on the venue (for reconciliation after a restart)."""

    @abstractmethod
    async def account(self) -> Sequence[Message]:
        """The current account as BalanceUpdated and PositionUpdated events (not emitted)."""
