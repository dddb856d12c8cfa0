"""A dry run of one rebalance: build the state from a venue once, let the portfolio, risk and
rebalancer actors decide, and collect what they would do. There is no order router on this bus,
so nothing can be sent, whatever the venue is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec

from ballast.engine.kernel.actor import Actor
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_SECOND, SimulatedClock
from ballast.engine.kernel.config import Config
from ballast.engine.kernel.events import (
    InstrumentsLoaded,
    IntentApproved,
    Message,
    OrderVetoed,
    PortfolioSnapshot,
    RebalanceDecided,
    StrategyFailed,
)
from ballast.engine.strategy.api import StrategyContext, TargetSet
from ballast.engine.trading.market_gate import MarketGate
from ballast.engine.trading.portfolio import Portfolio
from ballast.engine.trading.rebalancer import Rebalancer
from ballast.engine.trading.risk import RiskManager
from ballast.engine.trading.venue import Venue


@dataclass
class DryRun:
    snapshot: PortfolioSnapshot | None = None
    decisions: list[RebalanceDecided] = field(default_factory=list)
    approved: list[IntentApproved] = field(default_factory=list)
    vetoed: list[OrderVetoed] = field(default_factory=list)
    failures: list[StrategyFailed] = field(default_factory=list)

    def on_message(self, message: Message) -> None:
        if isinstance(message, PortfolioSnapshot):
            self.snapshot = message
        elif isinstance(message, RebalanceDecided):
            self.decisions.append(message)
        elif isinstance(message, IntentApproved):
            self.approved.append(message)
        elif isinstance(message, OrderVetoed):
            self.vetoed.append(message)
        elif isinstance(message, StrategyFailed):
            self.failures.append(message)


async def dry_run(config: Config, venue: Venue, market: Sequence[Message]) -> DryRun:
    """Feed the venue's instruments and account, then ``market`` (the latest prices, all at one
    time), and return the snapshot, decisions and risk verdicts that followed."""
    start = max((m.ts_event for m in market), default=0)
    clock = SimulatedClock(start)
    bus = Bus(clock)
    bus.session_id = "plan"
    MarketGate.from_config(config, clock).install(bus)
    result = DryRun()
    bus.subscribe_all(result.on_message, name="dry_run")
    rebalancer = Rebalancer.from_config(config, bus, clock)
    rebalancer.report_holds = True  # show every asset, also when nothing is to be done
    actors: list[Actor] = [
        Portfolio.from_config(config, bus, clock),
        RiskManager.from_config(config, bus, clock),
        rebalancer,
    ]
    for actor in actors:
        await actor.start()
    try:
        for event in await venue.account():
            bus.publish(event)
        for event in market:
            bus.publish(event)
        # The rebalancer plans nothing before it knows the instruments: announce them only once
        # the whole state is loaded, then one fresh tick makes exactly one decision over it.
        instruments = await venue.instruments()
        ordered = tuple(instruments[s] for s in sorted(instruments))
        bus.publish(InstrumentsLoaded(start, start, venue.name, ordered))
        now = start + NS_PER_SECOND
        clock.advance_to(now)
        for event in market:
            bus.publish(msgspec.structs.replace(event, ts_event=now, ts_init=now))
    finally:
        for actor in reversed(actors):
            await actor.stop()
    return result


def neutral_targets(config: Config) -> TargetSet:
    """What the configured strategy asks for on an all-cash portfolio of 100,000 (used to give
    baselines the strategy's initial allocation)."""
    from ballast.engine.strategy.registry import load_strategy, strategy_params

    strategy = load_strategy(config.strategy.name, strategy_params(config))
    return strategy.targets(neutral_context())


def neutral_context() -> StrategyContext:
    """An all-cash portfolio of 100,000 with no market data, no risk budget, no kill switch."""
    from ballast.engine.kernel.events import PortfolioSnapshot
    from ballast.engine.strategy.api import MarketView

    nav = Decimal(100_000)
    zero = Decimal(0)
    snapshot = PortfolioSnapshot(
        0,
        0,
        "neutral",
        nav,
        nav,
        zero,
        zero,
        zero,
        zero,
        zero,
        zero,
        zero,
        zero,
        zero,
        nav,
        zero,
        (),
    )
    return StrategyContext(
        ts_ns=0,
        snapshot=snapshot,
        market=MarketView(spot_prices={}, perp_marks={}, funding_rates={}),
        budget=None,
        kill_switch=False,
    )
