"""One engine trading live on a loopback exchange, in-process, shared by many hypothesis examples.

:class:`LiveRig` runs the loopback exchange (BTC spot and perp, one true price), the real ccxt.pro
client in a :class:`~ballast.adapters.ccxt.CcxtVenue`, and a session with its reconciler and
metrics exporter, on an event loop of its own thread: a synchronous ``@given`` test hands each
example's work to it (:meth:`LiveRig.run`). Everything the session's bus delivers is kept in
``seen``; exceptions the loop's handler got (a callback or task that died) in ``loop_errors``.

The book starts on its target (BTC 50 % of 100,000 USDT, band ± 5 pp) at the true price: as long
as the engine takes only true prices it has nothing to trade, so every order it sends is an
order on bad data. :meth:`LiveRig.settle` puts a true quote and mark behind whatever was injected
(on the same sockets, so after it) and waits until the engine has them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, TypeVar

from ballast.adapters.ccxt import BINANCE, CcxtVenue
from ballast.adapters.loopback.inject import inject
from ballast.engine.app.catch_up import CatchUpClock
from ballast.engine.app.live_run import wind_down
from ballast.engine.app.reconcile import Reconciler
from ballast.engine.app.session import Session
from ballast.engine.kernel.clock import NS_PER_HOUR, NS_PER_MILLISECOND
from ballast.engine.kernel.config import Config, parse_config
from ballast.engine.kernel.events import (
    MarkPriceUpdated,
    Message,
    QuoteTick,
    VenueConnectionChanged,
    VenueMessageRejected,
)
from ballast.engine.kernel.instruments import binance_defaults
from ballast.engine.kernel.journal import Journal
from ballast.engine.observe.metrics import MetricsExporter
from tests.support.loopback import API_KEY, SECRET, Loopback, loopback_exchange, subscribed
from tests.support.waiting import eventually
from tests.support.wire_fuzz import BASE_ASK, BASE_BID, BASE_MARK, Frame

T = TypeVar("T")

SPOT: Final = "BTC/USDT"
PERP: Final = "BTC/USDT:USDT"
BALANCES: Final = {"USDT": "50000", "BTC": "1"}
WEIGHT_LIMIT: Final = 10_000_000
TRUE_NAV: Final = Decimal(50000) + (BASE_BID + BASE_ASK) / 2
CONFIG: Final = """
[venue]
kind = "binance"
[instruments]
spot = ["BTC/USDT"]
perp = ["BTC/USDT:USDT"]
[strategy]
name = "threshold"
[targets]
BTC = 0.5
[bands]
abs_pp = 5
[risk]
stale_after_s = 60
[execution]
cooldown_s = 0.1
check_interval_s = 0.1
"""
NOT_BOOKED: Final = "not booked from the stream"
"""What the venue's catch-up after unreadable user-stream messages says (its ``caught_up``)."""
_STREAMS: Final = ("btcusdt@bookticker", "user:spot", "user:futures")


class MarkerLost(AssertionError):
    """A true quote or mark put behind an injected batch never reached the engine's actors."""


class LiveRig:
    """See the module docstring. ``with LiveRig(tmp_path) as rig: rig.run(rig.settle())``."""

    def __init__(self, tmp_path: Path) -> None:
        self.journal_path = tmp_path / "journal.db"
        self.config: Config = parse_config(CONFIG)
        self.seen: list[Message] = []
        self.loop_errors: list[str] = []
        self.lb: Loopback | None = None
        self.exporter: MetricsExporter | None = None
        self.venue: CcxtVenue | None = None
        self._markers = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._thread_main, name="live-rig", daemon=True)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> LiveRig:
        self._thread.start()
        if not self._ready.wait(60):
            raise TimeoutError("the live rig did not start within 60 s")
        if self._failure is not None:
            raise self._failure
        return self

    def __exit__(self, *_: object) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        self._thread.join(60)
        if self._failure is not None:
            raise self._failure

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 60) -> T:
        """Run ``coro`` on the rig's loop and return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:
            self._failure = e
        finally:
            self._ready.set()

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.loop_errors.append(f"{context.get('message')}: {context.get('exception')!r}")
        loop.default_exception_handler(context)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.set_exception_handler(self._on_loop_error)
        self._stop = asyncio.Event()
        instruments = binance_defaults(["BTC"])
        # request weight is not under test here: every unreadable user message costs a REST
        # catch-up, a few hundred of them would wait minutes on Binance's limits
        async with loopback_exchange(
            instruments=instruments,
            balances=BALANCES,
            prices=None,
            weight_limit=WEIGHT_LIMIT,
            spot_weight_limit=WEIGHT_LIMIT,
        ) as lb:
            self.lb = lb
            await self._true_prices(0)
            clock = CatchUpClock()
            venue = CcxtVenue(
                BINANCE,
                spot=[SPOT],
                perp=[PERP],
                api_key=API_KEY,
                api_secret=SECRET,
                clock=clock,
                rest_url=lb.server.rest_url,
                ws_url=lb.server.ws_url,
            )
            self.venue = venue
            await venue.connect()
            try:
                async with Journal(self.journal_path, kind="live") as journal:
                    session = Session(self.config, clock, journal=journal, venue=venue)
                    reconciler = Reconciler(session.bus, clock, venue)
                    reconciler.install()
                    session.bus.subscribe_all(self.seen.append)
                    exporter = MetricsExporter.from_config(self.config, session.bus, clock)
                    self.exporter = exporter
                    try:
                        async with exporter, session:
                            await subscribed(lb, *_STREAMS, within_s=20)
                            # a live engine holds each symbol's first quote until the next
                            # agrees with it (market guard, unconfirmed_first): a true one first
                            await self._true_prices(0)
                            await self.settle()
                            self._ready.set()
                            await self._stop.wait()
                            await wind_down(session, 5)
                    finally:
                        await venue.close()
                        await reconciler.close()
            finally:
                await venue.close()

    # ------------------------------------------------------------------ driving

    def exchange_ms(self) -> int:
        """The exchange's clock, in ms (thread-safe: a read of the clock)."""
        assert self.lb is not None
        return self.lb.clock.now_ns() // NS_PER_MILLISECOND

    async def inject(self, frame: Frame) -> int:
        """Put ``frame`` on the sockets of its target (a perp's book and mark each on the socket
        subscribed to it: the futures market sockets are two); returns how many."""
        assert self.lb is not None
        target, text = frame.target, frame.text(self.exchange_ms())
        stream = None
        if target == "futures":
            stream = "btcusdt@markprice" if '"markPriceUpdate"' in text else "btcusdt@bookticker"
            if stream not in self.lb.server.subscriptions():
                stream = next(
                    (s for s in self.lb.server.subscriptions() if s.startswith(stream)), stream
                )
        return inject(self.lb.server, target, [text], stream=stream)

    async def _true_prices(self, marker: int) -> None:
        """The true quote on both books and the true mark, ``marker`` in the quotes' sizes and
        the mark's index (so their arrival can be told apart)."""
        assert self.lb is not None
        lb, size = self.lb, str(marker or 1)
        await lb.quote(SPOT, BASE_BID, BASE_ASK, size=size)
        await lb.quote(PERP, BASE_BID, BASE_ASK, size=size)
        now = lb.clock.now_ns()
        next_ns = (now // NS_PER_HOUR + 8) * NS_PER_HOUR
        index = BASE_MARK + Decimal(marker) / 1_000_000
        await lb.core.on_market(
            MarkPriceUpdated(now, now, PERP, BASE_MARK, index, Decimal("0.0001"), next_ns)
        )

    async def settle(self, within_s: float = 10) -> None:
        """True prices behind what was injected; returns once the engine delivered all three,
        else :class:`MarkerLost`."""
        self._markers += 1
        marker = self._markers
        start = len(self.seen)
        await self._true_prices(marker)
        index = BASE_MARK + Decimal(marker) / 1_000_000

        def arrived() -> set[str]:
            got = set()
            for m in self.seen[start:]:
                if isinstance(m, QuoteTick) and m.bid_size == marker:
                    got.add(m.symbol)
                elif isinstance(m, MarkPriceUpdated) and m.index == index:
                    got.add("mark")
            return got

        try:
            await eventually(
                lambda: arrived() == {SPOT, PERP, "mark"}, within_s=within_s, what="markers"
            )
        except AssertionError:
            raise MarkerLost(f"true prices {marker} not delivered: only {arrived()}") from None

    async def caught_up_after(self, start: int, rejections: int, within_s: float = 5) -> None:
        """Wait until ``rejections`` user-stream messages were reported since ``seen[start]``
        and a catch-up for them ended after the last of them (nothing to wait for at 0)."""

        def done() -> bool:
            window = self.seen[start:]
            last = max(
                (
                    i
                    for i, m in enumerate(window)
                    if isinstance(m, VenueMessageRejected) and m.channel.startswith("user:")
                ),
                default=-1,
            )
            reported = sum(isinstance(m, VenueMessageRejected) for m in window)
            return reported >= rejections and any(
                isinstance(m, VenueConnectionChanged)
                and m.state == "caught_up"
                and NOT_BOOKED in m.reason
                for m in window[last + 1 :]
            )

        if rejections:
            await eventually(done, within_s=within_s, what="a catch-up after the reports")
