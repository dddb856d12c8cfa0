"""Trading fees of the simulated exchange: a maker/taker schedule, as fractions of notional.

Defaults are Binance's base (VIP 0, no BNB discount) rates: spot 0.1 % maker and taker, USD-M
perpetuals 0.02 % maker and 0.05 % taker. Per-symbol overrides take precedence over the kind's
rates. A fee is ``notional × rate`` exactly (no rounding) and always positive when paid.

Maker: a resting limit order filled by later market data. Taker: a market order, or a limit order
that crossed the book when it arrived. Liquidations are charged the separate liquidation fee rate
of :class:`~ballast.adapters.sim.config.SimConfig`, not this schedule.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Literal

import msgspec

from ballast.engine.kernel.fee_presets import DEFAULT_FEE_PRESET, FEE_PRESETS
from ballast.engine.kernel.instruments import Instrument, InstrumentKind

FeeLiquidity = Literal["maker", "taker"]


class FeeRates(msgspec.Struct, frozen=True, kw_only=True):
    """Maker and taker rates, fractions of notional (0.001 = 0.1 %)."""

    maker: Decimal
    taker: Decimal

    def rate(self, liquidity: FeeLiquidity) -> Decimal:
        return self.maker if liquidity == "maker" else self.taker


_BINANCE = FEE_PRESETS[DEFAULT_FEE_PRESET]
BINANCE_SPOT = FeeRates(maker=_BINANCE.spot.maker, taker=_BINANCE.spot.taker)
BINANCE_USDM = FeeRates(maker=_BINANCE.perp.maker, taker=_BINANCE.perp.taker)


class FeeSchedule(msgspec.Struct, frozen=True, kw_only=True):
    """Fee rates by instrument kind, with optional per-symbol overrides."""

    spot: FeeRates = BINANCE_SPOT
    perp: FeeRates = BINANCE_USDM
    overrides: dict[str, FeeRates] = {}

    @classmethod
    def from_instruments(cls, instruments: Iterable[Instrument]) -> FeeSchedule:
        """A schedule that charges each instrument its own ``maker_fee``/``taker_fee``."""
        return cls(
            overrides={
                i.symbol: FeeRates(maker=i.maker_fee, taker=i.taker_fee) for i in instruments
            }
        )

    def rates(self, symbol: str, kind: InstrumentKind) -> FeeRates:
        override = self.overrides.get(symbol)
        if override is not None:
            return override
        return self.perp if kind == "perp" else self.spot

    def rate(self, symbol: str, kind: InstrumentKind, liquidity: FeeLiquidity) -> Decimal:
        return self.rates(symbol, kind).rate(liquidity)

    def fee(
        self, symbol: str, kind: InstrumentKind, liquidity: FeeLiquidity, notional: Decimal
    ) -> Decimal:
        """The fee for a fill of ``notional`` (quote currency): ``notional × rate``, exact (a zero
        fee is 0, not ``0E-23``)."""
        fee = notional * self.rate(symbol, kind, liquidity)
        return fee if fee else Decimal(0)
