"""The ``yield_aggregator`` preset: consistent income from funding carry.

The idea: a basis (carry) trade per asset — long spot plus a perp short of the same size, zero net
exposure — collects funding while the funding rate is positive. Up to 50 % of NAV sits in spot
(two assets × 25 %), the other 50 % stays in stablecoins as margin/collateral for the shorts.

For each asset in ``assets``, with ``apr`` the mean of ``MarketView.annualised_funding(asset)``
over the last ``funding_window_h`` hours (one sample per 8 hours):

- warm-up: no carry is opened until the window is filled (the reason says
  ``warming up: 16 of 72 h``); one settlement's rate is noise, and a carry that is unwound a day
  later costs four trades' fees for a few hours of funding;
- the carry is switched on when ``apr > enter_apr`` and off when ``apr < exit_apr``; in between
  the previous state holds (hysteresis, kept in the instance), and an asset without a funding
  rate in the context keeps its state;
- minimum hold: a carry switched on (or off) stays so at least ``min_hold_h`` hours;
- while on: ``spot_weights[a] = core[a] + carry`` and ``weights[a] = core[a]`` (the perp short
  makes up the difference), with ``carry = carry_weight × overlay_scale`` for a carry not yet
  open and ``carry = carry_weight`` for one already open (the snapshot shows a perp short): the
  budget's overlay scale sizes new carries, but an open carry has zero net exposure, so a
  stressed regime (scale 0) does not force it off; only margin (the planner sizes every order
  within the account) or the kill switch does;
- while off: ``spot_weights[a] = weights[a] = core[a]``.

Beyond the optional directional ``core`` the book is delta-neutral. The kill switch unwinds every
carry (the overlay is flattened) without forgetting which assets qualified.

Params (``[strategy.params]``), all optional:

- ``assets`` (carry candidates). Default ``["BTC", "ETH"]``.
- ``carry_weight`` (spot weight, and perp short notional, per carried asset). Default 0.25.
- ``core`` (asset → directional spot weight, also the core floor). Default none.
- ``enter_apr`` (annualised funding that switches the carry on). Default 0.15.
- ``exit_apr`` (annualised funding below which it is unwound, ≤ ``enter_apr``). Default 0.05.
- ``funding_window_h`` (hours of funding averaged, also the warm-up; 0: the latest rate alone).
  Default 72 (nine 8-hour settlements).
- ``min_hold_h`` (hours a carry is kept on, or off, once switched). Default 72.

Every decision's reason states these parameters.
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
from ballast.engine.strategy.signal import Latch, TrailingMean

_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)
_MAX_APR: Final = Decimal(100)
_MAX_HOURS: Final = 5 * 8760


def _default_assets() -> list[str]:
    return ["BTC", "ETH"]


class YieldAggregatorParams(StrategyParams, frozen=True):
    assets: list[str] = msgspec.field(default_factory=_default_assets)
    carry_weight: Decimal = Decimal("0.25")
    core: dict[str, Decimal] = msgspec.field(default_factory=dict)
    enter_apr: Decimal = Decimal("0.15")
    exit_apr: Decimal = Decimal("0.05")
    funding_window_h: int = 72
    min_hold_h: int = 72

    def __post_init__(self) -> None:
        check_fraction("carry_weight", self.carry_weight)
        check_weights("core", self.core)
        check_fraction("enter_apr", self.enter_apr, high=_MAX_APR)
        check_fraction("exit_apr", self.exit_apr, low=-_MAX_APR, high=self.enter_apr)
        for key in ("funding_window_h", "min_hold_h"):
            hours = getattr(self, key)
            if not 0 <= hours <= _MAX_HOURS:
                raise ValueError(f"{key}: must be between 0 and {_MAX_HOURS}, got {hours}")
        spot = sum(self.core.values(), _ZERO) + self.carry_weight * len(set(self.assets))
        if spot > _ONE:
            raise ValueError(f"carry_weight: core plus all carries is {spot} of NAV, more than 1")


class YieldAggregator(Strategy):
    """Long spot + short perp on each asset whose annualised funding is high enough."""

    name: ClassVar[str] = "yield_aggregator"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self.settings = parse_params(YieldAggregatorParams, params)
        self.carrying: set[str] = set()
        self._funding = TrailingMean(self.settings.funding_window_h * NS_PER_HOUR, 8 * NS_PER_HOUR)
        self._carry = Latch("off", self.settings.min_hold_h * NS_PER_HOUR)

    def targets(self, context: StrategyContext) -> TargetSet:
        notes = [self._update_carry(context, asset) for asset in sorted(set(self.settings.assets))]
        s = self.settings
        notes.append(
            f"carry on above {s.enter_apr:.1%} APR, off below {s.exit_apr:.1%} "
            f"(mean of {s.funding_window_h} h), min hold {s.min_hold_h} h"
        )
        scale = _carry_scale(context)
        core = self.settings.core
        assets = sorted(set(core) | set(self.settings.assets))
        net = {asset: core.get(asset, _ZERO) for asset in assets}
        open_ = _open_carries(context)
        spot: dict[str, Decimal] = {}
        for a in assets:
            carry = self.settings.carry_weight * (
                _ONE if a in open_ and not context.kill_switch else scale
            )
            spot[a] = net[a] + (carry if a in self.carrying else _ZERO)
            if a in self.carrying and a in open_ and scale < _ONE and not context.kill_switch:
                notes.append(f"{a} carry open: kept whole ({context.regime} regime)")
        if context.kill_switch:
            notes.append("kill switch: carries unwound")
        return TargetSet(
            weights=net, spot_weights=spot, core_floors=dict(core), note="; ".join(notes)
        )

    def _update_carry(self, context: StrategyContext, asset: str) -> str:
        """Switch the asset's carry on or off from its funding; describe the outcome."""
        if asset not in context.market.funding_rates:
            state = "on" if asset in self.carrying else "off"
            return f"{asset} carry {state} (no funding rate)"
        reading = self._funding.update(
            asset, context.ts_ns, context.market.annualised_funding(asset)
        )
        state = "on" if asset in self.carrying else "off"
        if reading.value is None:
            return f"{asset} carry {state} ({reading.warmup} of funding)"
        apr = reading.value
        wanted = state
        if apr > self.settings.enter_apr:
            wanted = "on"
        elif apr < self.settings.exit_apr:
            wanted = "off"
        held = self._carry.step(asset, context.ts_ns, wanted)
        if held.state == "on":
            self.carrying.add(asset)
        else:
            self.carrying.discard(asset)
        hold = f", {wanted} asked, {held.hold}" if held.blocked else ""
        return f"{asset} carry {held.state} (funding {apr:.1%} APR{hold})"


def _open_carries(context: StrategyContext) -> set[str]:
    """Assets whose carry is already open: a perp short beside a spot holding."""
    return {a.asset for a in context.snapshot.assets if a.perp_qty < 0 and a.spot_qty > 0}


def _carry_scale(context: StrategyContext) -> Decimal:
    """How much of the configured carry the budget allows (0 under the kill switch)."""
    if context.kill_switch:
        return _ZERO
    return _ONE if context.budget is None else context.budget.overlay_scale
