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

When the hedge comes off. The stressed-regime and kill-switch alerts end with their cause. The
drawdown alert ends when the drawdown is back below ``clear_drawdown``, or when the market has
turned: a full hedge freezes NAV, so the drawdown may never recover by itself, and the hedge would
stay on through the whole recovery. So the hedge is also released when the market of the core has
risen ``release_rebound`` above its lowest point since the alert went on (a trend rule). The
market of the core is a price index: Σ core weight × price / price when the alert went on, over Σ
core weight (prices only, so buying or selling spot does not move it). After such a
release the drawdown is measured from the NAV at the release (the hedged peak) and its highs since,
so the alert comes back only on a new fall of ``alert_drawdown``, not at once on the old drawdown.

Minimum hold. A hedge that went on is kept at least ``min_hold_h`` hours, even if its alert clears
sooner (a stressed regime that flickers, a drawdown that crosses ``clear_drawdown`` and back), so
the whole spot book is not hedged and unhedged, paying fees and slippage, on every flicker. A new
alert hedges at once: a hedge reduces risk and is never delayed. The alert's signals have their
own warm-up and hysteresis (the regime's in the risk budget; the drawdown's is ``alert_drawdown``
/ ``clear_drawdown``). Every decision's reason states these parameters.

Params (``[strategy.params]``), all optional:

- ``core`` (asset → spot weight; the rest is stablecoin cash). Default ``{BTC = 0.5, ETH = 0.3}``:
  80 % spot, 20 % stable. These are also the core floors.
- ``alert_drawdown`` (fraction). Default 0.10.
- ``clear_drawdown`` (fraction, ≤ ``alert_drawdown``). Default 0.05.
- ``hedge_ratio`` (fraction of the spot book shorted while alerted, in (0, 1]). Default 1.
- ``release_rebound`` (fraction; 0 turns the rule off). Default 0.10.
- ``min_hold_h`` (hours a hedge is kept once on; 0 turns the rule off). Default 24.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

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
from ballast.engine.strategy.signal import Latch

_MAX_HOLD_H = 5 * 8760


def _default_core() -> dict[str, Decimal]:
    return {"BTC": Decimal("0.5"), "ETH": Decimal("0.3")}


class ConservativeHedgerParams(StrategyParams, frozen=True):
    core: dict[str, Decimal] = msgspec.field(default_factory=_default_core)
    alert_drawdown: Decimal = Decimal("0.10")
    clear_drawdown: Decimal = Decimal("0.05")
    hedge_ratio: Decimal = Decimal(1)
    release_rebound: Decimal = Decimal("0.10")
    min_hold_h: int = 24

    def __post_init__(self) -> None:
        check_weights("core", self.core)
        check_fraction("alert_drawdown", self.alert_drawdown)
        check_fraction("clear_drawdown", self.clear_drawdown, high=self.alert_drawdown)
        check_fraction("hedge_ratio", self.hedge_ratio)
        check_fraction("release_rebound", self.release_rebound)
        if not 0 <= self.min_hold_h <= _MAX_HOLD_H:
            raise ValueError(
                f"min_hold_h: must be between 0 and {_MAX_HOLD_H}, got {self.min_hold_h}"
            )


class ConservativeHedger(Strategy):
    """80 % spot core, 20 % stable; the spot book hedged 1:1 with perp shorts during alerts."""

    name: ClassVar[str] = "conservative_hedger"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self.settings = parse_params(ConservativeHedgerParams, params)
        self._drawdown_alert = False
        self._core_low: Decimal | None = None  # lowest core index since the drawdown alert
        self._core_ref: dict[str, Decimal] = {}  # prices when the drawdown alert went on
        self._hedged_peak: Decimal | None = None  # NAV high since the last rebound release
        self._released = ""  # why the hedge last came off by the trend rule (for the note)
        self._hedge = Latch("off", self.settings.min_hold_h * NS_PER_HOUR, held=frozenset({"on"}))

    def targets(self, context: StrategyContext) -> TargetSet:
        core = dict(self.settings.core)
        reasons = self.alert_reasons(context)
        held = self._hedge.step("book", context.ts_ns, "on" if reasons else "off")
        hedged = held.state == "on"
        hedges = {asset: self.settings.hedge_ratio for asset in core} if hedged else {}
        if reasons:
            note = f"risk alert ({', '.join(reasons)}): spot book hedged with perp shorts"
        elif hedged:
            note = f"risk alert cleared: spot book still hedged ({held.hold})"
        else:
            note = "no risk alert: spot core, no overlay"
        if self._released:
            note = f"{self._released}; {note}"
            self._released = ""
        s = self.settings
        note += (
            f"; alert at drawdown >= {s.alert_drawdown:.2%} until < {s.clear_drawdown:.2%}, "
            f"release rebound {s.release_rebound:.2%}, stressed regime or kill switch, "
            f"min hold {s.min_hold_h} h"
        )
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
        drawdown = self._drawdown(context)
        if self._drawdown_alerted(drawdown, self._core_value(context)):
            reasons.append(f"drawdown {drawdown:.2%}")
        elif self._released:
            self._hedged_peak = context.snapshot.nav  # the drawdown restarts from here
        return reasons

    def _drawdown(self, context: StrategyContext) -> Decimal:
        """The portfolio's drawdown, or after a rebound release the drawdown from the hedged
        peak (the NAV at the release and its highs since), whichever is smaller."""
        snapshot = context.snapshot
        if self._hedged_peak is None:
            return snapshot.drawdown
        self._hedged_peak = max(self._hedged_peak, snapshot.nav)
        if snapshot.drawdown == 0:
            self._hedged_peak = None  # a new all-time high: back to the portfolio's drawdown
            return snapshot.drawdown
        from_hedged = (self._hedged_peak - snapshot.nav) / self._hedged_peak
        return min(snapshot.drawdown, max(Decimal(0), from_hedged))

    def _core_value(self, context: StrategyContext) -> Decimal:
        """The core's price index (1 when the drawdown alert went on; see the module docstring)."""
        core = self.settings.core
        prices = {a.asset: a.spot_price for a in context.snapshot.assets if a.spot_price > 0}
        if not self._drawdown_alert or not self._core_ref:
            self._core_ref = {a: prices[a] for a in core if a in prices}
        total = sum((core[a] for a in self._core_ref), Decimal(0))
        if total == 0:
            return Decimal(0)
        weighted = sum(
            (core[a] * prices.get(a, ref) / ref for a, ref in self._core_ref.items()), Decimal(0)
        )
        return weighted / total

    def _drawdown_alerted(self, drawdown: Decimal, core_value: Decimal) -> bool:
        if drawdown >= self.settings.alert_drawdown:
            self._drawdown_alert = True
        elif drawdown < self.settings.clear_drawdown:
            self._drawdown_alert = False
        if not self._drawdown_alert:
            self._core_low = None
            self._core_ref = {}
            return False
        low = core_value if self._core_low is None else min(self._core_low, core_value)
        self._core_low = low
        rebound = self.settings.release_rebound
        if rebound > 0 and low > 0 and core_value >= low * (1 + rebound):
            self._released = (
                f"hedge released: the core's prices are {core_value / low - 1:.2%} above their "
                f"low since the drawdown alert (release_rebound {rebound:.0%})"
            )
            self._drawdown_alert = False
            self._core_low = None
            self._core_ref = {}
            return False
        return True
