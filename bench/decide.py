"""In-process decision: QuoteTick published → SubmitOrder published, no network.

The "→ SubmitOrder" part of ``python -m bench live``'s split, measured alone: a
:class:`~ballast.engine.app.session.Session` with the live bench's configuration
(:data:`bench.live.ENGINE_TOML`: BTC/USDT spot only, threshold strategy, 50 % target, ±0.1 pp
band, no cooldown), a :class:`~ballast.engine.kernel.clock.LiveClock`, its journal in a temporary
directory and the in-memory venue (``tests/support/memory_venue.py``) instead of ccxt.pro. The
portfolio's price-snapshot throttle is 0, as in the live bench. Quotes alternate 50,000 / 50,500,
so every quote moves the BTC weight out of its band and brings one market order.

One quote at a time: the venue's price is set, the QuoteTick is published on the bus, and the
time runs until the router publishes the SubmitOrder (all synchronous handlers, except the
portfolio's price-snapshot timer, which the loop runs as its next callback). Then the order's
fill and balances are let through (the session goes idle) before the next quote. Figures are
wall time (``perf_counter_ns``) and the thread's CPU time over the same span; CPU time is the
steadier one on a shared machine.

``python -m bench.decide --profile [N]`` runs N trips under cProfile and prints the top of the
profile (cumulative and own time).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from ballast.engine.app.session import Session
from ballast.engine.kernel.bus import Bus, Handler
from ballast.engine.kernel.clock import NS_PER_MICROSECOND, LiveClock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import parse_config
from ballast.engine.kernel.events import QuoteTick
from ballast.engine.kernel.instruments import binance_defaults
from ballast.engine.kernel.journal import Journal
from ballast.engine.trading.portfolio import Portfolio
from bench.common import figure, percentile, run
from bench.live import ENGINE_TOML, HIGH, LOW, SYMBOL, TICK
from tests.support.memory_venue import InMemoryVenue

TRIPS: Final = 2_000
WARMUP: Final = 100
ONE: Final = Decimal(1)


@dataclass
class DecideResult:
    """Per trip: wall and CPU time from publish to SubmitOrder (ns); orders sent."""

    wall_ns: list[int] = field(default_factory=list)
    cpu_ns: list[int] = field(default_factory=list)
    missed: int = 0


def _time_handlers(bus: Bus, totals: dict[str, list[int]]) -> None:
    """Wrap every subscription's handler with a CPU timer (``--handlers``): its time per call,
    nested handlers included (a handler's publish dispatches only when the bus is idle, so
    nesting is rare)."""
    cpu = time.thread_time_ns

    def timed(name: str, handler: Handler) -> Handler:
        calls = totals.setdefault(name, [0, 0])

        def run(message: Any) -> None:
            t0 = cpu()
            try:
                handler(message)
            finally:
                calls[0] += 1
                calls[1] += cpu() - t0

        return run

    for subs in (*bus._subs.values(), bus._all):
        for sub in subs:
            key = f"{sub.message_type.__name__}: {sub.name}"
            sub.handler = timed(key, sub.handler)
    bus._routes.clear()


async def _trips(
    workdir: Path,
    trips: int,
    warmup: int,
    profiler: cProfile.Profile | None,
    handlers: dict[str, list[int]] | None,
) -> DecideResult:
    config = parse_config(ENGINE_TOML, source="bench.decide")
    clock = LiveClock()
    instruments = [i for i in binance_defaults(["BTC"]) if i.symbol == SYMBOL]
    venue = InMemoryVenue(
        instruments,
        {"USDT": Decimal(50_000), "BTC": ONE},
        clock,
        prices={SYMBOL: LOW},
    )
    result = DecideResult()
    submitted: list[tuple[int, int]] = []
    wall, cpu = time.perf_counter_ns, time.thread_time_ns

    def on_submit(command: SubmitOrder) -> None:
        submitted.append((wall(), cpu()))

    async with Journal(workdir / "journal.db", kind="live") as journal:
        session = Session(config, clock, journal=journal, venue=venue)
        bus = session.bus
        bus.subscribe(SubmitOrder, on_submit, name="bench.submit")
        async with session:
            for actor in session.actors:
                if isinstance(actor, Portfolio):
                    actor.min_snapshot_interval_ns = 0
            if handlers is not None:
                _time_handlers(bus, handlers)
            ts = clock.now_ns()
            bus.publish(QuoteTick(ts, ts, SYMBOL, LOW - TICK, LOW + TICK, ONE, ONE))
            await session.idle()
            await asyncio.sleep(0.01)
            for i in range(warmup + trips):
                mid = HIGH if i % 2 == 0 else LOW
                await venue.set_price(SYMBOL, mid)
                await session.idle()
                submitted.clear()
                measured = i >= warmup
                if i == warmup and handlers is not None:
                    for calls in handlers.values():
                        calls[:] = [0, 0]
                if measured and profiler is not None:
                    profiler.enable()
                ts = clock.now_ns()
                tick = QuoteTick(ts, ts, SYMBOL, mid - TICK, mid + TICK, ONE, ONE)
                w0, c0 = wall(), cpu()
                bus.publish(tick)
                for _ in range(100):  # the price-snapshot timer is the loop's next callback
                    if submitted:
                        break
                    await asyncio.sleep(0)
                if measured and profiler is not None:
                    profiler.disable()
                if not submitted:
                    result.missed += 1
                elif measured:
                    w1, c1 = submitted[0]
                    result.wall_ns.append(w1 - w0)
                    result.cpu_ns.append(c1 - c0)
                await session.idle()  # the order's fill and balances, before the next quote
                await journal.sync()
    return result


def measure(
    trips: int = TRIPS,
    warmup: int = WARMUP,
    profiler: cProfile.Profile | None = None,
    handlers: dict[str, list[int]] | None = None,
) -> DecideResult:
    with tempfile.TemporaryDirectory(prefix="ballast-bench-decide-") as tmp:
        return run(_trips(Path(tmp), trips, warmup, profiler, handlers))


def _us(values: list[int], q: float) -> float:
    return percentile(sorted(values), q) / NS_PER_MICROSECOND


def summary(result: DecideResult) -> str:
    w, c = result.wall_ns, result.cpu_ns
    if not w:
        return f"no order measured ({result.missed} quotes without one)"
    return (
        f"wall p50 {_us(w, 50):.0f} us, p99 {_us(w, 99):.0f} us; CPU p50 {_us(c, 50):.0f} us, "
        f"p99 {_us(c, 99):.0f} us (n={len(w):,}, {result.missed} quotes without an order)"
    )


def main() -> None:
    print(
        "== decide: QuoteTick published → SubmitOrder published, in process (session, journal, "
        "in-memory venue; the live bench's engine config) =="
    )
    result = measure()
    print(f"  {summary(result)}")
    if result.wall_ns:
        label = "quote → SubmitOrder in process"
        for clock, values in (("wall", result.wall_ns), ("cpu", result.cpu_ns)):
            for q in (50, 99):
                figure(
                    f"decide.{clock}.p{q}",
                    f"{label}, {clock} p{q}",
                    _us(values, q),
                    "us",
                    better="lower",
                )


def _profile(trips: int, top: int) -> None:
    profiler = cProfile.Profile()
    result = measure(trips, WARMUP, profiler)
    print(f"  under cProfile: {summary(result)}")
    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(key).print_stats(top)
        print(out.getvalue())


def _handlers(trips: int) -> None:
    totals: dict[str, list[int]] = {}
    result = measure(trips, WARMUP, handlers=totals)
    print(f"  with handler timers: {summary(result)}")
    print("  CPU per call and per trip, by message type and handler (all trips' messages):")
    for name, (calls, ns) in sorted(totals.items(), key=lambda kv: -kv[1][1]):
        if calls:
            print(
                f"    {ns / calls / NS_PER_MICROSECOND:7.1f} us/call "
                f"{ns / trips / NS_PER_MICROSECOND:7.1f}"
                f" us/trip  {calls:6,} calls  {name}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.decide")
    parser.add_argument("--profile", nargs="?", type=int, const=TRIPS, default=None)
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--handlers", nargs="?", type=int, const=TRIPS, default=None)
    args = parser.parse_args()
    if args.handlers is not None:
        _handlers(args.handlers)
    elif args.profile is not None:
        _profile(args.profile, args.top)
    else:
        main()
