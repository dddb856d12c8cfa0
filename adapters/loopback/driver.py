"""The loopback exchange's market: recorded (or synthetic) bars replayed into its core at a pace.

:class:`MarketDriver` does for the loopback exchange what the paper feed
(``ballast.engine.app.paper_feed``) does for the in-process simulated venue: it walks a
:class:`~ballast.adapters.data.bundle.MarketBundle` one bar timestamp (a **step**) every ``step_s``
seconds of wall time and hands each step to the exchange core, which publishes it on its
WebSockets (``bookTicker``, ``markPriceUpdate``) and fills the orders it touches. Every event of a
step is re-stamped with one wall-clock time, the time it is sent at.

**A step**, for the bars of one data time, in the bundle's order (spot bars, then perp bars):

- per bar: the :class:`Bar` itself (resting orders see its high and low), then a
  :class:`QuoteTick` around its close: the close rounded to the instrument's tick, bid
  ``⌊spread_ticks / 2⌋`` ticks below it and ask ``spread_ticks`` ticks above the bid (one tick:
  bid = close, ask = close + tick); both sizes ``quote_size``, or 1 % of the bar's volume rounded
  down to the lot (at least one lot);
- then the step's :class:`MarkPriceUpdated` (mark = perp close, index, funding rate), with
  ``next_funding_ns`` mapped from data time to wall time at the pace:
  ``now + (next_funding − data time) × step_s / bar interval``.

Bars of symbols the core does not list are skipped.

**Funding**: the settlements of ``bundle.settlements`` due between two steps are settled before
the later one (one at ``t`` after the step of ``t``, as the bundle prescribes, as a backtest and the
paper feed do), at the mark they carry or else the latest mark of the data (the one the core was
sent), stamped now; those after the last step when the data is exhausted.

**Pacing** is a grid: step ``k`` is due ``step_s`` after step ``k − 1`` was due, so the time spent
sending a step is not added to the wait; a driver that falls behind goes on from where it is,
without a burst. ``step_s = 0`` sends as fast as the core takes it (yielding to the event loop
between steps). The first step is due at once.

**Control**: :meth:`MarketDriver.pause` stops the steps (no quotes, no marks: the data goes stale,
what an engine's staleness check must see), :meth:`MarketDriver.resume` restarts them (the next
step is due at once if its time has passed), :meth:`MarketDriver.step` sends exactly the next step
now (paused or not; the grid restarts from it), :meth:`MarketDriver.halt` stops :meth:`run` for
good between two steps. :attr:`finished` is set once the data is exhausted. Over HTTP
(:meth:`MarketDriver.register`): ``POST /_loopback/market/pause``, ``.../resume``, ``.../step``
and ``GET /_loopback/market`` (data time, steps, paused, finished), each answering the state.

**Resuming** (``position_path``): after every step and every settlement the driver writes where
it is (data time of the last step, steps sent, settlements paid since) to a small JSON file,
atomically (written beside, then renamed). A driver built on an existing file goes on after that
step, and does not pay again the settlements already paid after it: a restarted
``ballast venue serve --state FILE`` continues the market instead of replaying it. The file is
written after the core took the step (the core logs its inputs before it returns): a crash between
the two sends that step (or settlement) again after the restart. ``start_at`` (data time, epoch
ns) starts a fresh driver at the first step at or after it instead of the first one; a position
file, when present, wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, Literal, Protocol

import msgspec
from aiohttp import web

from ballast.adapters.data.bundle import FundingSettlement, MarketBundle, SettlementSchedule
from ballast.adapters.sim.exchange import SimExchange
from ballast.engine.kernel.clock import Clock
from ballast.engine.kernel.errors import BallastError
from ballast.engine.kernel.events import Bar, MarketData, MarkPriceUpdated, QuoteTick
from ballast.engine.kernel.instruments import Instrument
from ballast.engine.kernel.timefmt import ns_to_iso

StopReason = Literal["exhausted", "halted"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

QUOTE_VOLUME_SHARE = Decimal("0.01")
"""Quote sizes without ``quote_size``: this share of the bar's volume (at least one lot)."""


class MarketCore(Protocol):
    """What the driver needs of the exchange core (``adapters/loopback/core.py::LoopbackCore``)."""

    @property
    def exchange(self) -> SimExchange: ...

    async def on_market(self, event: MarketData) -> None: ...

    async def settle_funding(
        self, symbol: str, rate: Decimal, mark: Decimal, ts_ns: int
    ) -> None: ...


class ControlServer(Protocol):
    """Where the driver's control routes go (``LoopbackServer.add_control``)."""

    def add_control(self, method: str, path: str, handler: Handler) -> None: ...


@dataclass(frozen=True, slots=True)
class DriverPosition:
    """How far a driver got: the data time of its last step, the steps sent in all (over
    restarts), and how many of the settlements due before the next step it has paid."""

    data_ts_ns: int
    steps: int
    settled: int = 0


def load_position(path: Path) -> DriverPosition | None:
    """The position written at ``path``, None when there is no file. A file that is not one is
    an error naming it (a wrong path must not silently replay the market from the start)."""
    try:
        raw = json.loads(path.read_text())
        return DriverPosition(int(raw["data_ts_ns"]), int(raw["steps"]), int(raw["settled"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BallastError(f"{path}: not a market driver position file ({exc})") from None


def save_position(path: Path, position: DriverPosition) -> None:
    """Write ``position`` to ``path`` atomically (a reader sees the old file or the new one)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(asdict(position)) + "\n")
    os.replace(temporary, path)


def steps_of(events: Iterable[MarketData]) -> Iterator[tuple[int, list[MarketData]]]:
    """Consecutive events grouped by data time (``ts_event``): one step per bar timestamp."""
    for ts, group in itertools.groupby(events, key=lambda event: event.ts_event):
        yield ts, list(group)


def quote_for(
    bar: Bar, instrument: Instrument, *, spread_ticks: int, size: Decimal | None, now_ns: int
) -> QuoteTick:
    """The best bid/ask the driver quotes for ``bar`` (module docstring), stamped ``now_ns``."""
    tick = instrument.tick_size
    close = (bar.close / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick
    bid = max(close - (spread_ticks // 2) * tick, tick)
    ask = bid + spread_ticks * tick
    if size is None:
        lots = (bar.volume * QUOTE_VOLUME_SHARE / instrument.lot_size).to_integral_value(
            rounding=ROUND_DOWN
        )
        size = max(lots, Decimal(1)) * instrument.lot_size
    return QuoteTick(now_ns, now_ns, bar.symbol, bid, ask, size, size)


class MarketDriver:
    """Replays ``bundle`` into ``core``, one bar timestamp per ``step_s`` (module docstring)."""

    def __init__(
        self,
        bundle: MarketBundle,
        core: MarketCore,
        clock: Clock,
        *,
        step_s: float,
        spread_ticks: int = 1,
        start_at: int | None = None,
        quote_size: Decimal | None = None,
        position_path: Path | None = None,
    ) -> None:
        if not step_s >= 0 or step_s == float("inf"):
            raise ValueError(f"step_s: must be >= 0 and finite, got {step_s}")
        if spread_ticks < 1:
            raise ValueError(f"spread_ticks: must be >= 1, got {spread_ticks}")
        if quote_size is not None and quote_size <= 0:
            raise ValueError(f"quote_size: must be > 0, got {quote_size}")
        self.bundle = bundle
        self.core = core
        self.clock = clock
        self.step_s = step_s
        self.spread_ticks = spread_ticks
        self.quote_size = quote_size
        self.position_path = position_path
        self.finished = asyncio.Event()
        """Set once the data is exhausted (every step sent, the last settlements paid)."""
        self.settlements = 0
        """Funding settlements paid by this driver (this process)."""
        self.events = 0
        """Market events handed to the core by this driver (this process)."""
        self._instruments: Mapping[str, Instrument] = core.exchange.instruments
        self._interval_s: int | None = None
        self._marks: dict[str, Decimal] = {}
        """The latest mark of each perp in the data (also of steps skipped on a resume)."""
        self._due = SettlementSchedule(bundle.settlements)
        self._source = steps_of(bundle.events())
        resumed = load_position(position_path) if position_path is not None else None
        self.resumed_from = resumed
        """The position the driver was built on (None: a fresh start)."""
        self._steps = 0 if resumed is None else resumed.steps
        self._last_ns: int | None = None if resumed is None else resumed.data_ts_ns
        self._settled_since = 0 if resumed is None else resumed.settled
        self._skip_after = None if resumed is None else resumed.data_ts_ns
        self._skip_before = start_at if resumed is None else None
        self._paused = False
        self._halted = False
        self._running = False
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()
        self._next_due: float | None = None

    # ------------------------------------------------------------------ state

    @property
    def steps(self) -> int:
        """Steps sent (counting those of the runs a position file continues)."""
        return self._steps

    @property
    def data_ts_ns(self) -> int | None:
        """Data time of the last step sent; None before any."""
        return self._last_ns

    @property
    def next_due(self) -> float | None:
        """Loop time (``loop.time()``) the next step is due at; None before the first."""
        return self._next_due

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def halted(self) -> bool:
        return self._halted

    def state(self) -> dict[str, Any]:
        """What ``GET /_loopback/market`` answers."""
        last = self._last_ns
        return {
            "data_ts_ns": last,
            "data_time": None if last is None else ns_to_iso(last),
            "steps": self._steps,
            "events": self.events,
            "settlements": self.settlements,
            "step_s": self.step_s,
            "paused": self._paused,
            "halted": self._halted,
            "finished": self.finished.is_set(),
        }

    # ------------------------------------------------------------------ control

    def pause(self) -> None:
        """No more steps until :meth:`resume` (the one being sent is finished)."""
        self._paused = True
        self._changed.set()

    def resume(self) -> None:
        """Steps again; the next one is due at once if its time has passed while paused."""
        self._paused = False
        self._changed.set()

    def halt(self) -> None:
        """Stop :meth:`run` for good before the next step."""
        self._halted = True
        self._changed.set()

    async def step(self) -> bool:
        """Send the next step now (paused or not); the pacing grid restarts from it. False when
        the data is exhausted (nothing sent)."""
        sent = await self._advance()
        self._next_due = asyncio.get_running_loop().time() + self.step_s
        self._changed.set()
        return sent

    async def run(self) -> StopReason:
        """Send every step on the grid until the data is exhausted or :meth:`halt`."""
        if self._running:
            raise RuntimeError("the market driver is already running")
        self._running = True
        loop = asyncio.get_running_loop()
        try:
            while not self._halted:
                if self._paused:
                    await self._wait_for_change(None)
                    continue
                now = loop.time()
                due = now if self._next_due is None else self._next_due
                if due > now:
                    await self._wait_for_change(due - now)
                    continue
                if not await self._advance():
                    return "exhausted"
                # the grid: one step after this one was due; if sending took longer, now
                self._next_due = max(due + self.step_s, loop.time())
                if self.step_s == 0:
                    await asyncio.sleep(0)  # let the server and its clients take it
            return "halted"
        finally:
            self._running = False

    async def _wait_for_change(self, timeout_s: float | None) -> None:
        """Until pause/resume/step/halt is called, or ``timeout_s`` has passed."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout_s)

    # ------------------------------------------------------------------ sending

    async def _advance(self) -> bool:
        """The settlements due before the next step, then the step; at the end of the data the
        last settlements and :attr:`finished`. False when there was no step left."""
        async with self._lock:
            if self.finished.is_set():
                return False
            found = self._next_step()
            if found is None:
                if self._last_ns is not None:
                    await self._settle(self._due.before(self._last_ns + 1))
                self.finished.set()
                self._changed.set()
                return False
            ts, events = found
            await self._settle(self._due.before(ts))
            await self._send(ts, events)
            self._steps += 1
            self._last_ns = ts
            self._settled_since = 0
            self._save()
            return True

    def _next_step(self) -> tuple[int, list[MarketData]] | None:
        """The next step to send, past the ones a position file or ``start_at`` skips (their
        settlements are dropped too: they were paid, or are before the start)."""
        for ts, events in self._source:
            self._marks.update(
                (e.symbol, e.mark) for e in events if isinstance(e, MarkPriceUpdated)
            )
            if self._skip_after is not None and ts <= self._skip_after:
                self._due.before(ts)
                continue
            if self._skip_before is not None and ts < self._skip_before:
                self._due.before(ts)
                continue
            if self._skip_after is not None:
                self._due.before(self._skip_after)  # paid before the last step was sent
                self._skip_after = None
            elif self._skip_before is not None:
                self._due.before(self._skip_before)
                self._skip_before = None
            return ts, events
        if self._skip_after is not None:
            self._due.before(self._skip_after)
            self._skip_after = None
        return None

    async def _send(self, ts: int, events: list[MarketData]) -> None:
        """One step, every event stamped with one wall-clock time (module docstring)."""
        now = self.clock.now_ns()
        for event in events:
            instrument = self._instruments.get(event.symbol)
            if instrument is None:
                continue
            if isinstance(event, Bar):
                await self._take(msgspec.structs.replace(event, ts_event=now, ts_init=now))
                quote = quote_for(
                    event,
                    instrument,
                    spread_ticks=self.spread_ticks,
                    size=self.quote_size,
                    now_ns=now,
                )
                await self._take(quote)
            elif isinstance(event, MarkPriceUpdated):
                next_ns = now + self._wall_span_ns(event.next_funding_ns - ts)
                mark = msgspec.structs.replace(
                    event, ts_event=now, ts_init=now, next_funding_ns=next_ns
                )
                await self._take(mark)
            else:
                await self._take(msgspec.structs.replace(event, ts_event=now, ts_init=now))

    async def _take(self, event: MarketData) -> None:
        await self.core.on_market(event)
        self.events += 1

    def _wall_span_ns(self, data_span_ns: int) -> int:
        """A span of data time as wall time at the pace (``step_s`` per bar interval)."""
        if self.step_s == 0 or data_span_ns <= 0:
            return 0
        if self._interval_s is None:
            self._interval_s = self.bundle.interval_s
        return round(data_span_ns * self.step_s / self._interval_s)

    async def _settle(self, settlements: list[FundingSettlement]) -> None:
        """Pay ``settlements`` in order; after a restart, skip the ones already paid."""
        skip, self._settled_since = self._settled_since, 0
        for index, settlement in enumerate(settlements):
            if index < skip:
                self._settled_since += 1
                continue
            mark = settlement.mark or self._marks.get(settlement.symbol)
            if mark is None:
                mark = self.core.exchange.mark_price(settlement.symbol)
            if mark is not None and mark > 0:
                now = self.clock.now_ns()
                await self.core.settle_funding(settlement.symbol, settlement.rate, mark, now)
                self.settlements += 1
            self._settled_since += 1
            self._save()

    def _save(self) -> None:
        if self.position_path is None or self._last_ns is None:
            return
        position = DriverPosition(self._last_ns, self._steps, self._settled_since)
        save_position(self.position_path, position)

    # ------------------------------------------------------------------ HTTP control

    def register(self, server: ControlServer) -> None:
        """Add the control routes (module docstring) to the loopback server."""
        server.add_control("GET", "/_loopback/market", self._get_state)
        server.add_control("POST", "/_loopback/market/pause", self._post_pause)
        server.add_control("POST", "/_loopback/market/resume", self._post_resume)
        server.add_control("POST", "/_loopback/market/step", self._post_step)

    async def _get_state(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.state())

    async def _post_pause(self, request: web.Request) -> web.StreamResponse:
        self.pause()
        return web.json_response(self.state())

    async def _post_resume(self, request: web.Request) -> web.StreamResponse:
        self.resume()
        return web.json_response(self.state())

    async def _post_step(self, request: web.Request) -> web.StreamResponse:
        sent = await self.step()
        return web.json_response({"sent": sent, **self.state()})
