"""The trading pipeline: the four actors every trading session runs, wired to one venue.

Portfolio (values the account) → Rebalancer (plans) → RiskManager (approves, cuts, vetoes) →
OrderRouter (sends through the venue). They talk only through the bus; this module only builds
them. Backtest, paper, live and replay differ in the clock and venue passed here.
"""

from __future__ import annotations

from ballast.engine.kernel.actor import Actor
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import Clock
from ballast.engine.kernel.config import Config
from ballast.engine.trading.portfolio import Portfolio
from ballast.engine.trading.rebalancer import Rebalancer
from ballast.engine.trading.risk import RiskManager
from ballast.engine.trading.router import OrderRouter
from ballast.engine.trading.venue import Venue


def pipeline_actors(config: Config, bus: Bus, clock: Clock, venue: Venue) -> list[Actor]:
    """Subscription order is handler order within one event: valuation first, routing last."""
    return [
        Portfolio.from_config(config, bus, clock),
        RiskManager.from_config(config, bus, clock),
        Rebalancer.from_config(config, bus, clock),
        OrderRouter.from_config(config, bus, clock, venue),
    ]
