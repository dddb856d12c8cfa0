"""Band arithmetic: the half-width of an asset's band around its target, from its rule.

A rule (:class:`BandSpec`) has an absolute width (a fraction of NAV: 5 pp = 0.05), a relative one
(a fraction of the target: ``rel × |target|``), or both with how they combine: ``"narrower"``
(the nearer edge: whichever is hit first) or ``"wider"``. The regime scales every width by the
same factor (see :mod:`ballast.engine.trading.budget`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from ballast.engine.kernel.config import BandCombine, EffectiveBand

_ZERO: Final = Decimal(0)
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
