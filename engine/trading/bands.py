"""Band arithmetic: the half-width of an asset's band around its target, from its rule.

A rule (:class:`BandSpec`) has an absolute width (a fraction of NAV: 5 pp = 0.05), a relative one
(a fraction of the target: ``rel × |target|``), or both with how they combine: ``"narrower"``
(the nearer edge: whichever is hit first) or ``"wider"``. The regime scales every width by the
same factor (see :mod:`ballast.engine.trading.budget`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from ballast.engine.kernel.config import BandCombine, Config, EffectiveBand

_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)
_HUNDRED: Final = Decimal(100)


def band_width(
    target: Decimal,
    band_abs: Decimal | None,
    band_rel: Decimal | None,
    combine: BandCombine = "narrower",
) -> Decimal:
    """Half-width of the band around ``target`` (fractions of NAV); 0 when no width is set."""
    widths = [
        w for w in (band_abs, None if band_rel is None else band_rel * abs(target)) if w is not None
    ]
    if not widths:
        return _ZERO
    return max(widths) if combine == "wider" else min(widths)


@dataclass(frozen=True)
class BandSpec:
    """One band rule, widths as fractions (``band_abs`` of NAV, ``band_rel`` of the target)."""

    band_abs: Decimal | None
    band_rel: Decimal | None
    combine: BandCombine = "narrower"

    @classmethod
    def of(cls, band: EffectiveBand) -> BandSpec:
        """The rule a config states (``abs_pp`` in percentage points)."""
        return cls(
            band_abs=None if band.abs_pp is None else band.abs_pp / _HUNDRED,
            band_rel=band.rel,
            combine=band.combine,
        )

    def scaled(self, scale: Decimal) -> BandSpec:
        return BandSpec(
            band_abs=None if self.band_abs is None else self.band_abs * scale,
            band_rel=None if self.band_rel is None else self.band_rel * scale,
            combine=self.combine,
        )

    def width(self, target: Decimal) -> Decimal:
        return band_width(target, self.band_abs, self.band_rel, self.combine)


@dataclass(frozen=True)
class BandRules:
    """Every asset's band rule as a config states it: how the default widths (the risk budget's,
    already scaled by the regime) combine, the assets with a rule of their own, and the regime's
    band scale applied to those."""

    combine: BandCombine = "narrower"
    assets: Mapping[str, BandSpec] = field(default_factory=dict)
    scales: Mapping[str, Decimal] = field(default_factory=dict)

    @classmethod
    def of(cls, config: Config) -> BandRules:
        bands = config.bands
        return cls(
            combine=bands.band().combine,
            assets={asset: BandSpec.of(bands.band(asset)) for asset in bands.assets},
            scales={
                "calm": config.risk.calm_band_scale,
                "stressed": config.risk.stressed_band_scale,
            },
        )

    def for_regime(self, regime: str) -> Mapping[str, BandSpec]:
        """The assets' own rules, scaled as ``regime`` scales every band."""
        scale = self.scales.get(regime, _ONE)
        return {asset: spec.scaled(scale) for asset, spec in self.assets.items()}

    def width(
        self,
        asset: str,
        target: Decimal,
        band_abs: Decimal | None,
        band_rel: Decimal | None,
        regime: str = "normal",
    ) -> Decimal:
        """Half-width of ``asset``'s band: its own rule under ``regime``, else the default
        widths ``band_abs``/``band_rel`` (already the regime's) combined by the config's rule."""
        own = self.assets.get(asset)
        if own is not None:
            return own.scaled(self.scales.get(regime, _ONE)).width(target)
        return band_width(target, band_abs, band_rel, self.combine)
