"""The ``conservative_hedger`` preset: capital preservation.

The idea: hold an 80 % spot core and 20 % stablecoins, and never sell the core to get safe.
While a risk alert is on, hedge the whole spot book 1:1 with perp shorts (net exposure 0, spot
kept); when the alert clears, close the hedge (no overlay).

A risk alert is on while any of these holds:

- the regime is ``stressed`` (from the risk budget);
- the kill switch is on;
- the portfolio's drawdown from its peak (``snapshot.drawdown``, a fraction) has reached
  ``alert_drawdown``; this alert then stays on until the drawdown is back below
  ``clear_drawdown``, so the hedge is not opened and closed on every small move.

Params (``[strategy.params]``), all optional:

- ``core`` (asset → spot weight; the rest is stablecoin cash). Default ``{BTC = 0.5, ETH = 0.3}``:
  80 % spot, 20 % stable. These are also the core floors.
- ``alert_drawdown`` (fraction). Default 0.10.
- ``clear_drawdown`` (fraction, ≤ ``alert_drawdown``). Default 0.05.
- ``hedge_ratio`` (fraction of the spot book shorted while alerted, in (0, 1]). Default 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

import msgspec

from strategies.api import (
    Strategy,
    StrategyContext,
    StrategyParams,
    TargetSet,
    check_fraction,
    check_weights,
    parse_params,
)


def _default_core() -> dict[str, Decimal]:
    return {"BTC": Decimal("0.5"), "ETH": Decimal("0.3")}


class ConservativeHedgerParams(StrategyParams, frozen=True):
    core: dict[str, Decimal] = msgspec.field(default_factory=_default_core)
    alert_drawdown: Decimal = Decimal("0.10")
    clear_drawdown: Decimal = Decimal("0.05")
    hedge_ratio: Decimal = Decimal(1)

    def __post_init__(self) -> None:
        check_weights("core", self.core)
        check_fraction("alert_drawdown", self.alert_drawdown)
        check_fraction("clear_drawdown", self.clear_drawdown, high=self.alert_drawdown)
        check_fraction("hedge_ratio", self.hedge_ratio)


class ConservativeHedger(Strategy):
    """80 % spot core, 20 % stable; the spot book hedged 1:1 with perp shorts during alerts."""

    name: ClassVar[str] = "conservative_hedger"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self.settings = parse_params(ConservativeHedgerParams, params)
        self._drawdown_alert = False

    def targets(self, context: StrategyContext) -> TargetSet:
        core = dict(self.settings.core)
        reasons = self.alert_reasons(context)
        hedges = {asset: self.settings.hedge_ratio for asset in core} if reasons else {}
        if reasons:
            note = f"risk alert ({', '.join(reasons)}): spot book hedged with perp shorts"
        else:
            note = "no risk alert: spot core, no overlay"
        return TargetSet(
            weights=core,
            spot_weights=dict(core),
            core_floors=dict(core),
            hedge_ratios=hedges,
            note=note,
        )

    def alert_reasons(self, context: StrategyContext) -> list[str]:
        """Why a risk alert is on (empty: no alert). Updates the drawdown alert's state."""
        reasons: list[str] = []
        if context.regime == "stressed":
            reasons.append("stressed regime")
        if context.kill_switch:
            reasons.append("kill switch")
        if self._drawdown_alerted(context.snapshot.drawdown):
            reasons.append(f"drawdown {context.snapshot.drawdown:.2%}")
        return reasons

    def _drawdown_alerted(self, drawdown: Decimal) -> bool:
        if drawdown >= self.settings.alert_drawdown:
            self._drawdown_alert = True
        elif drawdown < self.settings.clear_drawdown:
            self._drawdown_alert = False
        return self._drawdown_alert
