"""Clocks: one interface, a live and a simulated implementation.

Backtest, paper and live differ only in which clock (and venue) is injected. Timers behave the
same on both: a timer fires with ``ts_event`` equal to its deadline, in deadline order, ties
broken by creation order. Timer callbacks normally publish a
:class:`~ballast.engine.kernel.events.TimerFired` onto the bus, so timers are journaled inputs and
replay re-feeds them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

# The engine's one set of time units: every timestamp and duration is an integer of nanoseconds.
NS_PER_MICROSECOND: Final = 1_000
NS_PER_MILLISECOND: Final = 1_000_000
NS_PER_SECOND: Final = 1_000_000_000
NS_PER_MINUTE: Final = 60 * NS_PER_SECOND
NS_PER_HOUR: Final = 60 * NS_PER_MINUTE
NS_PER_DAY: Final = 24 * NS_PER_HOUR
DAYS_PER_YEAR: Final = 365
"""A year, where rates and returns are annualised, is 365 days of 24 h."""
NS_PER_YEAR: Final = DAYS_PER_YEAR * NS_PER_DAY

TimerCallback = Callable[[str, int], None]
"""Called with (timer name, deadline in ns)."""


@dataclass(order=True)
class _Deadline:
    at_ns: int
    order: int
    name: str = field(compare=False)
    interval_ns: int = field(compare=False)
    stop_ns: int | None = field(compare=False)
    callback: TimerCallback = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class Clock(ABC):
    """Time source and timer service."""

    def __init__(self) -> None:
        self._timers: dict[str, _Deadline] = {}
        self._order = itertools.count()

    @abstractmethod
    def now_ns(self) -> int:
        """Current time in integer nanoseconds since the Unix epoch."""

    @property
    def kind(self) -> str:
        return type(self).__name__

    def every(
        self,
        name: str,
        interval_ns: int,
        callback: TimerCallback,
        *,
        start_ns: int | None = None,
        stop_ns: int | None = None,
    ) -> None:
        """Fire ``callback`` every ``interval_ns``; first at ``start_ns`` (default now + interval).

        With ``start_ns`` aligned to a grid (for example a funding schedule at 00/08/16 UTC) every
        deadline stays on that grid, on both clocks.
        """
        if interval_ns <= 0:
            raise ValueError(f"timer {name!r}: interval must be positive, got {interval_ns}")
        first = self.now_ns() + interval_ns if start_ns is None else start_ns
        self._arm(_Deadline(first, next(self._order), name, interval_ns, stop_ns, callback))

    def at(self, name: str, at_ns: int, callback: TimerCallback) -> None:
        """Fire ``callback`` once at ``at_ns``."""
        self._arm(_Deadline(at_ns, next(self._order), name, 0, None, callback))

    def cancel(self, name: str) -> None:
        deadline = self._timers.pop(name, None)
        if deadline is not None:
            deadline.cancelled = True
            self._disarm(deadline)

    def cancel_all(self) -> None:
        for name in list(self._timers):
            self.cancel(name)

    @property
    def timer_names(self) -> list[str]:
        return sorted(self._timers)

    def due_by(self, ts_ns: int) -> bool:
        """Whether a timer is armed for ``ts_ns`` or earlier and has not fired yet."""
        return any(deadline.at_ns <= ts_ns for deadline in self._timers.values())

    def _arm(self, deadline: _Deadline) -> None:
        if deadline.name in self._timers:
            raise ValueError(f"timer {deadline.name!r} already exists")
        self._timers[deadline.name] = deadline
        self._schedule(deadline)

    def _fire(self, deadline: _Deadline) -> None:
        """Run one deadline and re-arm it if it repeats."""
        if deadline.cancelled:
            return
        repeat = deadline.interval_ns > 0
        nxt = deadline.at_ns + deadline.interval_ns
        if not repeat or (deadline.stop_ns is not None and nxt > deadline.stop_ns):
            self._timers.pop(deadline.name, None)
            repeat = False
        deadline.callback(deadline.name, deadline.at_ns)
        if repeat and not deadline.cancelled:
            deadline.at_ns = nxt  # keeps its creation order: ties stay in creation order
            self._schedule(deadline)

    @abstractmethod
    def _schedule(self, deadline: _Deadline) -> None: ...

    @abstractmethod
    def _disarm(self, deadline: _Deadline) -> None: ...


class LiveClock(Clock):
    """Wall-clock time; timers run on the asyncio loop. Deadlines are absolute epoch ns."""

    def __init__(self) -> None:
        super().__init__()
        self._handles: dict[int, asyncio.Handle] = {}

    def now_ns(self) -> int:
        return time.time_ns()

    def _schedule(self, deadline: _Deadline) -> None:
        loop = asyncio.get_running_loop()
        delay_ns = deadline.at_ns - self.now_ns()
        key = id(deadline)
        if delay_ns <= 0:  # due already (a price snapshot at its quote's time): next callback
            self._handles[key] = loop.call_soon(self._on_due, deadline)
        else:
            self._handles[key] = loop.call_later(delay_ns / NS_PER_SECOND, self._on_due, deadline)

    def _on_due(self, deadline: _Deadline) -> None:
        self._handles.pop(id(deadline), None)
        if not deadline.cancelled and self.now_ns() < deadline.at_ns:
            # The loop's timers run on the monotonic clock at its own resolution (1 ms in
            # uvloop): a deadline on the wall clock may come due early. Wait for the rest, so a
            # TimerFired is never stamped before its deadline.
            self._schedule(deadline)
            return
        self._fire(deadline)

    def _disarm(self, deadline: _Deadline) -> None:
        handle = self._handles.pop(id(deadline), None)
        if handle is not None:
            handle.cancel()


class SimulatedClock(Clock):
    """Time moves only when told. ``advance_to`` fires every due timer in deadline order,
    setting the time to each deadline before its callback runs.

    With ``timers=False`` timers are accepted but never fire: replay uses this, because the
    journal already holds every TimerFired the original run produced.
    """

    def __init__(self, start_ns: int = 0, *, timers: bool = True) -> None:
        super().__init__()
        self._now = start_ns
        self._heap: list[tuple[int, int, _Deadline]] = []
        """(deadline, creation order, deadline): compared as plain tuples, in C."""
        self._timers_enabled = timers

    def now_ns(self) -> int:
        return self._now

    def set_time(self, ts_ns: int) -> None:
        """Jump to ``ts_ns`` without firing timers (time never goes backwards)."""
        if ts_ns > self._now:
            self._now = ts_ns

    def next_deadline_ns(self) -> int | None:
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def advance_to(self, ts_ns: int) -> int:
        """Fire due timers up to and including ``ts_ns``, then set the time. Returns fired count."""
        fired = 0
        heap = self._heap
        while heap and heap[0][0] <= ts_ns:
            at_ns, _, deadline = heapq.heappop(heap)
            if deadline.cancelled:
                continue
            if at_ns > self._now:
                self._now = at_ns
            self._fire(deadline)
            fired += 1
        if ts_ns > self._now:
            self._now = ts_ns
        return fired

    def _schedule(self, deadline: _Deadline) -> None:
        if self._timers_enabled:
            heapq.heappush(self._heap, (deadline.at_ns, deadline.order, deadline))

    def _disarm(self, deadline: _Deadline) -> None:
        """Cancelled deadlines are skipped lazily when they reach the top of the heap."""
