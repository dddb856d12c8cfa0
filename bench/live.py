"""Live path through ccxt.pro over loopback: quote on the exchange → order received by the exchange,
and the quote rate the engine sustains without lag.

Two processes, so they do not share one event loop (nor one GIL): this one runs the loopback
exchange (:class:`~ballast.adapters.loopback.core.LoopbackCore` +
:class:`~ballast.adapters.loopback.server.LoopbackServer`, uvloop) and publishes the quotes itself;
a child (``python -m bench.live engine ...``, uvloop) runs the engine: a session with its journal
(fsync'd: every order command is durable before it is sent), the trading pipeline and the
:class:`~ballast.adapters.ccxt.venue.CcxtVenue` driving the real ccxt.pro client, as a live run
does.

Engine set-up: BTC/USDT spot only, threshold strategy with a 50 % BTC target, a ±0.1 pp band, no
cooldown; the account starts on target (50,000 USDT + 1 BTC at 50,000). The portfolio's price
snapshot throttle (``execution.price_snapshot_interval_s``: by default a price move is valued at
most once per second of event time) is 0 so every quote is valued when it arrives.

1. **Quote → order** (goal p99 ≤ 5 ms): the exchange alternates the price between 50,000 and
   50,500, so each quote moves the BTC weight out of its band and the engine sends one market
   order to bring it back. Timestamps are the exchange's (``perf_counter_ns``): just before the
   quote is handed to the core (which formats it and queues it on the subscribed WebSockets), and
   when the order's ``POST /api/v3/order`` reaches its aiohttp handler. One quote at a time: the
   next one goes ``GAP_S`` after the order arrived (its fill is back on the user stream by then).
2. **Sustained quote rate**: quotes at rising rates for ``STEP_S`` each, the price moving inside
   the band (each quote is valued and checked against the band, none trades). Per rate: the
   engine's event lag (exchange send → the QuoteTick dispatched on the engine's bus, both on
   ``CLOCK_MONOTONIC``, which Linux shares between processes: each quote carries its number as
   its bid size, the child records when it sees which), the share of quotes delivered (ccxt's
   ``watch_bids_asks`` hands over the latest quote when the engine is behind: skipped quotes are
   lag too), and the exchange's send queue (messages waiting in its WebSocket writer queues,
   sampled after every quote). A rate is sustained while lag p99 stays ≤ ``LAG_P99_LIMIT_MS``,
   at least 99 % of the quotes arrive and the send queue does not build up; the bench prints
   the highest one.
3. **Floors**, measured in turns with the engine's starts (each of the three first in one
   block), with the same probe and as many trips: a child with the venue's own ccxt.pro client
   doing nothing but watch the quote and send the order (``floor_ccxt``), and one with raw
   aiohttp frames (``floor_wire``); see :mod:`bench.live_floor`. Each engine figure is printed
   (and recorded, ``Figure.floor``) beside the ccxt.pro floor, with what the engine adds above
   it: the part of the quote → order time that is the engine's, and whether the target is
   reachable at all on this host through ccxt.pro.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from ballast.adapters.loopback.core import LoopbackCore
from ballast.adapters.loopback.server import LoopbackServer
from ballast.adapters.sim.config import SimConfig
from ballast.engine.kernel.clock import NS_PER_MILLISECOND, NS_PER_SECOND, LiveClock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import OrderTransport
from ballast.engine.kernel.events import QuoteTick, Side
from ballast.engine.kernel.instruments import binance_defaults
from bench.common import figure, percentile, run, verdict
from bench.live_floor import FLOORS, FloorKind, floor_args

SYMBOL: Final = "BTC/USDT"
LOW: Final = Decimal(50_000)
HIGH: Final = Decimal(50_500)
TICK: Final = Decimal("0.01")
ORDERS: Final = 300
"""Quote → order trips measured per order transport."""
WARMUP_ORDERS: Final = 10
"""Trips not measured after each engine start (connections, caches)."""
TRANSPORTS: Final[tuple[OrderTransport, ...]] = ("websocket", "rest")
BLOCKS: Final = 3
"""The transports take turns: ``BLOCKS`` engine starts each, ``ORDERS / BLOCKS`` trips per start
(the machine's speed drifts; interleaving compares them under the same conditions)."""
GAP_S: Final = 0.03
ORDER_TIMEOUT_S: Final = 5.0
TARGET_P99_MS: Final = 5.0
RATES: Final = (100, 200, 300, 400, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000)
STEP_S: Final = 2.0
LAG_P99_LIMIT_MS: Final = 10.0
DELIVERED_MIN: Final = 0.99
QUEUE_LIMIT: Final = 100
SUBSCRIBE_TIMEOUT_S: Final = 10.0
QUOTE_STREAM: Final = "btcusdt@bookticker"
API_KEY: Final = "bench-key"
API_SECRET: Final = "bench-secret"

ENGINE_TOML: Final = """
[venue]
quote = "USDT"
[instruments]
spot = ["BTC/USDT"]
perp = []
[strategy]
name = "threshold"
[targets]
BTC = 0.5
[execution]
mode = "spot"
cooldown_s = 0
check_interval_s = 1
[bands]
abs_pp = 0.1
[risk]
max_daily_turnover = 1000000
max_order_notional = 1000000
regime_asset = "BTC"
[metrics]
enabled = false
"""


# ---------------------------------------------------------------------------- the exchange side


@dataclass
class _Probe:
    """Order arrivals at the exchange (``perf_counter_ns``), in arrival order."""

    arrivals: list[int] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def order(self, now_ns: int) -> None:
        self.arrivals.append(now_ns)
        self.arrived.set()


class _ProbedServer(LoopbackServer):
    """The loopback server with a timestamp at the entry of its order endpoints."""

    probe: _Probe
    subscribed: asyncio.Event

    def _endpoint(
        self,
        market: Any,
        security: Any,
        weight: Callable[[dict[str, str]], int],
        handler: Callable[[dict[str, str], bool], Awaitable[Any]],
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        inner = super()._endpoint(market, security, weight, handler)
        if getattr(handler, "__name__", "") not in ("_spot_create", "_futures_create"):
            return inner
        probe = self.probe

        async def probed(request: web.Request) -> web.StreamResponse:
            probe.order(time.perf_counter_ns())
            return await inner(request)

        return probed

    def _on_ws_api(self, sock: Any, msg: Any) -> None:
        if isinstance(msg, dict) and msg.get("method") == "order.place":
            self.probe.order(time.perf_counter_ns())
        super()._on_ws_api(sock, msg)

    def send_queue(self) -> int:
        """Messages waiting in the public sockets' writer queues."""
        return sum(sock.queue.qsize() for sock in self._sockets if sock.public)

    def subscribers(self) -> set[Any]:
        """The sockets subscribed to the symbol's book ticker."""
        return {s for s in self._sockets if s.public and QUOTE_STREAM in s.streams}

    async def new_subscriber(self, before: set[Any]) -> None:
        """Until a socket not in ``before`` is subscribed to the quotes (at most
        ``SUBSCRIBE_TIMEOUT_S``): a child's "ready" can reach this process before its SUBSCRIBE
        frame, and a quote sent in between reaches nobody (a warm-up trip lost to the timeout)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
                while not self.subscribers() - before:
                    self.subscribed.clear()
                    await self.subscribed.wait()

    def _on_ws_message(self, sock: Any, data: str) -> None:
        super()._on_ws_message(sock, data)
        self.subscribed.set()  # maybe a SUBSCRIBE: new_subscriber looks again


class _Quotes:
    """Quotes into the core, each numbered (its bid size) and stamped when it is handed over."""

    def __init__(self, core: LoopbackCore, clock: LiveClock) -> None:
        self.core = core
        self.clock = clock
        self.sent: dict[int, int] = {}
        self.number = 0
        self.mid = LOW

    async def send(self, mid: Decimal) -> int:
        self.number += 1
        number = self.number
        now = self.clock.now_ns()
        quote = QuoteTick(now, now, SYMBOL, mid - TICK, mid + TICK, Decimal(number), Decimal(1))
        self.sent[number] = time.perf_counter_ns()
        self.mid = mid
        await self.core.on_market(quote)
        return number


@dataclass(frozen=True)
class RateStep:
    rate: int
    sent: int
    delivered: int
    lag_p50_ms: float
    lag_p99_ms: float
    max_queue: int
    behind_ms: float

    @property
    def sustained(self) -> bool:
        return (
            self.lag_p99_ms <= LAG_P99_LIMIT_MS
            and self.delivered >= DELIVERED_MIN * self.sent
            and self.max_queue <= QUEUE_LIMIT
        )


class _Engine:
    """The engine child process, talked to over its stdin/stdout (one JSON line per answer); or
    a floor child (:mod:`bench.live_floor`), started the same way, speaking the same lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(
        cls, server: LoopbackServer, workdir: Path, transport: OrderTransport
    ) -> _Engine:
        args = ["-m", "bench.live", "engine", server.rest_url, server.ws_url, str(workdir)]
        return await cls.spawn([*args, transport])

    @classmethod
    async def start_floor(
        cls, server: LoopbackServer, kind: FloorKind, transport: OrderTransport, mid: Decimal
    ) -> _Engine:
        return await cls.spawn(floor_args(kind, server.rest_url, server.ws_url, transport, mid))

    @classmethod
    async def spawn(cls, args: list[str]) -> _Engine:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 26,  # one JSON line per answer: every quote's arrival time
            env={**os.environ, "BENCH_API_KEY": API_KEY, "BENCH_API_SECRET": API_SECRET},
        )
        engine = cls(proc)
        ready = await engine.answer(timeout_s=60)
        if ready.get("ready") is not True:
            raise RuntimeError(f"engine did not start: {ready}")
        return engine

    async def answer(self, *, timeout_s: float = 30) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)
        if not line:
            raise RuntimeError(f"engine exited ({await self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ask(self, what: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{what}\n".encode())
        await self.proc.stdin.drain()
        return await self.answer()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.ask("stop")
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


@dataclass
class _Trip:
    """One quote → order measurement (``perf_counter_ns`` at the exchange)."""

    number: int
    sent_ns: int
    arrived_ns: int
    order_index: int


async def _quote_to_order(quotes: _Quotes, probe: _Probe, orders: int) -> tuple[list[_Trip], int]:
    """Quote → order arrival, one quote at a time; and the quotes that brought no order within
    the timeout. A trip's ``order_index`` counts the orders of this engine."""
    trips: list[_Trip] = []
    missed = 0
    first = len(probe.arrivals)
    for i in range(WARMUP_ORDERS + orders):
        probe.arrived.clear()
        before = len(probe.arrivals)
        number = await quotes.send(HIGH if i % 2 == 0 else LOW)
        try:
            await asyncio.wait_for(probe.arrived.wait(), ORDER_TIMEOUT_S)
        except TimeoutError:
            missed += 1
            continue
        if i >= WARMUP_ORDERS:
            trips.append(_Trip(number, quotes.sent[number], probe.arrivals[before], before - first))
        await asyncio.sleep(GAP_S)
    return trips, missed


async def _rate_step(
    quotes: _Quotes, server: _ProbedServer, engine: _Engine, rate: int
) -> RateStep:
    """Quotes at ``rate`` for ``STEP_S`` on a fixed schedule (a late one goes at once, none is
    skipped), moving inside the band."""
    first = quotes.number + 1
    interval_ns = NS_PER_SECOND // rate
    total = int(STEP_S * rate)
    max_queue = 0
    behind_ns = 0
    start = time.perf_counter_ns()
    for k in range(total):
        due = start + k * interval_ns
        while (now := time.perf_counter_ns()) < due:
            if due - now > 2 * NS_PER_MILLISECOND:
                await asyncio.sleep((due - now) / NS_PER_SECOND / 2)
            else:
                await asyncio.sleep(0)
        behind_ns = max(behind_ns, time.perf_counter_ns() - due)
        await quotes.send(LOW + (TICK * 10 if k % 2 else 0))
        max_queue = max(max_queue, server.send_queue())
    await asyncio.sleep(0.5)  # let the last ones arrive
    seen = await engine.ask(f"seen {first} {quotes.number}")
    lags = sorted(t - quotes.sent[int(n)] for n, t in seen["seen"].items())
    return RateStep(
        rate=rate,
        sent=total,
        delivered=len(lags),
        lag_p50_ms=percentile(lags, 50) / NS_PER_MILLISECOND,
        lag_p99_ms=percentile(lags, 99) / NS_PER_MILLISECOND,
        max_queue=max_queue,
        behind_ms=behind_ns / NS_PER_MILLISECOND,
    )


@dataclass
class TransportResult:
    """Quote → order trips of the engines that sent their orders one way."""

    latencies_ns: list[int] = field(default_factory=list)
    missed: int = 0
    parts_ns: dict[str, list[int]] = field(
        default_factory=lambda: {"in": [], "decide": [], "durable": [], "write": [], "out": []}
    )
    """Quote → order split in four (engine side on the same monotonic clock): ``in``: quote
    sent → QuoteTick dispatched on the engine's bus; ``decide``: → SubmitOrder published;
    ``durable``: → the command fsync'd in the journal and handed to the venue adapter (its
    ``OrderSubmitted``, published just before the send); ``out``: → order at the exchange
    (ccxt's create_order over HTTP, or create_order_ws on the open WebSocket). ``write``: the
    journal's durable write inside ``durable`` (commit and fsync: the longest write that ended
    between SubmitOrder and OrderSubmitted; the child reports each write's end and duration)."""
    commits_ns: list[int] = field(default_factory=list)
    orders: int = 0
    fills: int = 0

    def add(
        self, trips: list[_Trip], missed: int, seen: dict[str, int], stats: dict[str, Any]
    ) -> None:
        submits: list[int] = stats["submits"]
        sends: list[int] = stats["sends"]
        writes: list[tuple[int, int]] = sorted(map(tuple, stats["commits"]))
        self.missed += missed
        self.commits_ns += [took for _, took in writes]
        self.orders += stats["orders"]
        self.fills += stats["fills"]
        for trip in trips:
            self.latencies_ns.append(trip.arrived_ns - trip.sent_ns)
            dispatched = seen.get(str(trip.number))
            if dispatched is None or trip.order_index >= min(len(submits), len(sends)):
                continue
            submitted, sent = submits[trip.order_index], sends[trip.order_index]
            self.parts_ns["in"].append(dispatched - trip.sent_ns)
            self.parts_ns["decide"].append(submitted - dispatched)
            self.parts_ns["durable"].append(sent - submitted)
            self.parts_ns["out"].append(trip.arrived_ns - sent)
            during = writes[bisect.bisect_left(writes, (submitted, 0)) :]
            during = during[: bisect.bisect_right(during, (sent, math.inf))]
            if during:
                self.parts_ns["write"].append(max(took for _, took in during))


@dataclass
class FloorResult:
    """Quote → order trips of one floor child kind (:mod:`bench.live_floor`) and transport."""

    latencies_ns: list[int] = field(default_factory=list)
    missed: int = 0
    orders: int = 0
    errors: int = 0
    first_error: str = ""

    def add(self, trips: list[_Trip], missed: int, stats: dict[str, Any]) -> None:
        self.latencies_ns += [trip.arrived_ns - trip.sent_ns for trip in trips]
        self.missed += missed
        self.orders += int(stats["orders"])
        self.errors += int(stats["errors"])
        self.first_error = self.first_error or str(stats["first_error"])


@dataclass(frozen=True)
class LiveResult:
    transports: dict[OrderTransport, TransportResult]
    steps: list[RateStep]
    floors: dict[tuple[OrderTransport, FloorKind], FloorResult] = field(default_factory=dict)
    disk_ns: list[int] = field(default_factory=list)
    """The journal's disk alone (:func:`_disk_floor`), in turns with the engines."""


@dataclass
class Exchange:
    """The bench's loopback exchange (not yet serving: ``async with exchange.server``), its
    order probe, and the quotes it sends."""

    server: _ProbedServer
    probe: _Probe
    quotes: _Quotes
    rebalances: int = 0

    @classmethod
    async def open(cls) -> Exchange:
        """The account on target (50,000 USDT + 1 BTC), the price at ``LOW``."""
        clock = LiveClock()
        instruments = [i for i in binance_defaults(["BTC"]) if i.symbol == SYMBOL]
        config = SimConfig(balances={"USDT": Decimal(50_000), "BTC": Decimal(1)})
        core = LoopbackCore(instruments, config, clock)
        server = _ProbedServer(core, keys={API_KEY: API_SECRET}, weight_limit=1_000_000)
        server.probe = _Probe()
        server.subscribed = asyncio.Event()
        quotes = _Quotes(core, clock)
        await quotes.send(LOW)
        return cls(server, server.probe, quotes)

    async def rebalance(self) -> None:
        """The account back on its 50 % BTC target at the last price, with one market order
        placed in the core (not through the server: the probe does not see it). A floor sells
        high and buys low by the same amount, so cash builds up (about 140 USDT a start); the
        engine started next would find its BTC weight inside the band at the first quote."""
        core = self.quotes.core
        inst = core.instruments[SYMBOL]
        btc, usdt = core.exchange.balance("BTC"), core.exchange.balance("USDT")
        mid = self.quotes.mid
        excess = btc - (btc * mid + usdt) / 2 / mid  # BTC over the target (< 0: under it)
        qty = inst.round_qty(abs(excess))
        if qty * mid < inst.min_notional:
            return
        self.rebalances += 1
        side: Side = "sell" if excess > 0 else "buy"
        coid = f"bench-rebalance-{self.rebalances}"
        now = self.quotes.clock.now_ns()
        order = SubmitOrder(
            now,
            now,
            intent_id=coid,
            client_order_id=coid,
            symbol=SYMBOL,
            side=side,
            order_type="market",
            qty=qty,
            price=None,
            reduce_only=False,
            post_only=False,
            time_in_force="IOC",
        )
        await core.submit(order)


async def measure_floor(
    exchange: Exchange,
    kind: FloorKind,
    transport: OrderTransport,
    orders: int,
    into: FloorResult,
) -> None:
    """One floor child's start: ``WARMUP_ORDERS`` + ``orders`` quote → order trips, added to
    ``into``. The exchange must be serving."""
    quotes = exchange.quotes
    before = exchange.server.subscribers()
    child = await _Engine.start_floor(exchange.server, kind, transport, quotes.mid)
    await exchange.server.new_subscriber(before)
    try:
        trips, missed = await _quote_to_order(quotes, exchange.probe, orders)
        stats = await child.ask("stats")
    finally:
        await child.stop()
    await exchange.rebalance()
    into.add(trips, missed, stats)


async def _disk_floor(folder: Path, writes: int) -> list[int]:
    """What an order's durable write costs the disk alone: ``writes`` times a 4 KiB write at
    the end of a file (as a commit appends to the WAL) and its ``fdatasync`` (the journal's
    flush), paced as the trips are, in the folder the engine's journal is in."""
    path = folder / "disk-floor.bin"
    took: list[int] = []
    page = os.urandom(4096)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(writes):
            await asyncio.sleep(GAP_S)
            start = time.perf_counter_ns()
            os.write(fd, page)
            os.fdatasync(fd)
            took.append(time.perf_counter_ns() - start)
    finally:
        os.close(fd)
        path.unlink()
    return took


async def _bench(workdir: Path) -> LiveResult:
    exchange = await Exchange.open()
    server, probe, quotes = exchange.server, exchange.probe, exchange.quotes
    results: dict[OrderTransport, TransportResult] = {t: TransportResult() for t in TRANSPORTS}
    floors = {(t, k): FloorResult() for t in TRANSPORTS for k in FLOORS}
    steps: list[RateStep] = []
    disk_ns: list[int] = []

    async def engine_block(block: int, transport: OrderTransport) -> None:
        folder = workdir / f"{transport}-{block}"
        folder.mkdir()
        before = server.subscribers()
        engine = await _Engine.start(server, folder, transport)
        await server.new_subscriber(before)
        try:
            trips, missed = await _quote_to_order(quotes, probe, ORDERS // BLOCKS)
            first = trips[0].number if trips else 0
            last = trips[-1].number if trips else 0
            seen = (await engine.ask(f"seen {first} {last}"))["seen"]
            if block == BLOCKS - 1 and transport == TRANSPORTS[0]:
                for rate in RATES:
                    step = await _rate_step(quotes, server, engine, rate)
                    steps.append(step)
                    if not step.sustained:
                        break
            stats = await engine.ask("stats")
        finally:
            await engine.stop()
        results[transport].add(trips, missed, seen, stats)

    async with server:
        for block in range(BLOCKS):
            disk_ns.extend(await _disk_floor(workdir, ORDERS // BLOCKS))
            for transport in TRANSPORTS:
                # the engine and its floors take turns, each first in one block of three
                turns: list[FloorKind | None] = [None, *FLOORS]
                for turn in turns[block % len(turns) :] + turns[: block % len(turns)]:
                    if turn is None:
                        await engine_block(block, transport)
                    else:
                        floor = floors[(transport, turn)]
                        await measure_floor(exchange, turn, transport, ORDERS // BLOCKS, floor)
    return LiveResult(results, steps, floors, disk_ns)


def _ms(values: list[int], q: float) -> float:
    return percentile(sorted(values), q) / NS_PER_MILLISECOND


def main() -> None:
    print(
        "== live: quote on the loopback exchange → order received by it, through ccxt.pro "
        "(exchange and engine in two processes) =="
    )
    with tempfile.TemporaryDirectory(prefix="ballast-bench-live-") as tmp:
        result = run(_bench(Path(tmp)))
    report(result)


def report(result: LiveResult) -> None:
    """Print the figures of a run, each engine figure beside its floors, and record them."""
    print(
        f"  {BLOCKS} engine starts per order transport, taking turns with as many starts of "
        f"each floor ({', '.join(FLOORS)}: bench/live_floor.py); {ORDERS // BLOCKS} "
        f"trips measured per start"
    )
    for transport, r in result.transports.items():
        v = sorted(r.latencies_ns)
        if not v:
            print(f"  [{transport}] quote → order: no order arrived ({r.missed} quotes sent)")
            continue
        goal = f"  p99 target <= {TARGET_P99_MS:g} ms {verdict(_ms(v, 99) <= TARGET_P99_MS)}"
        label = f"[{transport}] quote → order"
        under = sorted(result.floors[(transport, "ccxt")].latencies_ns) if result.floors else []
        figure(
            f"live.{transport}.p50",
            f"{label}, p50",
            _ms(v, 50),
            "ms",
            better="lower",
            floor=_ms(under, 50) if under else None,
        )
        target = TARGET_P99_MS if transport == "websocket" else None
        figure(
            f"live.{transport}.p99",
            f"{label}, p99",
            _ms(v, 99),
            "ms",
            better="lower",
            target=target,
            floor=_ms(under, 99) if under else None,
        )
        print(
            f"  [{transport}] quote → order: p50 {_ms(v, 50):.2f} ms, p90 {_ms(v, 90):.2f} ms, "
            f"p99 {_ms(v, 99):.2f} ms, max {v[-1] / NS_PER_MILLISECOND:.2f} ms (n={len(v)}, "
            f"{r.missed} quotes without an order){goal if transport == 'websocket' else ''}"
        )
        parts: list[str] = []
        for name, what in (
            ("in", "exchange → engine bus"),
            ("decide", "→ SubmitOrder"),
            ("durable", "→ durable, to the adapter"),
            ("write", "of which the journal's commit + fsync"),
            ("out", "→ order at the exchange"),
        ):
            values = r.parts_ns[name]
            if not values:
                continue
            text = f"{what} p50 {_ms(values, 50):.2f} / p99 {_ms(values, 99):.2f} ms"
            if name == "write":  # inside the part before it
                parts[-1] += f" ({text})"
            else:
                parts.append(text)
        print(f"    split: {'; '.join(parts)}")
        print(
            f"    engines: {r.orders:,} orders sent, {r.fills:,} fills; journal commit (fsync) "
            f"p50 {_ms(r.commits_ns, 50):.2f} ms, p99 {_ms(r.commits_ns, 99):.2f} ms"
        )
        _print_floors(result, transport, v)
    if result.disk_ns:
        d = sorted(result.disk_ns)
        figure("live.disk.p50", "the journal's disk alone, p50", _ms(d, 50), "ms", better="lower")
        figure("live.disk.p99", "the journal's disk alone, p99", _ms(d, 99), "ms", better="lower")
        print(
            f"  the journal's disk alone (4 KiB write + fdatasync, as an order's durable write; "
            f"in turns with the engines): p50 {_ms(d, 50):.2f} ms, p90 {_ms(d, 90):.2f} ms, "
            f"p99 {_ms(d, 99):.2f} ms, max {d[-1] / NS_PER_MILLISECOND:.2f} ms (n={len(d)})"
        )
    best: RateStep | None = None
    for step in result.steps:
        print(
            f"  {step.rate:>6,} quotes/s: lag p50 {step.lag_p50_ms:.2f} ms, p99 "
            f"{step.lag_p99_ms:.2f} ms, {step.delivered:,}/{step.sent:,} delivered, exchange "
            f"send queue max {step.max_queue}, sender behind max {step.behind_ms:.1f} ms"
            f"{'' if step.sustained else '  <- lagging'}"
        )
        if step.sustained:
            best = step
    figure(
        "live.sustained",
        "sustained quote rate",
        best.rate if best else 0,
        "quotes/s",
        better="higher",
    )
    if best is None:
        print(f"  sustained quote rate: below {RATES[0]:,} quotes/s")
    else:
        print(
            f"  sustained quote rate: {best.rate:,} quotes/s with lag p99 {best.lag_p99_ms:.2f} "
            f"ms (lag p99 <= {LAG_P99_LIMIT_MS:g} ms, >= {DELIVERED_MIN:.0%} delivered)"
        )


FLOOR_LABELS: Final[dict[tuple[OrderTransport, FloorKind], str]] = {
    ("websocket", "ccxt"): "ccxt.pro alone (watch_bids_asks → create_order_ws)",
    ("rest", "ccxt"): "ccxt.pro alone (watch_bids_asks → create_order)",
    ("websocket", "wire"): "aiohttp alone (bookTicker frame → order.place frame, no ccxt)",
    ("rest", "wire"): "aiohttp alone (bookTicker frame → POST /api/v3/order, no ccxt)",
}


def _print_floors(result: LiveResult, transport: OrderTransport, engine_ns: list[int]) -> None:
    """The floors measured in turns with this transport's engines, each figure recorded, and
    what the engine adds above the ccxt.pro floor."""
    for kind in FLOORS:
        f = result.floors.get((transport, kind))
        if f is None:
            continue
        v = sorted(f.latencies_ns)
        name = FLOOR_LABELS[(transport, kind)]
        errors = f" {f.errors} order errors (first: {f.first_error})" if f.errors else ""
        if not v:
            print(f"    floor {name}: no order arrived ({f.missed} missed){errors}")
            continue
        label = f"[{transport}] floor, {kind}"
        figure(
            f"live.{transport}.floor_{kind}.p50", f"{label}, p50", _ms(v, 50), "ms", better="lower"
        )
        figure(
            f"live.{transport}.floor_{kind}.p99", f"{label}, p99", _ms(v, 99), "ms", better="lower"
        )
        print(
            f"    floor {name}: p50 {_ms(v, 50):.2f} ms, p90 {_ms(v, 90):.2f} ms, "
            f"p99 {_ms(v, 99):.2f} ms, max {v[-1] / NS_PER_MILLISECOND:.2f} ms (n={len(v)}, "
            f"{f.missed} quotes without an order){errors}"
        )
    under = result.floors.get((transport, "ccxt"))
    if under is None or not under.latencies_ns or not engine_ns:
        return
    floor99, engine99 = _ms(under.latencies_ns, 99), _ms(engine_ns, 99)
    floor50, engine50 = _ms(under.latencies_ns, 50), _ms(engine_ns, 50)
    line = (
        f"    the engine adds: p99 {engine99 - floor99:+.2f} ms, p50 {engine50 - floor50:+.2f} ms "
        f"above the ccxt.pro floor (engine p99 {engine99:.2f} ms, floor p99 {floor99:.2f} ms)"
    )
    if transport == "websocket":
        reachable = floor99 <= TARGET_P99_MS
        line += (
            f"; the floor alone {'meets' if reachable else 'misses'} the p99 target "
            f"<= {TARGET_P99_MS:g} ms on this host"
        )
    print(line)


# ---------------------------------------------------------------------------- the engine side


async def _engine_main(
    rest_url: str, ws_url: str, workdir: Path, transport: OrderTransport
) -> None:
    """The child: a live session on the exchange at ``rest_url``; answers the parent's lines."""
    from ballast.adapters.ccxt.exchanges import EXCHANGES
    from ballast.adapters.ccxt.venue import CcxtVenue
    from ballast.engine.app.live_run import freeze_startup_heap
    from ballast.engine.app.session import Session
    from ballast.engine.kernel.commands import SubmitOrder
    from ballast.engine.kernel.config import parse_config
    from ballast.engine.kernel.events import OrderFilled, OrderSubmitted
    from ballast.engine.kernel.journal import Journal
    from ballast.engine.trading.portfolio import Portfolio

    config = parse_config(ENGINE_TOML, source="bench.live")
    clock = LiveClock()
    venue = CcxtVenue(
        EXCHANGES["binance"],
        spot=config.instruments.spot,
        perp=config.instruments.perp,
        api_key=os.environ["BENCH_API_KEY"],
        api_secret=os.environ["BENCH_API_SECRET"],
        clock=clock,
        rest_url=rest_url,
        ws_url=ws_url,
        order_transport=transport,
    )
    seen: dict[int, int] = {}
    submits: list[int] = []
    sends: list[int] = []
    commits: list[tuple[int, int]] = []
    counts = {"orders": 0, "fills": 0}

    def on_quote(tick: QuoteTick) -> None:
        seen[int(tick.bid_size)] = time.perf_counter_ns()

    def on_submit(command: SubmitOrder) -> None:
        submits.append(time.perf_counter_ns())
        counts["orders"] += 1

    def on_send(event: OrderSubmitted) -> None:
        sends.append(time.perf_counter_ns())

    def on_commit(seconds: float, records: int) -> None:
        commits.append((time.perf_counter_ns(), int(seconds * NS_PER_SECOND)))

    def on_fill(fill: OrderFilled) -> None:
        counts["fills"] += 1

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def answer(payload: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()

    journal_file = Journal(
        workdir / "journal.db",
        kind="live",
        durable_on_loop=config.journal.durable_write == "loop",  # as `ballast run` opens it
    )
    async with venue, journal_file as journal:
        session = Session(config, clock, journal=journal, venue=venue)
        session.bus.subscribe(QuoteTick, on_quote, name="bench.quote")
        session.bus.subscribe(SubmitOrder, on_submit, name="bench.submit")
        session.bus.subscribe(OrderSubmitted, on_send, name="bench.send")
        session.bus.subscribe(OrderFilled, on_fill, name="bench.fill")
        journal.commit_observers.append(on_commit)
        async with session:
            await venue.start()  # the session starts it too once it knows the hook: idempotent
            for actor in session.actors:
                if isinstance(actor, Portfolio):
                    actor.min_snapshot_interval_ns = 0
            freeze_startup_heap()  # as `ballast run` does once its session has started
            answer({"ready": True})
            while line := (await reader.readline()).decode().split():
                if line[0] == "seen":
                    low, high = int(line[1]), int(line[2])
                    answer({"seen": {n: t for n, t in seen.items() if low <= n <= high}})
                elif line[0] == "stats":
                    answer({**counts, "submits": submits, "sends": sends, "commits": commits})
                elif line[0] == "stop":
                    answer({"stopped": True})
                    break


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "engine" and sys.argv[5] in ("rest", "websocket"):
        transport: OrderTransport = "rest" if sys.argv[5] == "rest" else "websocket"
        run(_engine_main(sys.argv[2], sys.argv[3], Path(sys.argv[4]), transport))
    else:
        main()
