"""The simulated exchange's margin model lives in :mod:`ballast.engine.trading.margin` (one
implementation, shared with the risk actor's liquidation distance); re-exported here for the
adapter's callers."""

from ballast.engine.trading.margin import (
    BTCUSDT_BRACKETS,
    ETHUSDT_BRACKETS,
    GENERIC_BRACKETS,
    Bracket,
    MarginTable,
    PerpHolding,
    account_liquidation_price,
    bracket_for,
    default_brackets,
    initial_margin,
    liquidation_price,
    maintenance_margin,
)

__all__ = [
    "BTCUSDT_BRACKETS",
    "ETHUSDT_BRACKETS",
    "GENERIC_BRACKETS",
    "Bracket",
    "MarginTable",
    "PerpHolding",
    "account_liquidation_price",
    "bracket_for",
    "default_brackets",
    "initial_margin",
    "liquidation_price",
    "maintenance_margin",
]
