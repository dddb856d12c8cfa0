"""Paper trading's market: recorded bars replayed on a live clock.

:class:`PaperFeed` hands the market events of a :class:`~ballast.adapters.data.bundle.MarketBundle`
(spot and perp bars, marks with funding) to a :class:`~ballast.adapters.sim.venue.SimulatedVenue` at
an accelerated pace: the events of one bar timestamp every ``step_s`` seconds of wall time (one hour
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

**Resuming.** Before the events of a step (after its settlements) the feed journals
:class:`~ballast.engine.kernel.events.FeedAdvanced` with the step's data time. A restarted run folds
its journal with :class:`FeedPosition` and hands the feed the :class:`FeedResume`: the feed skips
every step before that data time, sends what a killed process had not yet sent of that step, and
goes on with the next; of the settlements due before the next step, the ones the journal shows as
paid (``FundingPaid`` after the last ``FeedAdvanced``) are not paid again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

import msgspec

from ballast.adapters.data.bundle import FundingSettlement, MarketBundle, SettlementSchedule
from ballast.adapters.sim.venue import SimulatedVenue
from ballast.engine.app.session import Session
from ballast.engine.kernel.events import FeedAdvanced, FundingPaid, MarketData, MarketEvent, Message

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


@dataclass(frozen=True, slots=True)
class FeedResume:
    """Where a journal's feed stopped: the data time of its last step, how many of that step's
    market events were sent, and the funding paid since (symbol, rate), in order."""

    data_ts_ns: int
    sent: int
    paid: tuple[tuple[str, Decimal], ...] = ()


class FeedPosition:
    """Folds journal messages (in seq order) into the :class:`FeedResume` they leave."""

    def __init__(self) -> None:
        self._step: FeedAdvanced | None = None
        self._sent = 0
        self._paid: list[tuple[str, Decimal]] = []

    def apply(self, message: Message) -> None:
        if isinstance(message, FeedAdvanced):
            self._step, self._sent, self._paid = message, 0, []
        elif self._step is None:
            return
        elif isinstance(message, MarketEvent):
            self._sent += 1
        elif isinstance(message, FundingPaid):
            self._paid.append((message.symbol, message.rate))

    @property
    def resume(self) -> FeedResume | None:
        if self._step is None:
            return None
        return FeedResume(self._step.data_ts_ns, self._sent, tuple(self._paid))


def unpaid(
    settlements: list[FundingSettlement], paid: tuple[tuple[str, Decimal], ...]
) -> list[FundingSettlement]:
    """``settlements`` after the last one ``paid`` shows (matched in order by symbol and rate).
    One that paid nothing (a flat position) left no trace: it may be applied again, to no effect."""
    done = 0
    matched = 0
    for index, due in enumerate(settlements):
        if matched < len(paid) and paid[matched] == (due.symbol, due.rate):
            matched += 1
            done = index + 1
    return settlements[done:]


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
        resume: FeedResume | None = None,
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
        self.resume = resume
        self._paid = resume.paid if resume is not None else ()
        self._due_at: float | None = None

    def halt(self) -> None:
        """Stop before the next bar timestamp (the one being sent is finished)."""
        self.halted.set()

    async def run(self) -> FeedResult:
        """Send every bar timestamp, in order, until the data is exhausted or :meth:`halt`."""
        due = SettlementSchedule(self.bundle.settlements)
        resume = self.resume
        for ts, events in by_timestamp(self.bundle.events()):
            if resume is not None and ts <= resume.data_ts_ns:
                due.before(ts)  # paid before that step was journaled
                if ts == resume.data_ts_ns:
                    await self._finish_step(ts, events[resume.sent :])
                continue
            if await self._halted_before_next_step():
                return self._result("halted")
            await self._settle(self._unpaid(due.before(ts)))
            await self.session.bus.send(FeedAdvanced(*self._stamp(), ts, len(events)))
            await self._send(events)
            self.steps += 1
            self.last_ns = ts
        if self.last_ns is not None:
            await self._settle(self._unpaid(due.before(self.last_ns + 1)))
        return self._result("exhausted")

    async def _finish_step(self, ts: int, rest: list[MarketData]) -> None:
        """The step a stopped run had journaled last: send what it had not sent of it."""
        if rest:
            await self._halted_before_next_step()
            await self._send(rest)
            self.steps += 1
        self.last_ns = ts

    def _unpaid(self, settlements: list[FundingSettlement]) -> list[FundingSettlement]:
        """The first settlements after a resume skip those the journal shows as paid."""
        paid, self._paid = self._paid, ()
        return unpaid(settlements, paid) if paid else settlements

    def _stamp(self) -> tuple[int, int]:
        now = self.session.clock.now_ns()
        return now, now

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
