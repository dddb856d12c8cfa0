"""Named trading-fee schedules (``[fees] preset``): maker and taker rates per market type.

Rates are fractions of notional (0.001 = 0.1 %). The Binance figures are the published base rates
of its fee schedule (spot, USDⓈ-M futures) at the time of writing; exchanges change them, so a
study that depends on them should state its own rates in ``[fees]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Final, Literal, NamedTuple

FeePresetName = Literal["binance_vip0", "binance_vip0_bnb", "binance_vip1", "zero"]
DEFAULT_FEE_PRESET: Final[FeePresetName] = "binance_vip0"


class MarketFees(NamedTuple):
    """Maker and taker rates of one market type."""

    maker: Decimal
    taker: Decimal


class FeePreset(NamedTuple):
    spot: MarketFees
    perp: MarketFees


def _rates(maker: str, taker: str) -> MarketFees:
    return MarketFees(Decimal(maker), Decimal(taker))


FEE_PRESETS: Final[Mapping[FeePresetName, FeePreset]] = {
    # Binance regular user (VIP 0), no BNB discount: spot 0.1 % / 0.1 %, USDⓈ-M 0.02 % / 0.05 %.
    "binance_vip0": FeePreset(spot=_rates("0.001", "0.001"), perp=_rates("0.0002", "0.0005")),
    # VIP 0 paying fees in BNB: 25 % off spot, 10 % off USDⓈ-M.
    "binance_vip0_bnb": FeePreset(
        spot=_rates("0.00075", "0.00075"), perp=_rates("0.00018", "0.00045")
    ),
    # VIP 1, no BNB discount: spot 0.09 % / 0.1 %, USDⓈ-M 0.016 % / 0.04 %.
    "binance_vip1": FeePreset(spot=_rates("0.0009", "0.001"), perp=_rates("0.00016", "0.0004")),
    # Frictionless studies.
    "zero": FeePreset(spot=_rates("0", "0"), perp=_rates("0", "0")),
}
