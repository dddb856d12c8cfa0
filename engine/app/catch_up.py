"""Catching up: a restarted session rebuilds its actors' state from the journal's own records.

A paper (later: live) run restarted on its journal resumes instead of starting a new book. Its
actors are built fresh, then fed every input the journal holds (market data, account and order
events, timer firings, in seq order, each at its recorded time) exactly as ``ballast replay``
feeds them: event sourcing through the same components, no second model of the state. What they
publish meanwhile is neither journaled nor sent anywhere: the journal already holds what the
earlier sessions said and did. Then the session goes live: its clock runs on the wall clock (the
timers the actors armed meanwhile are armed for real), its bus journals again, and the router
reaches the venue.

Replay does the same on a ``SessionStarted`` with ``resumed_from_seq``, through the same
:func:`catch_up`, so ``replay --verify`` reproduces a resumed session like any other. Once live,
the actors' ``on_resume`` reconciles with the venue (the router looks up the orders it still
holds as live); what it learns is journaled as input events, which replay re-feeds.

The pieces a session swaps while catching up:

- :class:`CatchUpClock`: a live clock that first follows the records' time, its timers held;
- :meth:`ballast.engine.kernel.bus.Bus.replaying`: the bus dispatches recorded records without
journaling;
- :class:`GatedVenue`: the venue the actors see is silent until opened (the orders of the
  records were sent long ago).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Mapping, Sequence
from dataclasses import dataclass

from ballast.engine.kernel.actor import Actor
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import LiveClock, SimulatedClock, _Deadline
from ballast.engine.kernel.commands import CancelOrder, SubmitOrder
from ballast.engine.kernel.events import Message, SessionStarted, TimerFired
from ballast.engine.kernel.instruments import Instrument
from ballast.engine.kernel.journal import Record
from ballast.engine.trading.venue import OrderStatus, Venue, VenueStats


class CatchUpClock(LiveClock):
    """A :class:`LiveClock` that can first replay: between :meth:`replay_from` and
    :meth:`go_live` its time is the one set by the records fed (it never goes backwards) and its
    timers are kept but not armed. Going live arms the ones still pending: a one-shot deadline
    that passed while the engine was down fires at once; a repeating one goes on at its first
    grid point from now (the missed ones are not fired in a burst)."""

    def __init__(self) -> None:
        super().__init__()
        self._replay_ns: int | None = None

    @property
    def kind(self) -> str:
        return "LiveClock"

    @property
    def replaying(self) -> bool:
        return self._replay_ns is not None

    def now_ns(self) -> int:
        return self._replay_ns if self._replay_ns is not None else time.time_ns()

    def replay_from(self, ts_ns: int) -> None:
        self._replay_ns = ts_ns

    def set_time(self, ts_ns: int) -> None:
        if self._replay_ns is not None and ts_ns > self._replay_ns:
            self._replay_ns = ts_ns

    def fired(self, name: str, deadline_ns: int) -> None:
        """A recorded TimerFired: that deadline is spent (a repeating one moves past it)."""
        deadline = self._timers.get(name)
        if deadline is None or deadline.at_ns > deadline_ns:
            return
        if deadline.interval_ns == 0:
            del self._timers[name]
        else:
            deadline.at_ns = deadline_ns + deadline.interval_ns

    def go_live(self) -> None:
        self._replay_ns = None
        now = self.now_ns()
        for deadline in list(self._timers.values()):
            if deadline.interval_ns and deadline.at_ns < now:
                missed = -(-(now - deadline.at_ns) // deadline.interval_ns)
                deadline.at_ns += missed * deadline.interval_ns
            super()._schedule(deadline)

    def _schedule(self, deadline: _Deadline) -> None:
        if self._replay_ns is None:
            super()._schedule(deadline)

    def _disarm(self, deadline: _Deadline) -> None:
        if self._replay_ns is None:
            super()._disarm(deadline)


class GatedVenue(Venue):
    """``inner`` as the actors see it: silent (it accepts commands, knows no order) until
    :meth:`open`, then ``inner`` itself. Events still flow from ``inner`` to the session."""

    def __init__(self, inner: Venue) -> None:
        super().__init__()
        self.inner = inner
        self.name = inner.name
        self.is_open = False

    def open(self) -> None:
        self.is_open = True

    async def instruments(self) -> Mapping[str, Instrument]:
        return await self.inner.instruments()

    async def submit(self, order: SubmitOrder) -> None:
        if self.is_open:
            await self.inner.submit(order)

    async def cancel(self, order: CancelOrder) -> None:
        if self.is_open:
            await self.inner.cancel(order)

    async def order_status(self, client_order_id: str, symbol: str) -> OrderStatus | None:
        return await self.inner.order_status(client_order_id, symbol) if self.is_open else None

    async def open_orders(self) -> Sequence[OrderStatus]:
        return await self.inner.open_orders() if self.is_open else []

    async def account(self) -> Sequence[Message]:
        return await self.inner.account() if self.is_open else []

    async def start(self) -> None:
        """The session starts the venue itself (on ``inner``); forwarded for any other caller."""
        await self.inner.start()

    def stats(self) -> VenueStats | None:
        return self.inner.stats()


@dataclass(frozen=True, slots=True)
class CaughtUp:
    records: int
    inputs: int
    last_seq: int


async def catch_up(
    bus: Bus,
    actors: Sequence[Actor],
    clock: CatchUpClock | SimulatedClock,
    records: AsyncIterable[Record],
) -> CaughtUp:
    """Feed every input of ``records`` to ``actors`` on ``bus`` (which must not journal: see
    :meth:`Bus.replaying`), each at its recorded ``ts_init``, as replay does. Each session's
    records are dispatched under its own session id, so the ids the actors derive from it are the
    ones recorded. Sessions' boundaries are not boundaries here: the actors live on, as the state
    they rebuild did."""
    count = inputs = last_seq = 0
    async for rec in records:
        count += 1
        last_seq = rec.seq
        message = rec.message
        if isinstance(message, SessionStarted):
            bus.session_id = message.session_id
            continue
        if type(message).role != "input":
            continue
        clock.set_time(message.ts_init)
        if isinstance(message, TimerFired) and isinstance(clock, CatchUpClock):
            clock.fired(message.name, message.ts_event)
        bus.republish(rec.seq, message)
        for actor in actors:
            if actor._tasks:
                await actor.idle()
        inputs += 1
    return CaughtUp(count, inputs, last_seq)
