"""The trading pipeline: the four actors every trading session runs, wired to one venue.

Portfolio (values the account) → Rebalancer (plans) → RiskManager (approves, cuts, vetoes) →
OrderRouter (sends through the venue). They talk only through the bus; this module only builds
them. Backtest, paper, live and replay differ in the clock and venue passed here.
"""

from __future__ import annotations

from adapters.venue import Venue
from engine.actor import Actor
from engine.bus import Bus
from engine.clock import Clock
from engine.config import Config
from engine.portfolio import Portfolio
from engine.rebalancer import Rebalancer
from engine.risk import RiskManager
from engine.router import OrderRouter


def pipeline_actors(config: Config, bus: Bus, clock: Clock, venue: Venue) -> list[Actor]:
    """Subscription order is handler order within one event: valuation first, routing last."""
    return [
        Portfolio.from_config(config, bus, clock),
        RiskManager.from_config(config, bus, clock),
        Rebalancer.from_config(config, bus, clock),
        OrderRouter.from_config(config, bus, clock, venue),
    ]
