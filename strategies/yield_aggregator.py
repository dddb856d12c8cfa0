"""The ``yield_aggregator`` preset: consistent income from funding carry.

The idea: a basis (carry) trade per asset — long spot plus a perp short of the same size, zero net
exposure — collects funding while the funding rate is positive. Up to 50 % of NAV sits in spot
(two assets × 25 %), the other 50 % stays in stablecoins as margin/collateral for the shorts.

For each asset in ``assets``, with ``apr = MarketView.annualised_funding(asset)``:

- the carry is switched on when ``apr > enter_apr`` and off when ``apr < exit_apr``; in between
  the previous state holds (hysteresis, kept in the instance), and an asset without a funding
  rate in the context keeps its state;
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
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar, Final

import msgspec

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
_MAX_APR: Final = Decimal(100)


def _default_assets() -> list[str]:
    return ["BTC", "ETH"]


class YieldAggregatorParams(StrategyParams, frozen=True):
    assets: list[str] = msgspec.field(default_factory=_default_assets)
    carry_weight: Decimal = Decimal("0.25")
    core: dict[str, Decimal] = msgspec.field(default_factory=dict)
    enter_apr: Decimal = Decimal("0.15")
    exit_apr: Decimal = Decimal("0.05")

    def __post_init__(self) -> None:
        check_fraction("carry_weight", self.carry_weight)
        check_weights("core", self.core)
        check_fraction("enter_apr", self.enter_apr, high=_MAX_APR)
        check_fraction("exit_apr", self.exit_apr, low=-_MAX_APR, high=self.enter_apr)
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

    def targets(self, context: StrategyContext) -> TargetSet:
        notes = [self._update_carry(context, asset) for asset in sorted(set(self.settings.assets))]
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
        apr = context.market.annualised_funding(asset)
        if apr > self.settings.enter_apr:
            self.carrying.add(asset)
        elif apr < self.settings.exit_apr:
            self.carrying.discard(asset)
        return f"{asset} carry {'on' if asset in self.carrying else 'off'} (funding {apr:.1%} APR)"


def _open_carries(context: StrategyContext) -> set[str]:
    """Assets whose carry is already open: a perp short beside a spot holding."""
    return {a.asset for a in context.snapshot.assets if a.perp_qty < 0 and a.spot_qty > 0}


def _carry_scale(context: StrategyContext) -> Decimal:
    """How much of the configured carry the budget allows (0 under the kill switch)."""
    if context.kill_switch:
        return _ZERO
    return _ONE if context.budget is None else context.budget.overlay_scale
