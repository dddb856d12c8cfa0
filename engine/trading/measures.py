"""The risk measures of a portfolio snapshot, re-valued at the current marks.

The three leverage measures (MISSION.md, "Words we use"):

- **net leverage** (the mandate's measure) = Σ over assets |net exposure| / NAV, where net exposure
  = spot value + signed perp notional: a 1:1 hedge or a basis trade adds nothing;
- **gross leverage** (exchange-side) = (Σ |spot value| + Σ |perp notional|) / NAV;
- **margin usage** (exchange-side) = Σ initial margin of the perp positions at mark / margin
  balance, margin balance = quote cash + Σ perp unrealised PnL (spot is not collateral).

And the **distance to liquidation** of each perp position, ``|mark − liquidation| / mark``, with
the liquidation price computed from the current marks by :func:`ballast.engine.trading.margin.
account_liquidation_price` (the simulated exchange's own formula), never the estimate a venue sent
with its last fill.

A snapshot carries each perp's mark at the time it was taken and its unrealised PnL there, so the
position's cost basis is ``qty × snapshot mark − unrealised PnL``, exactly; re-valuing at a newer
mark keeps cash and cost basis and moves everything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from ballast.engine.kernel.events import AssetState, PortfolioSnapshot
from ballast.engine.kernel.instruments import Instrument, perp_symbol
from ballast.engine.trading.margin import (
    MarginTable,
    PerpHolding,
    account_liquidation_price,
    liquidation_distance,
    margin_balance,
    position_initial_margin,
)

_ZERO: Final = Decimal(0)


@dataclass(frozen=True)
class Liquidation:
    """One perp position's liquidation price and distance at ``mark`` (price None: never)."""

    asset: str
    symbol: str
    qty: Decimal
    mark: Decimal
    price: Decimal | None

    @property
    def distance(self) -> Decimal | None:
        if self.price is None or self.mark <= 0:
            return None
        return liquidation_distance(self.mark, self.price)


@dataclass(frozen=True)
class Book:
    """A snapshot re-valued at ``marks`` (asset → perp mark; missing: the snapshot's)."""

    snapshot: PortfolioSnapshot
    perps: Mapping[str, Instrument]
    """asset → its perp instrument (symbol and tick); unknown assets use ``ASSET/Q:Q``."""
    table: MarginTable
    marks: Mapping[str, Decimal] = field(default_factory=dict)
    quote: str = "USDT"

    def perp_symbol(self, asset: str) -> str:
        inst = self.perps.get(asset)
        return inst.symbol if inst is not None else perp_symbol(asset, self.quote)

    def mark(self, state: AssetState) -> Decimal:
        return self.marks.get(state.asset, state.perp_price)

    def holdings(self) -> list[PerpHolding]:
        out = []
        for state in self.snapshot.assets:
            if state.perp_qty == 0:
                continue
            cost = state.perp_qty * state.perp_price - state.perp_unrealized_pnl
            out.append(
                PerpHolding(self.perp_symbol(state.asset), state.perp_qty, cost, self.mark(state))
            )
        return out

    def nav(self) -> Decimal:
        """NAV with the perps' unrealised PnL at the current marks."""
        moved = sum(
            (s.perp_qty * (self.mark(s) - s.perp_price) for s in self.snapshot.assets), _ZERO
        )
        return self.snapshot.nav + moved

    def net_exposure(self, state: AssetState) -> Decimal:
        return state.spot_value + state.perp_qty * self.mark(state)

    def net_leverage(self) -> Decimal | None:
        """Σ |net exposure| / NAV; None when NAV ≤ 0."""
        nav = self.nav()
        if nav <= 0:
            return None
        return sum((abs(self.net_exposure(s)) for s in self.snapshot.assets), _ZERO) / nav

    def margin_balance(self) -> Decimal:
        return margin_balance(self.holdings(), self.snapshot.cash)

    def initial_margin(self) -> Decimal:
        return position_initial_margin(self.holdings(), self.table)

    def margin_usage(self) -> Decimal | None:
        """Initial margin / margin balance; 0 without positions, None when the balance ≤ 0."""
        initial = self.initial_margin()
        if initial == 0:
            return _ZERO
        balance = self.margin_balance()
        return initial / balance if balance > 0 else None

    def liquidations(self) -> list[Liquidation]:
        """Every open perp's liquidation price at the current marks, rounded to its tick."""
        holdings = self.holdings()
        wallet = self.snapshot.cash
        out = []
        for state in self.snapshot.assets:
            if state.perp_qty == 0:
                continue
            symbol = self.perp_symbol(state.asset)
            inst = self.perps.get(state.asset)
            tick = inst.tick_size if inst is not None else None
            price = account_liquidation_price(symbol, holdings, wallet, self.table, tick)
            out.append(Liquidation(state.asset, symbol, state.perp_qty, self.mark(state), price))
        return out
