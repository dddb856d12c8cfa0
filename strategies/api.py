"""The public strategy API: what a strategy sees and what it returns.

A strategy is a class with a ``targets(context) -> TargetSet`` method. It gets a read-only
context (frozen snapshot, copies of market data) and returns target weights, optional explicit
spot weights, core floors, hedge ratios and instrument preferences. It never sees or touches live
engine state, and it is called through a guard: if it raises, it is halted with a clear
``StrategyFailed`` event and the engine goes on.

Weights are fractions of NAV. For each asset the rebalancer resolves:

- ``spot`` target = ``spot_weights[a]`` if given, else (only when a hedge ratio is set)
  ``weights[a]``;
- ``net`` target = ``weights[a] − hedge_ratios[a] × spot`` (hedge ratio 1 = the spot book fully
  hedged with a perp short of the same value);
- the perp overlay makes up ``net − spot`` when a spot target is set; otherwise the execution mode
  (spot / overlay / auto, or ``prefer[a]``) chooses the instrument for each trade;
- spot is never sold below ``core_floors[a]``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar, Literal

import msgspec

from engine.events import PortfolioSnapshot, RiskBudgetChanged

Preference = Literal["spot", "perp", "auto"]
_ZERO = Decimal(0)


class MarketView(msgspec.Struct, frozen=True, kw_only=True):
    """Latest market data by asset (copies). Funding rates are per funding interval."""

    spot_prices: Mapping[str, Decimal]
    perp_marks: Mapping[str, Decimal]
    funding_rates: Mapping[str, Decimal]
    funding_interval_h: int = 8
    volatility: Mapping[str, Decimal] = msgspec.field(default_factory=dict)

    def annualised_funding(self, asset: str) -> Decimal:
        rate = self.funding_rates.get(asset, _ZERO)
        return rate * Decimal(24 * 365) / Decimal(self.funding_interval_h)


class StrategyContext(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a strategy may look at, as immutable copies."""

    ts_ns: int
    snapshot: PortfolioSnapshot
    market: MarketView
    budget: RiskBudgetChanged | None
    kill_switch: bool

    @property
    def regime(self) -> str:
        return self.budget.regime if self.budget is not None else "normal"

    def weight(self, asset: str) -> Decimal:
        for state in self.snapshot.assets:
            if state.asset == asset:
                return state.weight
        return _ZERO

    def spot_weight(self, asset: str) -> Decimal:
        for state in self.snapshot.assets:
            if state.asset == asset:
                return state.spot_weight
        return _ZERO


class ResolvedTarget(msgspec.Struct, frozen=True, kw_only=True):
    asset: str
    net: Decimal
    spot: Decimal | None
    core_floor: Decimal
    prefer: Preference


class TargetSet(msgspec.Struct, frozen=True, kw_only=True):
    """What a strategy wants. See the module docstring for how the fields combine."""

    weights: dict[str, Decimal]
    spot_weights: dict[str, Decimal] = msgspec.field(default_factory=dict)
    core_floors: dict[str, Decimal] = msgspec.field(default_factory=dict)
    hedge_ratios: dict[str, Decimal] = msgspec.field(default_factory=dict)
    prefer: dict[str, Preference] = msgspec.field(default_factory=dict)
    note: str = ""

    def resolve(self) -> dict[str, ResolvedTarget]:
        out: dict[str, ResolvedTarget] = {}
        for asset in sorted(set(self.weights) | set(self.spot_weights)):
            weight = self.weights.get(asset, self.spot_weights.get(asset, _ZERO))
            hedge = self.hedge_ratios.get(asset, _ZERO)
            spot = self.spot_weights.get(asset)
            if spot is None and hedge != 0:
                spot = weight
            net = weight - hedge * (spot if spot is not None else weight)
            out[asset] = ResolvedTarget(
                asset=asset,
                net=net,
                spot=spot,
                core_floor=self.core_floors.get(asset, _ZERO),
                prefer=self.prefer.get(asset, "auto"),
            )
        return out


class Strategy(ABC):
    """Base class of strategies. ``params`` come from ``[strategy.params]`` in the config."""

    name: ClassVar[str] = "strategy"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params: Mapping[str, Any] = dict(params or {})

    @abstractmethod
    def targets(self, context: StrategyContext) -> TargetSet:
        """Target weights for the current context."""
