"""The risk budget: the limits in force now, derived from the mandate and the market regime.

The mandate (:class:`~ballast.engine.kernel.config.RiskConfig`) is the outer bound; the regime only
moves inside it:

- calm: bands × ``calm_band_scale``, leverage caps = mandate caps, overlay scale 1, overlay
  longs allowed;
- normal: bands as configured, leverage caps = mandate caps, overlay scale 1, longs allowed;
- stressed: bands × ``stressed_band_scale``, net and gross leverage caps ×
  ``stressed_leverage_scale`` (a scale above 1 never loosens them), overlay scale 0, no overlay
  longs.

The leverage caps are the net cap (``max_net_leverage``, Σ |net exposure| / NAV, the mandate's
measure) and the gross cap (``max_gross_leverage``); margin usage (``max_margin_usage``) is an
exchange limit the regime does not move. Zero-net carry (long spot + short perp) is not overlay
leverage: nothing here asks for it to be unwound; only margin can (the risk actor's
``DeleverageRequired``).

Bands here are fractions of NAV (``abs_pp`` / 100): a 5 pp band widened by 1.4 is 0.07, so on a
40 % target BTC may drift to 47 % before anything trades.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from ballast.engine.kernel.config import BandsConfig, RiskConfig
from ballast.engine.kernel.events import Regime, RiskBudgetChanged

_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)
_HUNDRED: Final = Decimal(100)


@dataclass(frozen=True)
class RiskBudget:
    """Limits in force under one regime. Never looser than the mandate on leverage."""

    regime: Regime
    band_abs: Decimal | None
    band_rel: Decimal | None
    max_gross_leverage: Decimal
    overlay_scale: Decimal
    allow_overlay_longs: bool
    max_net_leverage: Decimal = Decimal(3)

    @classmethod
    def derive(cls, risk: RiskConfig, bands: BandsConfig, regime: Regime) -> RiskBudget:
        """The budget for ``regime`` under ``risk`` (the mandate) and the configured ``bands``."""
        band_scale = _band_scale(risk, regime)
        stressed = regime == "stressed"
        band = bands.band()  # the rule of every asset without one of its own
        return cls(
            regime=regime,
            band_abs=None if band.abs_pp is None else band.abs_pp / _HUNDRED * band_scale,
            band_rel=None if band.rel is None else band.rel * band_scale,
            max_gross_leverage=_leverage_cap(risk.max_gross_leverage, risk, stressed=stressed),
            overlay_scale=_ZERO if stressed else _ONE,
            allow_overlay_longs=not stressed,
            max_net_leverage=_leverage_cap(risk.max_net_leverage, risk, stressed=stressed),
        )

    def to_event(
        self, ts_ns: int, reason: str, *, volatility: Decimal = _ZERO, ts_init: int | None = None
    ) -> RiskBudgetChanged:
        return RiskBudgetChanged(
            ts_event=ts_ns,
            ts_init=ts_ns if ts_init is None else ts_init,
            regime=self.regime,
            volatility=volatility,
            band_abs=self.band_abs,
            band_rel=self.band_rel,
            max_gross_leverage=self.max_gross_leverage,
            overlay_scale=self.overlay_scale,
            allow_overlay_longs=self.allow_overlay_longs,
            reason=reason,
            max_net_leverage=self.max_net_leverage,
        )


def _band_scale(risk: RiskConfig, regime: Regime) -> Decimal:
    if regime == "calm":
        return risk.calm_band_scale
    if regime == "stressed":
        return risk.stressed_band_scale
    return _ONE


def _leverage_cap(cap: Decimal, risk: RiskConfig, *, stressed: bool) -> Decimal:
    """The mandate's ``cap``, scaled down when stressed; a scale above 1 never loosens it."""
    if not stressed:
        return cap
    return cap * min(risk.stressed_leverage_scale, _ONE)
