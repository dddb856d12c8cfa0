"""Paper trading's market: recorded bars replayed on a live clock.

:class:`PaperFeed` hands the market events of a :class:`~adapters.data.bundle.MarketBundle` (spot
and perp bars, marks with funding) to a :class:`~adapters.sim.venue.SimulatedVenue` at an
accelerated pace: the events of one bar timestamp every ``step_s`` seconds of wall time (one hour
of hourly bars per second at ``step_s = 1``), all re-stamped with the wall-clock time they are
sent at (one instant, as they were one in the data), so data ages, event lags and staleness are
real ones. The funding settlements due between two
bar timestamps are settled before the later one (a settlement at ``t`` after the events of ``t``,
as the bundle prescribes, and as a backtest does), at the mark the settlement carries or the one
the venue knows.

The pace is a grid: step ``k`` is due ``k × step_s`` after the first, so the time spent handling a
step is not added to the wait; a feed that falls behind goes on from where it is, without a burst.
``step_s = 0`` sends as fast as the engine takes it: a step is over once every actor is idle and
the timers due at its time (the price snapshot of that instant) have fired.

The feed stops when the data is exhausted (after the last settlements) or, between two steps,
when :meth:`PaperFeed.halt` is called; :meth:`PaperFeed.run` says which in its
:class:`FeedResult`. Nothing else is published once it stops: the data goes stale and readiness
reports it. ``ballast run`` drives it (``engine/cli/cmd_run.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import msgspec

from adapters.data.bundle import FundingSettlement, MarketBundle, SettlementSchedule
from adapters.sim.venue import SimulatedVenue
from engine.events import MarketData
from engine.session import Session

StopReason = Literal["exhausted", "halted"]


@dataclass(frozen=True, slots=True)
class FeedResult:
    """How a feed ended, and how far it got."""

    stopped: StopReason
    steps: int
    """Bar timestamps sent."""
    events: int
    """Market events sent."""
    settlements: int
    """Funding settlements applied."""
    last_ns: int | None
    """Data time (``ts_event`` in the bundle) of the last bar timestamp sent; None before any."""


def by_timestamp(events: Iterable[MarketData]) -> Iterator[tuple[int, list[MarketData]]]:
    """Consecutive events grouped by ``ts_event``: (time, the events of that time)."""
    for ts, group in itertools.groupby(events, key=lambda event: event.ts_event):
        yield ts, list(group)


class PaperFeed:
    """Replays ``bundle`` into ``venue``, one bar timestamp per ``step_s``, re-stamped to now.

    ``halted`` (optional) is the event :meth:`halt` sets; pass one to halt a feed from a signal
    handler installed before the feed exists.
    """

    def __init__(
        self,
        bundle: MarketBundle,
        venue: SimulatedVenue,
        session: Session,
        *,
        step_s: float = 1.0,
        halted: asyncio.Event | None = None,
    ) -> None:
        if step_s < 0:
            raise ValueError(f"step_s: must be >= 0, got {step_s}")
        self.bundle = bundle
        self.venue = venue
        self.session = session
        self.step_s = step_s
        self.halted = halted if halted is not None else asyncio.Event()
        self.steps = 0
        self.events = 0
        self.settlements = 0
        self.last_ns: int | None = None
        self._due_at: float | None = None

    def halt(self) -> None:
        """Stop before the next bar timestamp (the one being sent is finished)."""
        self.halted.set()

    async def run(self) -> FeedResult:
        """Send every bar timestamp, in order, until the data is exhausted or :meth:`halt`."""
        due = SettlementSchedule(self.bundle.settlements)
        for ts, events in by_timestamp(self.bundle.events()):
            if await self._halted_before_next_step():
                return self._result("halted")
            await self._settle(due.before(ts))
            await self._send(events)
            self.steps += 1
            self.last_ns = ts
        if self.last_ns is not None:
            await self._settle(due.before(self.last_ns + 1))
        return self._result("exhausted")

    # ------------------------------------------------------------------ pacing

    async def _halted_before_next_step(self) -> bool:
        """Wait until the next step is due (the first is due at once); True if halted."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._due_at = now if self._due_at is None else max(self._due_at + self.step_s, now)
        wait = self._due_at - now
        if wait > 0 and not self.halted.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.halted.wait(), wait)
        return self.halted.is_set()

    # ------------------------------------------------------------------ sending

    async def _send(self, events: Iterable[MarketData]) -> None:
        """The events of one bar timestamp, stamped with one wall-clock time and handed over back
        to back: they are one instant, so the portfolio values it (its price snapshot, a timer at
        that time) once all of them are in, not after the first one."""
        clock = self.session.clock
        now = clock.now_ns()
        for event in events:
            await self.venue.on_market(msgspec.structs.replace(event, ts_event=now, ts_init=now))
            self.events += 1
        await self.session.idle()
        # The instant's own timers (its price snapshot) run before the next step, even when steps
        # are not paced (step_s = 0). The clock's timer table is not awaitable: yield until the
        # loop has run them (at most about a millisecond, the loop's timer resolution).
        while clock.due_by(now):  # noqa: ASYNC110
            await asyncio.sleep(0)
        await self.session.idle()

    async def _settle(self, settlements: Iterable[FundingSettlement]) -> None:
        for settlement in settlements:
            mark = settlement.mark
            if mark is None:
                mark = self.venue.exchange.mark_price(settlement.symbol)
            if mark is None or mark <= 0:
                continue
            now = self.session.clock.now_ns()
            await self.venue.settle_funding(settlement.symbol, settlement.rate, mark, now)
            await self.session.idle()
            self.settlements += 1

    def _result(self, stopped: StopReason) -> FeedResult:
        return FeedResult(stopped, self.steps, self.events, self.settlements, self.last_ns)
