"""The ``growth_optimizer`` preset: risk-adjusted growth.

The idea: a 60 % spot core plus a 40 % tactical bucket (stablecoins and perp margin) that amplifies
strong convictions with perp longs and hedges weak assets with perp shorts. The default allocation
is the product brief's example on $100,000: BTC spot 35 %, ETH spot 25 %, stable 10 %, and a BTC
and an ETH perp long of 15 % margin at 2× each ($30k notional), i.e. spot weights
``{BTC: 0.35, ETH: 0.25}`` and net weights ``{BTC: 0.65, ETH: 0.55}``.

Conviction comes from momentum: the asset's return over the last ``lookback_h`` hours, measured on
the prices of the contexts the strategy has seen (it keeps a small rolling memory of one price per
``sample_h`` hours; the strategy is still a deterministic function of the sequence of contexts).
The signal (:mod:`ballast.engine.strategy.signal`) has a warm-up, hysteresis and a minimum hold:

- Warming up (less than ``lookback_h`` of prices seen): no signal-driven position, ``net = spot``
  (the core only); the reason says ``warming up: 12 of 720 h``.
- Strong (momentum ≥ ``strong_above``, and it stays strong until momentum < ``fade_below``):
  keep the perp long, ``net = spot + overlay × overlay_scale``.
- Weak (momentum ≤ −``weak_below``, and it stays weak until momentum > ``recover_above``):
  hedge instead, ``net = spot × (1 − weak_hedge_ratio)``.
- Neutral in between: ``net = spot``.
- A state entered is held at least ``min_hold_h`` hours whatever the momentum does meanwhile, so a
  whipsawing price does not flip the book (and pay fees and slippage) on every crossing.

Every decision's reason states the momentum, the levels and the hold.

The risk budget scales the longs by ``overlay_scale``; when it forbids overlay longs (or the kill
switch is on) the longs are dropped and ``net = spot``, whatever the signal's hold. Hedges reduce
risk, so they are kept. The core is never sold to hedge: the spot weights are also the core floors.

Params (``[strategy.params]``), all optional:

- ``core`` (asset → spot weight). Default ``{BTC = 0.35, ETH = 0.25}``.
- ``overlay`` (asset → perp long notional as a fraction of NAV). Default ``{BTC = 0.3, ETH = 0.3}``.
- ``lookback_h`` (hours; also the warm-up). Default 720 (30 days).
- ``sample_h`` (hours between remembered prices). Default 1.
- ``strong_above`` (fraction). Default 0.05.
- ``fade_below`` (fraction, ≤ ``strong_above``). Default 0.
- ``weak_below`` (fraction, momentum ≤ −``weak_below`` is weak). Default 0.05.
- ``recover_above`` (fraction, ≥ −``weak_below``). Default 0.
- ``weak_hedge_ratio`` (fraction of the spot weight hedged). Default 0.5.
- ``min_hold_h`` (hours a strong, weak or neutral state is kept once entered). Default 168.
"""

from __future__ import annotations

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
from ballast.engine.strategy.signal import Held, Latch, Levels, Reading, State, TrailingReturn

_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)
_MAX_LOOKBACK_H: Final = 5 * 8760
_NAMES: Final[dict[str, str]] = {"up": "strong", "flat": "neutral", "down": "weak"}


def _default_core() -> dict[str, Decimal]:
    return {"BTC": Decimal("0.35"), "ETH": Decimal("0.25")}


def _default_overlay() -> dict[str, Decimal]:
    return {"BTC": Decimal("0.30"), "ETH": Decimal("0.30")}


class GrowthOptimizerParams(StrategyParams, frozen=True):
    core: dict[str, Decimal] = msgspec.field(default_factory=_default_core)
    overlay: dict[str, Decimal] = msgspec.field(default_factory=_default_overlay)
    lookback_h: int = 720
    sample_h: int = 1
    strong_above: Decimal = Decimal("0.05")
    fade_below: Decimal = Decimal(0)
    weak_below: Decimal = Decimal("0.05")
    recover_above: Decimal = Decimal(0)
    weak_hedge_ratio: Decimal = Decimal("0.5")
    min_hold_h: int = 168

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
        check_fraction("strong_above", self.strong_above)
        check_fraction("fade_below", self.fade_below, low=-_ONE, high=self.strong_above)
        check_fraction("weak_below", self.weak_below)
        check_fraction("recover_above", self.recover_above, low=-self.weak_below)
        if self.recover_above > self.strong_above:
            raise ValueError(
                f"recover_above: must be at most strong_above ({self.strong_above}), "
                f"got {self.recover_above}"
            )
        check_fraction("weak_hedge_ratio", self.weak_hedge_ratio)
        if not 0 <= self.min_hold_h <= _MAX_LOOKBACK_H:
            raise ValueError(
                f"min_hold_h: must be between 0 and {_MAX_LOOKBACK_H}, got {self.min_hold_h}"
            )

    def levels(self) -> Levels:
        return Levels(
            up_enter=self.strong_above,
            up_exit=self.fade_below,
            down_enter=-self.weak_below,
            down_exit=self.recover_above,
        )


class GrowthOptimizer(Strategy):
    """60 % core / 40 % tactical: perp longs on strong assets, perp hedges on weak ones."""

    name: ClassVar[str] = "growth_optimizer"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self.settings = parse_params(GrowthOptimizerParams, params)
        self.momentum = TrailingReturn(
            self.settings.lookback_h * NS_PER_HOUR, self.settings.sample_h * NS_PER_HOUR
        )
        self.levels = self.settings.levels()
        self.conviction = Latch("flat", self.settings.min_hold_h * NS_PER_HOUR)

    def targets(self, context: StrategyContext) -> TargetSet:
        core = self.settings.core
        assets = sorted(set(core) | set(self.settings.overlay))
        spot = {asset: core.get(asset, _ZERO) for asset in assets}
        weights: dict[str, Decimal] = {}
        notes: list[str] = []
        for asset in assets:
            weights[asset], note = self._net_target(context, asset, spot[asset])
            notes.append(f"{asset} {note}")
        s = self.settings
        notes.append(
            f"signal: {s.lookback_h} h momentum, strong at >= {s.strong_above:+.2%} until "
            f"< {s.fade_below:+.2%}, weak at <= {-s.weak_below:+.2%} until "
            f"> {s.recover_above:+.2%}, min hold {s.min_hold_h} h"
        )
        return TargetSet(
            weights=weights, spot_weights=spot, core_floors=dict(core), note="; ".join(notes)
        )

    def _net_target(
        self, context: StrategyContext, asset: str, spot: Decimal
    ) -> tuple[Decimal, str]:
        reading = self._observe(context, asset)
        if reading is None or not reading.warm:
            shown = reading.warmup if reading is not None else "no price"
            return spot, f"{shown}: no signal position (spot core only)"
        assert reading.value is not None
        held = self.conviction.step(
            asset, context.ts_ns, self.levels.next(self._state(asset), reading.value)
        )
        shown = f"momentum {reading.value:+.2%}, {_hold_text(held)}"
        if held.state == "down":
            hedge = self.settings.weak_hedge_ratio
            return spot * (_ONE - hedge), f"weak ({shown}): {hedge:.0%} of spot hedged"
        if held.state == "flat":
            return spot, f"neutral ({shown}): spot core only"
        scale = _long_scale(context)
        if scale == 0:
            return spot, f"strong ({shown}): overlay longs not allowed"
        overlay = self.settings.overlay.get(asset, _ZERO) * scale
        return spot + overlay, f"strong ({shown}): perp long {overlay:.2%} of NAV"

    def _state(self, asset: str) -> State:
        state = self.conviction.state(asset)
        return "up" if state == "up" else "down" if state == "down" else "flat"

    def _observe(self, context: StrategyContext, asset: str) -> Reading | None:
        """Feed the asset's price to the momentum memory (None: no price in the context)."""
        price = _price(context, asset)
        if price is None:
            return None
        return self.momentum.update(asset, context.ts_ns, price)


def _hold_text(held: Held) -> str:
    if held.blocked:
        return f"{_NAMES.get(held.wanted, held.wanted)} asked, {held.hold}"
    return held.hold


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
