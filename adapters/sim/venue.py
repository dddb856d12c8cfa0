"""SimulatedVenue: the async :class:`~ballast.engine.trading.venue.Venue` in front of the simulated
exchange.

The exchange model (:class:`~ballast.adapters.sim.exchange.SimExchange`) is pure and synchronous: it
takes commands and market data and returns events. This front end gives it the injected clock and
the venue's sink, for backtests (with a :class:`~ballast.engine.kernel.clock.SimulatedClock`) and
paper trading (with a :class:`~ballast.engine.kernel.clock.LiveClock`). Nothing else differs between
the two.

**Market data goes through the venue.** Whoever produces market data (the backtest driver, a
paper-trading feed) hands every event to ``await venue.on_market(event)`` *instead of* publishing
it. The exchange takes the event in first (prices, due market orders, resting orders the event
touches, liquidation check), then the venue emits the event itself followed by everything it
caused. The sink (in a session, the bus: market data group-committed, order and account events
durable) therefore sees ``Bar, OrderFilled, BalanceUpdated, …``: a resting limit order filled by a
bar reports its fill right after that bar, and a mark update that liquidates the account is
followed by the liquidation's fill, balance and position. A driver must not publish the event a
second time. Funding settlements come the same way: ``await venue.settle_funding(...)`` emits
``FundingPaid, BalanceUpdated`` (and any liquidation the payment causes).

**Latency** (:class:`~ballast.adapters.sim.config.Latency`), in the injected clock's time:

- ``fill_ns`` is the one-way delay from the engine to the matching engine. ``submit`` emits
  ``OrderSubmitted`` at once (the adapter sent the order) and hands the order to the exchange at
  ``now + fill_ns`` with a one-shot clock timer named ``"<venue name>:submit:<client order id>"``.
  At that time the exchange accepts or rejects it and fills it at the price it knows then, or
  rests it; its events carry that time. A cancel travels the same way (timer
  ``"<venue name>:cancel:<client order id>:<n>"``), so it never overtakes the order it cancels.
  The exchange core itself runs with zero latency: the delay is applied here, once.
- ``ack_ns`` is the delay of the venue's reports back to the engine: every order and account event
  the exchange produces (answers to submits and cancels, fills of resting orders, funding,
  liquidations) is delivered ``ack_ns`` after it happened, with ``ts_init`` = the delivery time
  (``ts_event`` stays the exchange's time). It applies to all reports alike because balances are
  reported as absolute statements: a late answer must never land after a newer statement. Market
  data and ``OrderSubmitted`` (local facts) are not delayed.

With both at zero (the default) a submit is handled at once and its events are emitted before
``submit`` returns.

**Delivery.** Every event is first put in one outbox ordered by (delivery time, production order)
and reaches the sink only through :meth:`drain`, which emits, under a lock, every event due by the
clock's current time. Production is synchronous, so the sink sees events exactly in the order the
exchange produced them (delayed ones at their delivery time). (``on_market`` with no drain under way
and nothing due skips the outbox for what is due at once and emits it straight away in the same
order; what a failing sink did not take stays in the outbox.) ``on_market``, ``submit``,
``cancel`` and ``settle_funding`` drain before they return. Timer callbacks are synchronous: a
hand-over runs the exchange and puts the events in the outbox, a delivery deadline only marks them
due; both then start a drain task on the running event loop (none without a loop: the next drain
delivers). With a simulated clock everything is deterministic; a backtest driver does, per event::

    clock.advance_to(event.ts_event)  # due hand-overs and deliveries run, in deadline order
    await venue.on_market(event)      # delivers what is due, then the event and what it caused
    await session.idle()              # actors react; their orders reach venue.submit

and ``await venue.drain()`` whenever it advances the clock without market data (for example after
the last event); ``in_flight`` and ``undelivered`` tell it whether anything is still on its way.
Venue order ids and trade ids are the exchange's counters.

**Idempotency.** A client order id the venue has seen (still on its way, or known to the exchange)
is ignored: no new order, no events. ``order_status`` answers None for an order still on its way
(the exchange has not received it yet). A cancel is answered by the exchange: ``OrderCanceled``,
or ``OrderRejected("unknown order")`` for an order that is unknown, of another symbol or no longer
open.

**Account.** One unified cross-margin account (see :mod:`ballast.adapters.sim.exchange`): every
balance is reported as account ``"spot"``, and perps are margined by the same USDT balance.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal

import msgspec

from ballast.adapters.sim.config import Latency, SimConfig
from ballast.adapters.sim.exchange import SimExchange
from ballast.adapters.sim.orders import order_submitted
from ballast.engine.kernel.clock import Clock
from ballast.engine.kernel.commands import CancelOrder, SubmitOrder
from ballast.engine.kernel.events import MarketData, Message, OrderSubmitted
from ballast.engine.kernel.instruments import Instrument
from ballast.engine.trading.venue import OrderStatus, Venue, VenueError

log = logging.getLogger(__name__)

_Due = tuple[int, int, Message]
"""(delivery time, production order, event): the outbox's ordering."""


class SimulatedVenue(Venue):
    """The simulated exchange as an async venue; see the module docstring."""

    def __init__(
        self,
        instruments: Sequence[Instrument],
        clock: Clock,
        config: SimConfig | None = None,
        *,
        name: str = "sim",
    ) -> None:
        super().__init__()
        config = config if config is not None else SimConfig()
        self.name = name
        self.clock = clock
        self.latency = config.latency
        self.exchange = SimExchange(instruments, msgspec.structs.replace(config, latency=Latency()))
        """The exchange model, for queries (balances, prices, margin). Feed it only through the
        venue, or the sink misses what it produced."""
        self._outbox: list[_Due] = []
        self._produced = itertools.count()
        self._in_flight: set[str] = set()
        self._timers: set[str] = set()
        self._timer_ids = itertools.count(1)
        self._drains: set[asyncio.Task[int]] = set()
        self._lock = asyncio.Lock()
        self._lockers = 0
        """Emitters holding or waiting for the lock."""

    # ------------------------------------------------------------------ lifecycle

    async def close(self) -> None:
        """Cancel the venue's timers (orders still on their way never arrive) and wait for the
        drain tasks already started."""
        for name in sorted(self._timers):
            self.clock.cancel(name)
        self._timers.clear()
        if self._drains:
            await asyncio.gather(*self._drains, return_exceptions=True)

    # ------------------------------------------------------------------ queries

    async def instruments(self) -> Mapping[str, Instrument]:
        return self.exchange.instruments

    async def account(self) -> Sequence[Message]:
        return self.exchange.account_events(self.clock.now_ns())

    async def order_status(self, client_order_id: str, symbol: str) -> OrderStatus | None:
        status = self.exchange.order_status(client_order_id)
        return status if status is not None and status.symbol == symbol else None

    async def open_orders(self) -> Sequence[OrderStatus]:
        return self.exchange.open_orders()

    @property
    def in_flight(self) -> list[str]:
        """Client order ids submitted but not yet handed to the exchange (``fill_ns`` > 0)."""
        return sorted(self._in_flight)

    @property
    def undelivered(self) -> int:
        """Events produced but not emitted yet (not due, or waiting for a drain)."""
        return len(self._outbox)

    # ------------------------------------------------------------------ commands

    async def submit(self, order: SubmitOrder) -> None:
        coid = order.client_order_id
        if coid in self._in_flight or self.exchange.order_status(coid) is not None:
            return
        now = self.clock.now_ns()
        self._post(now, [order_submitted(order, now)])
        if self.latency.fill_ns == 0:
            self._arrive(order, now)
        else:
            self._in_flight.add(coid)
            arrival = now + self.latency.fill_ns
            self._at(f"submit:{coid}", arrival, lambda at: self._arrive(order, at))
        await self.drain()

    async def cancel(self, order: CancelOrder) -> None:
        now = self.clock.now_ns()
        if self.latency.fill_ns == 0:
            self._report(self.exchange.cancel(order, now))
        else:
            key = f"cancel:{order.client_order_id}:{next(self._timer_ids)}"
            arrival = now + self.latency.fill_ns
            self._at(key, arrival, lambda at: self._report(self.exchange.cancel(order, at)))
        await self.drain()

    # ------------------------------------------------------------------ market data, funding

    async def on_market(self, event: MarketData) -> None:
        """Let the exchange see ``event``, then emit the event and what it caused (fills of
        touched orders, liquidations), after anything already due."""
        caused = self.exchange.on_market(event)
        now = self.clock.now_ns()
        outbox = self._outbox
        if self._lockers or (outbox and outbox[0][0] <= now) or self._sink is None:
            self._post(now, [event])
            self._report(caused)
            await self.drain()
            return
        # No drain under way or waiting and nothing due before the event (the usual case): the
        # event and, without an ack latency, what it caused are emitted in production order
        # without a trip through the outbox, the order a drain would emit them in.
        produced = self._produced
        pending: list[_Due] = [(now, next(produced), event)]
        if self.latency.ack_ns == 0:
            pending += [(now, next(produced), e) for e in caused]
        else:
            self._report(caused)
        self._lockers += 1
        try:
            async with self._lock:
                await self._emit_in_order(pending)
                if outbox:  # produced meanwhile (or delayed reports come due): as a drain would
                    await self._emit_due(None)
        finally:
            self._lockers -= 1

    async def settle_funding(self, symbol: str, rate: Decimal, mark: Decimal, ts_ns: int) -> None:
        """Settle one funding payment of ``symbol`` (``−qty × mark × rate``) at ``ts_ns`` and emit
        ``FundingPaid``, ``BalanceUpdated`` (nothing when flat), then any liquidation it caused."""
        self._report(self.exchange.settle_funding(symbol, rate, mark, ts_ns))
        await self.drain()

    # ------------------------------------------------------------------ delivery

    async def drain(self, until_ns: int | None = None) -> int:
        """Emit every event due by the clock's current time (or ``until_ns``, if later), in
        order; return how many."""
        if not self._outbox and not self._lock.locked():
            return 0  # the common case, decided without reading the clock
        if not self._lock.locked() and not self._due(until_ns):
            return 0  # nothing to emit and no drain under way: no need to take the lock
        self._lockers += 1
        try:
            async with self._lock:
                return await self._emit_due(until_ns)
        finally:
            self._lockers -= 1

    async def _emit_due(self, until_ns: int | None) -> int:
        """Emit what is due, in order (the caller holds the lock); return how many."""
        emitted = 0
        while self._due(until_ns):
            if self._sink is None:
                raise VenueError(f"{self.name}: no event sink attached")
            _, _, event = heapq.heappop(self._outbox)
            await self.emit(event)
            emitted += 1
        return emitted

    async def _emit_in_order(self, pending: list[_Due]) -> None:
        """Emit ``pending`` (due now, in production order; the caller holds the lock). If the
        sink fails, what was not emitted yet goes back to the outbox, as after a failed drain."""
        emitted = 0
        try:
            for _, _, event in pending:
                emitted += 1
                await self.emit(event)
        except BaseException:
            for item in pending[emitted:]:
                heapq.heappush(self._outbox, item)
            raise

    def _due(self, until_ns: int | None) -> bool:
        return bool(self._outbox) and self._outbox[0][0] <= self._horizon(until_ns)

    def _horizon(self, until_ns: int | None) -> int:
        now = self.clock.now_ns()
        return now if until_ns is None else max(now, until_ns)

    def _post(self, due_ns: int, events: Iterable[Message]) -> None:
        for event in events:
            heapq.heappush(self._outbox, (due_ns, next(self._produced), event))

    def _report(self, events: Sequence[Message]) -> None:
        """Queue what the exchange produced for delivery ``ack_ns`` from now."""
        if not events:
            return
        now = self.clock.now_ns()
        ack = self.latency.ack_ns
        if ack == 0:
            self._post(now, events)
            return
        due = now + ack
        self._post(due, (msgspec.structs.replace(e, ts_init=due) for e in events))
        self._at(f"deliver:{next(self._timer_ids)}", due, _nothing)

    def _arrive(self, order: SubmitOrder, at_ns: int) -> None:
        """The order reaches the exchange (its OrderSubmitted was emitted at the submit)."""
        self._in_flight.discard(order.client_order_id)
        events = self.exchange.submit(order, at_ns)
        self._report([e for e in events if not isinstance(e, OrderSubmitted)])

    def _at(self, key: str, at_ns: int, action: Callable[[int], None]) -> None:
        """Run ``action(deadline)`` at ``at_ns`` on the clock, then start a drain."""
        name = f"{self.name}:{key}"

        def fire(timer: str, deadline: int) -> None:
            self._timers.discard(timer)
            action(deadline)
            self._start_drain(deadline)

        self._timers.add(name)
        self.clock.at(name, at_ns, fire)

    def _start_drain(self, until_ns: int) -> None:
        """Deliver, in a task, what is due by ``until_ns`` (a live clock's timer may fire a
        little before its deadline by wall-clock time)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a clock advanced from synchronous code): the next drain delivers
        task = loop.create_task(self.drain(until_ns), name=f"{self.name}:drain")
        self._drains.add(task)
        task.add_done_callback(self._drain_done)

    def _drain_done(self, task: asyncio.Task[int]) -> None:
        self._drains.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: delivering events failed: %r", self.name, task.exception())


def _nothing(_: int) -> None:
    """A delivery deadline needs no action besides the drain that follows it."""
