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
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Final

import msgspec

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
from ballast.engine.trading.position import realized, traded

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

    def settled(self, closing: Mapping[str, Decimal]) -> Book:
        """This book as it will be once the closing orders in flight have filled at the marks.

        ``closing``: perp symbol → signed unfilled quantity (buy > 0) of reduce-only orders in
        flight. Each position shrinks by what its opposite-side closing orders take, at most to
        zero, booked as the ledger books a fill at the mark (:func:`~ballast.engine.trading.
        position.traded`, :func:`~ballast.engine.trading.position.realized`: the closed part's
        PnL goes into the quote cash, NAV at the marks is unchanged; fees ignored, as the
        pre-trade check does). The book itself when nothing applies (the same object:
        remembered liquidation prices stay valid)."""
        if not closing:
            return self
        snapshot = self.snapshot
        cash, nav, changed = snapshot.cash, snapshot.nav, False
        assets = []
        for state in snapshot.assets:
            qty = state.perp_qty
            rest = closing.get(self.perp_symbol(state.asset), _ZERO) if qty else _ZERO
            if rest == 0 or (rest > 0) == (qty > 0):
                assets.append(state)
                continue
            signed = max(rest, -qty) if qty > 0 else min(rest, -qty)
            mark, price = self.mark(state), state.perp_price
            cost = qty * price - state.perp_unrealized_pnl
            new_qty, new_cost = traded(qty, cost, signed, mark)
            cash += realized(cost, new_cost, signed, mark)
            nav -= signed * (mark - price)  # the closed part's move since the snapshot, realised
            assets.append(
                msgspec.structs.replace(
                    state,
                    perp_qty=new_qty,
                    perp_notional=new_qty * price,
                    perp_unrealized_pnl=new_qty * price - new_cost,
                )
            )
            changed = True
        if not changed:
            return self
        after = msgspec.structs.replace(snapshot, cash=cash, nav=nav, assets=tuple(assets))
        return replace(self, snapshot=after)

    def liquidations(self) -> list[Liquidation]:
        """Every open perp's liquidation price at the current marks, rounded to its tick.

        A position's liquidation price does not depend on its own mark, only on the snapshot
        (cash, quantities, cost bases), the margin table, the instruments and the other
        positions' marks: it is remembered per asset and computed again only when one of those
        is another object than last time (:class:`_Remembered`)."""
        held = [state for state in self.snapshot.assets if state.perp_qty != 0]
        if not held:
            return []
        insts = tuple(self.perps.get(state.asset) for state in held)
        holdings: list[PerpHolding] | None = None
        out = []
        for state in held:
            inst = self.perps.get(state.asset)
            symbol = inst.symbol if inst is not None else perp_symbol(state.asset, self.quote)
            others = tuple(self.mark(other) for other in held if other is not state)
            key = (self.snapshot, self.table, self.quote, insts, others)
            price = _REMEMBERED.get(state.asset, key)
            if price is _UNKNOWN:
                if holdings is None:
                    holdings = self.holdings()
                tick = inst.tick_size if inst is not None else None
                price = account_liquidation_price(
                    symbol, holdings, self.snapshot.cash, self.table, tick
                )
                _REMEMBERED.put(state.asset, key, price)
            out.append(Liquidation(state.asset, symbol, state.perp_qty, self.mark(state), price))
        return out


_UNKNOWN: Final = Decimal(-1)
"""What :meth:`_Remembered.get` answers when it does not know (no liquidation price is negative)."""


class _Remembered:
    """The last liquidation price computed per asset, with the inputs it was computed from. The
    inputs are compared by identity, not equality: equal Decimals may differ in their digits
    (``1.0`` and ``1.00``), and so could a result computed from them; an input that is the same
    object gives the same result. Holding the inputs keeps them alive, so an identity is never
    reused by another object while it is remembered. One small entry per asset, shared by every
    book of the process (a dict's get and set are atomic)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[tuple[object, ...], Decimal | None]] = {}

    def get(self, asset: str, key: tuple[object, ...]) -> Decimal | None:
        entry = self._last.get(asset)
        if entry is None or not _same_objects(entry[0], key):
            return _UNKNOWN
        return entry[1]

    def put(self, asset: str, key: tuple[object, ...], price: Decimal | None) -> None:
        self._last[asset] = (key, price)


def _same_objects(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if isinstance(x, tuple) and isinstance(y, tuple):
            if not _same_objects(x, y):
                return False
        elif x is not y:
            return False
    return True


_REMEMBERED: Final = _Remembered()
