"""Slippage models: how far from the last price a taker order fills. All deterministic.

A model returns a non-negative price distance; buys pay ``last + amount``, sells get
``last − amount``. The exchange then rounds the result to the instrument's tick against the
trader (buys up, sells down), so fill prices are always on the tick and never better than the
model says. A limit order that crosses on arrival fills at the slipped price capped at its limit.

Models:

- ``fixed``: ``last × bps / 10 000``;
- ``spread``: half the quoted spread ``(ask − bid) / 2`` of the current quote (the last price is
  then the mid, so buys fill at the ask and sells at the bid); zero when the latest data for the
  symbol is a bar or trade (no current quote);
- ``volatility``: ``k × mean(high − low)`` of the latest ``window`` bars; zero before any bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol

import msgspec

from ballast.adapters.sim.market import SymbolMarket
from ballast.engine.kernel.events import Side

SlippageKind = Literal["fixed", "spread", "volatility"]

_ZERO = Decimal(0)
_TWO = Decimal(2)
_BPS = Decimal(10_000)


class SlippageConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Which model and its parameters. Default: fixed 0 bps (fills at the last price)."""

    model: SlippageKind = "fixed"
    bps: Decimal = _ZERO
    k: Decimal = Decimal("0.1")
    window: int = 1


class SlippageModel(Protocol):
    def amount(self, market: SymbolMarket, price: Decimal) -> Decimal:
        """Non-negative price distance a taker pays over (buy) or under (sell) ``price``."""
        ...


@dataclass(frozen=True, slots=True)
class FixedBps:
    bps: Decimal

    def amount(self, market: SymbolMarket, price: Decimal) -> Decimal:
        return price * self.bps / _BPS


@dataclass(frozen=True, slots=True)
class HalfSpread:
    def amount(self, market: SymbolMarket, price: Decimal) -> Decimal:
        return market.spread / _TWO


@dataclass(frozen=True, slots=True)
class BarRange:
    k: Decimal
    window: int

    def amount(self, market: SymbolMarket, price: Decimal) -> Decimal:
        recent = list(market.ranges)[-self.window :]
        if not recent:
            return _ZERO
        return self.k * sum(recent, _ZERO) / Decimal(len(recent))


def slippage_model(config: SlippageConfig) -> SlippageModel:
    if config.model == "spread":
        return HalfSpread()
    if config.model == "volatility":
        return BarRange(config.k, max(1, config.window))
    return FixedBps(config.bps)


def slipped(side: Side, price: Decimal, amount: Decimal) -> Decimal:
    """``price`` moved against the taker by ``amount``: up for buys, down for sells."""
    return price + amount if side == "buy" else price - amount
