"""Baselines every backtest comparison includes: buy-and-hold and calendar rebalancing.

Both hold spot only. Between their trades they return the portfolio's current weights as
targets, which are always inside any band, so the rebalancer leaves the portfolio to drift.

- ``buy_and_hold``: buys the target allocation once (when a targeted asset is not held yet), then
  never trades again.
- ``calendar``: trades back to the targets at the first snapshot of every period of
  ``every_days`` (default 30) counted from the first snapshot, whatever the drift; run it with a
  narrow band (the backtester uses 0.1 pp) so that "back to target" means it.

Params: ``weights`` (asset → weight; the Rebalancer passes the config's ``[targets]`` when
``[strategy.params]`` is empty) and, for ``calendar``, ``every_days``.

The backtest runs both with the default ``[rebalance]`` rule whatever the study's. Calendar and
hybrid rebalancing for any strategy (these baselines' rule included) are the rebalancer's:
``[rebalance] trigger = "calendar" | "hybrid"`` with ``every_days``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

import msgspec

from ballast.engine.kernel.clock import NS_PER_DAY
from ballast.engine.strategy.api import (
    Strategy,
    StrategyContext,
    StrategyParams,
    TargetSet,
    check_weights,
    parse_params,
)

_MAX_DAYS = 3650


class BaselineParams(StrategyParams, frozen=True):
    weights: dict[str, Decimal] = msgspec.field(default_factory=dict)
    every_days: int = 30

    def __post_init__(self) -> None:
        check_weights("weights", self.weights)
        if not 0 < self.every_days <= _MAX_DAYS:
            raise ValueError(
                f"every_days: must be between 1 and {_MAX_DAYS}, got {self.every_days}"
            )


def _drift(context: StrategyContext, weights: Mapping[str, Decimal], note: str) -> TargetSet:
    """Targets equal to the current weights: inside every band, so nothing trades."""
    current = {asset: context.weight(asset) for asset in weights}
    return TargetSet(weights=current, prefer=dict.fromkeys(weights, "spot"), note=note)


def _rebalance(weights: Mapping[str, Decimal], note: str) -> TargetSet:
    return TargetSet(weights=dict(weights), prefer=dict.fromkeys(weights, "spot"), note=note)


class BuyAndHold(Strategy):
    """Buy the allocation once, then hold it."""

    name: ClassVar[str] = "buy_and_hold"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self.settings = parse_params(BaselineParams, params)

    def targets(self, context: StrategyContext) -> TargetSet:
        held = {a.asset for a in context.snapshot.assets if a.spot_qty > 0}
        if any(asset not in held for asset, w in self.settings.weights.items() if w > 0):
            return _rebalance(self.settings.weights, "buy and hold: initial allocation")
        return _drift(context, self.settings.weights, "buy and hold: holding")


class CalendarRebalance(Strategy):
    """Back to the targets once per period, drift in between."""

    name: ClassVar[str] = "calendar"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self.settings = parse_params(BaselineParams, params)
        self._next_ns: int | None = None

    def targets(self, context: StrategyContext) -> TargetSet:
        if self._next_ns is None or context.ts_ns >= self._next_ns:
            start = context.ts_ns if self._next_ns is None else self._next_ns
            self._next_ns = start + self.settings.every_days * NS_PER_DAY
            return _rebalance(
                self.settings.weights, f"calendar: every {self.settings.every_days} days"
            )
        return _drift(context, self.settings.weights, "calendar: between rebalance dates")
