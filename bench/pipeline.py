"""Rebalancing pipeline latency: snapshot → decision → approved intent, at a steady 10,000
quotes/s over 4 instruments (BTC and ETH, spot and perp), with the journal on and the full loop
closed (router → in-memory venue → fills back into the portfolio).

Prices follow slow waves, so the BTC weight keeps leaving a narrow (±0.5 pp) band and the
engine decides, approves and trades many times a second. The portfolio snapshots at most every
10 ms of event time and the cooldown is off, so there are enough decisions to measure a p99.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_MICROSECOND, NS_PER_SECOND, LiveClock
from ballast.engine.kernel.config import BandsConfig, Config, ExecutionConfig, RiskConfig
from ballast.engine.kernel.events import (
    BalanceUpdated,
    InstrumentsLoaded,
    IntentApproved,
    OrderVetoed,
    PortfolioSnapshot,
    QuoteTick,
    RebalanceDecided,
)
from ballast.engine.kernel.instruments import binance_defaults
from ballast.engine.kernel.journal import Journal
from ballast.engine.trading.market_gate import MarketGate
from ballast.engine.trading.portfolio import Portfolio
from ballast.engine.trading.rebalancer import Rebalancer
from ballast.engine.trading.risk import RiskManager
from ballast.engine.trading.router import OrderRouter
from bench.common import figure, percentile, run, verdict
from tests.support.memory_venue import InMemoryVenue

RATE = 10_000
SECONDS = 10.0
WARMUP_S = 0.5
TARGET_P99_US = 1_000.0
SYMBOLS = ("BTC/USDT", "BTC/USDT:USDT", "ETH/USDT", "ETH/USDT:USDT")
ONE = Decimal(1)


class _Probe:
    def __init__(self) -> None:
        self.snapshot_t0 = 0
        self.latencies_ns: list[int] = []
        self.decisions = 0
        self.approved = 0
        self.vetoed = 0
        self.veto_reasons: dict[str, int] = {}
        self.snapshots = 0
        self.measuring = False

    def on_snapshot(self, message: PortfolioSnapshot) -> None:
        self.snapshot_t0 = time.perf_counter_ns()
        self.snapshots += 1

    def on_decision(self, message: RebalanceDecided) -> None:
        self.decisions += 1

    def on_approved(self, message: IntentApproved) -> None:
        self.approved += 1
        if self.measuring:
            self.latencies_ns.append(time.perf_counter_ns() - self.snapshot_t0)

    def on_vetoed(self, message: OrderVetoed) -> None:
        self.vetoed += 1
        self.veto_reasons[message.reason] = self.veto_reasons.get(message.reason, 0) + 1


def _price(symbol: str, t_s: float) -> Decimal:
    base = 40_000.0 if symbol.startswith("BTC") else 2_000.0
    wave = 1 + 0.08 * math.sin(t_s * 2 * math.pi / 0.5)  # ±8 % every 0.5 s: many breaches
    return Decimal(f"{base * wave:.2f}")


async def _run(path: Path) -> tuple[_Probe, float, int]:
    config = Config(
        targets={"BTC": Decimal("0.40"), "ETH": Decimal("0.20")},
        bands=BandsConfig(abs_pp=Decimal("0.5")),
        execution=ExecutionConfig(mode="spot", cooldown_s=0, check_interval_s=0.001),
        # trading several times a second would exhaust a real daily turnover cap in seconds
        risk=RiskConfig(max_daily_turnover=Decimal(1_000_000)),
    )
    clock = LiveClock()
    instruments = binance_defaults(["BTC", "ETH"])
    venue = InMemoryVenue(
        instruments, {"USDT": Decimal(40_000), "BTC": ONE, "ETH": Decimal(10)}, clock
    )
    probe = _Probe()
    async with Journal(path) as journal:
        bus = Bus(clock, journal)
        bus.session_id = "bench"
        MarketGate.from_config(config, clock).install(bus)  # as a session's bus
        bus.subscribe(PortfolioSnapshot, probe.on_snapshot, name="probe")  # first: t0 at dispatch
        portfolio = Portfolio(bus, clock, min_snapshot_interval_ns=10_000_000)
        actors = [
            portfolio,
            RiskManager.from_config(config, bus, clock),
            Rebalancer.from_config(config, bus, clock),
            OrderRouter(bus, clock, venue, retry_backoff_s=0),
        ]
        bus.subscribe(RebalanceDecided, probe.on_decision, name="probe")
        bus.subscribe(IntentApproved, probe.on_approved, name="probe")
        bus.subscribe(OrderVetoed, probe.on_vetoed, name="probe")

        async def sink(event: object) -> int:
            return await bus.publish_durable(event)  # type: ignore[arg-type]

        venue.attach(sink)
        for actor in actors:
            await actor.start()
        now = clock.now_ns()
        bus.publish(InstrumentsLoaded(now, now, "memory", tuple(instruments)))
        for asset, amount in (("USDT", 40_000), ("BTC", 1), ("ETH", 10)):
            bus.publish(BalanceUpdated(now, now, "spot", asset, Decimal(amount), Decimal(0)))

        interval = NS_PER_SECOND // RATE
        total = int((SECONDS + WARMUP_S) * RATE)
        pc = time.perf_counter_ns
        start = pc() + interval
        deadline = start
        for i in range(total):
            while pc() < deadline:  # noqa: ASYNC110 - a busy-wait pacer, as in bench/latency.py
                await asyncio.sleep(0)
            probe.measuring = i >= WARMUP_S * RATE
            symbol = SYMBOLS[i & 3]
            price = _price(symbol, (deadline - start) / NS_PER_SECOND)
            await venue.set_price(symbol, price)
            ts = clock.now_ns()
            await bus.send(QuoteTick(ts, ts, symbol, price, price + Decimal("0.01"), ONE, ONE))
            deadline += interval
            await asyncio.sleep(0)
        elapsed = (pc() - start) / NS_PER_SECOND
        for actor in actors:
            await actor.idle()
        for actor in reversed(actors):
            await actor.stop()
        return probe, elapsed, total


def main() -> None:
    print(
        f"== pipeline: snapshot → decision → approved intent, {RATE:,} quotes/s, 4 instruments =="
    )
    with tempfile.TemporaryDirectory(prefix="ballast-bench-") as tmp:
        probe, elapsed, total = run(_run(Path(tmp) / "pipeline.db"))
    v = sorted(probe.latencies_ns)
    print(
        f"  achieved {total / elapsed:,.0f} quotes/s for {elapsed:.1f} s (journal on, router → "
        f"in-memory venue → fills); {probe.snapshots:,} snapshots, {probe.decisions:,} decisions, "
        f"{probe.approved:,} approved, {probe.vetoed:,} vetoed {probe.veto_reasons or ''}"
    )
    if not v:
        print("  no approved intent measured")
        return
    us = [percentile(v, q) / NS_PER_MICROSECOND for q in (50, 90, 99)]
    label = "snapshot → approved intent"
    figure("pipeline.p50", f"{label}, p50", us[0], "us", better="lower")
    figure("pipeline.p99", f"{label}, p99", us[2], "us", better="lower", target=TARGET_P99_US)
    print(
        f"  snapshot → approved intent: p50 {us[0]:.0f} us, p90 {us[1]:.0f} us, "
        f"p99 {us[2]:.0f} us, max {v[-1] / NS_PER_MICROSECOND:.0f} us (n={len(v):,})  "
        f"p99 target <= {TARGET_P99_US:.0f} us "
        f"{verdict(us[2] <= TARGET_P99_US)}"
    )
