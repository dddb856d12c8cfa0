"""The ``growth_optimizer`` preset as it was when ``tests/fixtures/backtest_v1.db`` was written
(ballast 0.1.0, before issue 12 gave its signal a warm-up, hysteresis levels and a minimum hold):
momentum over ``lookback_h``, an asset "strong" while warming up. Kept verbatim so that the
fixture journal still replays identically with the strategy that wrote it
(tests/test_fixture_journals.py); not a preset, never registered.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar, Final

import msgspec

from ballast.engine.kernel.clock import NS_PER_HOUR
from ballast.engine.strategy.api import (
    Strategy,
    StrategyContext,
    StrategyParams,
    TargetSet,
    check_fraction,
    check_weights,
    parse_params,
)

_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)
_MAX_LOOKBACK_H: Final = 5 * 8760


def _default_core() -> dict[str, Decimal]:
    return {"BTC": Decimal("0.35"), "ETH": Decimal("0.25")}


def _default_overlay() -> dict[str, Decimal]:
    return {"BTC": Decimal("0.30"), "ETH": Decimal("0.30")}


class GrowthOptimizerParams(StrategyParams, frozen=True):
    core: dict[str, Decimal] = msgspec.field(default_factory=_default_core)
    overlay: dict[str, Decimal] = msgspec.field(default_factory=_default_overlay)
    lookback_h: int = 168
    sample_h: int = 1
    weak_below: Decimal = Decimal("0.05")
    recover_above: Decimal = Decimal(0)
    weak_hedge_ratio: Decimal = Decimal("0.5")

    def __post_init__(self) -> None:
        check_weights("core", self.core)
        for asset, weight in self.overlay.items():
            check_fraction(f"overlay.{asset}", weight)
        if not 0 < self.lookback_h <= _MAX_LOOKBACK_H:
            raise ValueError(
                f"lookback_h: must be between 1 and {_MAX_LOOKBACK_H}, got {self.lookback_h}"
            )
        if not 0 < self.sample_h <= self.lookback_h:
            raise ValueError(f"sample_h: must be between 1 and lookback_h, got {self.sample_h}")
        check_fraction("weak_below", self.weak_below)
        check_fraction("recover_above", self.recover_above, low=-self.weak_below)
        check_fraction("weak_hedge_ratio", self.weak_hedge_ratio)


class Momentum:
    """Return of each asset over a lookback window, from the prices it is shown.

    Remembers at most one price per ``sample_ns`` and only as far back as the window needs.
    """

    def __init__(self, lookback_ns: int, sample_ns: int) -> None:
        self.lookback_ns = lookback_ns
        self.sample_ns = sample_ns
        self._samples: dict[str, deque[tuple[int, Decimal]]] = {}

    def update(self, asset: str, ts_ns: int, price: Decimal) -> Decimal | None:
        """Record ``price`` and return the return since ``lookback`` ago (None while warming)."""
        samples = self._samples.setdefault(asset, deque())
        if not samples or ts_ns - samples[-1][0] >= self.sample_ns:
            samples.append((ts_ns, price))
        cutoff = ts_ns - self.lookback_ns
        while len(samples) > 1 and samples[1][0] <= cutoff:
            samples.popleft()
        first_ts, first_price = samples[0]
        if first_ts > cutoff or first_price <= 0:
            return None
        return price / first_price - _ONE


class GrowthOptimizer(Strategy):
    """60 % core / 40 % tactical: perp longs on strong assets, perp hedges on weak ones."""

    name: ClassVar[str] = "growth_optimizer_v1"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self.settings = parse_params(GrowthOptimizerParams, params)
        self.momentum = Momentum(
            self.settings.lookback_h * NS_PER_HOUR, self.settings.sample_h * NS_PER_HOUR
        )
        self.weak: set[str] = set()

    def targets(self, context: StrategyContext) -> TargetSet:
        core = self.settings.core
        assets = sorted(set(core) | set(self.settings.overlay))
        spot = {asset: core.get(asset, _ZERO) for asset in assets}
        weights: dict[str, Decimal] = {}
        notes: list[str] = []
        for asset in assets:
            weights[asset], note = self._net_target(context, asset, spot[asset])
            notes.append(f"{asset} {note}")
        return TargetSet(
            weights=weights, spot_weights=spot, core_floors=dict(core), note="; ".join(notes)
        )

    def _net_target(
        self, context: StrategyContext, asset: str, spot: Decimal
    ) -> tuple[Decimal, str]:
        momentum = self._observe(context, asset)
        shown = "warming up" if momentum is None else f"momentum {momentum:+.2%}"
        if asset in self.weak:
            hedge = self.settings.weak_hedge_ratio
            return spot * (_ONE - hedge), f"weak ({shown}): {hedge:.0%} of spot hedged"
        scale = _long_scale(context)
        if scale == 0:
            return spot, f"strong ({shown}): overlay longs not allowed"
        overlay = self.settings.overlay.get(asset, _ZERO) * scale
        return spot + overlay, f"strong ({shown}): perp long {overlay:.2%} of NAV"

    def _observe(self, context: StrategyContext, asset: str) -> Decimal | None:
        """Feed the asset's price to the momentum memory and update its conviction."""
        price = _price(context, asset)
        if price is None:
            return None
        momentum = self.momentum.update(asset, context.ts_ns, price)
        if momentum is not None and momentum <= -self.settings.weak_below:
            self.weak.add(asset)
        elif momentum is not None and momentum >= self.settings.recover_above:
            self.weak.discard(asset)
        return momentum


def _long_scale(context: StrategyContext) -> Decimal:
    """How much of the configured perp longs the budget allows (0 = none)."""
    budget = context.budget
    if context.kill_switch or (budget is not None and not budget.allow_overlay_longs):
        return _ZERO
    return _ONE if budget is None else budget.overlay_scale


def _price(context: StrategyContext, asset: str) -> Decimal | None:
    price = context.market.spot_prices.get(asset)
    if price is not None and price > 0:
        return price
    for state in context.snapshot.assets:
        if state.asset == asset and state.spot_price > 0:
            return state.spot_price
    return None
