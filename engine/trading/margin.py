"""Margin of USD-M perpetuals, Binance style: leverage-based initial margin and tiered maintenance.

The one implementation of the formula: the simulated exchange (:mod:`ballast.adapters.sim.exchange`)
liquidates with it and the risk actor (:mod:`ballast.engine.trading.risk`) measures the distance to
liquidation with it, from the current marks, so both always agree.

- **Initial margin** of a position or order = ``notional / leverage`` (leverage per symbol,
  default 10). Notional = ``|qty| × price`` (the mark for positions, the order price for orders).
- **Maintenance margin** = ``notional × mmr − maint_amount`` of the bracket (tier) the notional
  falls in. A bracket covers ``floor <= notional <= cap``; the maintenance amount makes the
  function continuous at every boundary (``amount_i = amount_{i−1} + floor_i × (mmr_i −
  mmr_{i−1})``), so a boundary notional gets the same margin from either side and the lower
  bracket is used. Notional beyond the last cap uses the last bracket.
- **Liquidation price** of one position in a cross-margin account: the mark ``P`` where
  ``margin balance = maintenance margin``, everything else held at its current value:
  ``equity_others + qty × P − cost = mm_others + |qty| × P × mmr − amount``, solved per bracket
  and taken from the bracket whose range contains ``|qty| × P``. ``cost`` is the position's
  signed cost basis (``qty × entry``).
- **Account view** (:func:`account_liquidation_price`): one unified cross-margin account whose
  collateral is the quote wallet balance (free + locked; spot holdings are not collateral);
  ``equity_others`` = wallet + Σ unrealised PnL of the other positions at their marks,
  ``mm_others`` = Σ their maintenance margin at their marks. The result is rounded to the tick
  so that a mark AT the price liquidates and one tick better does not (longs down, shorts up).
- **Distance to liquidation** = ``|mark − liquidation| / mark``; **margin usage** = Σ initial
  margin of the positions at mark / margin balance (wallet + Σ unrealised PnL).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import msgspec

from ballast.engine.kernel.instruments import perp_symbol

_ZERO = Decimal(0)
_ONE = Decimal(1)
DEFAULT_LEVERAGE = Decimal(10)


class Bracket(msgspec.Struct, frozen=True, kw_only=True):
    """One notional tier: ``floor <= notional <= cap``, its max leverage, maintenance margin rate
    and maintenance amount (Binance's ``cum``), all in the quote currency."""

    floor: Decimal
    cap: Decimal
    max_leverage: Decimal
    mmr: Decimal
    maint_amount: Decimal


def _tiers(*rows: tuple[int, int, int, str, int]) -> tuple[Bracket, ...]:
    return tuple(
        Bracket(
            floor=Decimal(floor),
            cap=Decimal(cap),
            max_leverage=Decimal(lev),
            mmr=Decimal(mmr),
            maint_amount=Decimal(amount),
        )
        for floor, cap, lev, mmr, amount in rows
    )


# Binance's published USD-M brackets (GET /fapi/v1/leverageBracket, first five tiers) at the time
# of writing. Binance revises them from time to time: they are defaults, configurable through
# SimConfig.brackets.
BTCUSDT_BRACKETS = _tiers(
    (0, 50_000, 125, "0.004", 0),
    (50_000, 250_000, 100, "0.005", 50),
    (250_000, 3_000_000, 50, "0.01", 1_300),
    (3_000_000, 20_000_000, 20, "0.025", 46_300),
    (20_000_000, 40_000_000, 10, "0.05", 546_300),
)
ETHUSDT_BRACKETS = _tiers(
    (0, 10_000, 100, "0.005", 0),
    (10_000, 100_000, 75, "0.0065", 15),
    (100_000, 500_000, 50, "0.01", 365),
    (500_000, 1_000_000, 20, "0.02", 5_365),
    (1_000_000, 2_000_000, 10, "0.05", 35_365),
)
# For perps without configured brackets: a conservative generic table (not any symbol's real one).
GENERIC_BRACKETS = _tiers(
    (0, 5_000, 50, "0.01", 0),
    (5_000, 25_000, 20, "0.025", 75),
    (25_000, 100_000, 10, "0.05", 700),
    (100_000, 250_000, 5, "0.1", 5_700),
    (250_000, 1_000_000, 4, "0.125", 11_950),
)


def default_brackets() -> dict[str, tuple[Bracket, ...]]:
    return {
        perp_symbol("BTC", "USDT"): BTCUSDT_BRACKETS,
        perp_symbol("ETH", "USDT"): ETHUSDT_BRACKETS,
    }


def bracket_for(brackets: Sequence[Bracket], notional: Decimal) -> Bracket:
    """The bracket of ``notional`` (``floor <= notional <= cap``, lowest first; past the last
    cap: the last bracket)."""
    for bracket in brackets:
        if notional <= bracket.cap:
            return bracket
    return brackets[-1]


def maintenance_margin(brackets: Sequence[Bracket], notional: Decimal) -> Decimal:
    """``notional × mmr − maint_amount`` of the notional's bracket (never negative)."""
    notional = abs(notional)
    if notional == 0:
        return _ZERO
    bracket = bracket_for(brackets, notional)
    return max(_ZERO, notional * bracket.mmr - bracket.maint_amount)


def initial_margin(notional: Decimal, leverage: Decimal) -> Decimal:
    """``|notional| / leverage``."""
    return abs(notional) / leverage


def liquidation_price(
    qty: Decimal,
    cost: Decimal,
    brackets: Sequence[Bracket],
    *,
    equity_others: Decimal,
    mm_others: Decimal = _ZERO,
) -> Decimal | None:
    """The mark at which a position of ``qty`` with cost basis ``cost`` (``qty × entry``) brings
    the account's margin balance down to its maintenance margin; None if flat or no positive
    price does (a long backed by more than its notional).

    ``equity_others`` = wallet balance + unrealised PnL of the other positions; ``mm_others`` =
    their maintenance margin. Solves, per bracket,
    ``P × (qty − |qty| × mmr) = cost + mm_others − equity_others − maint_amount``.
    """
    if qty == 0:
        return None
    size = abs(qty)
    last = len(brackets) - 1
    for i, bracket in enumerate(brackets):
        denominator = qty - size * bracket.mmr
        if denominator == 0:
            continue
        price = (cost + mm_others - equity_others - bracket.maint_amount) / denominator
        notional = size * price
        if price > 0 and bracket.floor <= notional and (notional <= bracket.cap or i == last):
            return price
    return None


class MarginTable:
    """Brackets and leverage per symbol."""

    def __init__(
        self,
        brackets: Mapping[str, Sequence[Bracket]],
        generic: Sequence[Bracket],
        leverage: Mapping[str, Decimal],
        default_leverage: Decimal,
    ) -> None:
        self._brackets = {symbol: tuple(tiers) for symbol, tiers in brackets.items()}
        self._generic = tuple(generic)
        self._leverage = dict(leverage)
        self._default_leverage = default_leverage
        for symbol, value in self._leverage.items():
            _check_leverage(symbol, value)
        _check_leverage("default", default_leverage)

    def brackets(self, symbol: str) -> tuple[Bracket, ...]:
        return self._brackets.get(symbol, self._generic)

    def leverage(self, symbol: str) -> Decimal:
        return self._leverage.get(symbol, self._default_leverage)

    def set_leverage(self, symbol: str, leverage: Decimal) -> None:
        """Set a symbol's leverage (at most its first bracket's max leverage)."""
        _check_leverage(symbol, leverage)
        top = self.brackets(symbol)[0].max_leverage
        if leverage > top:
            raise ValueError(f"{symbol}: leverage {leverage} above the maximum {top}")
        self._leverage[symbol] = leverage

    def initial(self, symbol: str, notional: Decimal) -> Decimal:
        return initial_margin(notional, self.leverage(symbol))

    def maintenance(self, symbol: str, notional: Decimal) -> Decimal:
        return maintenance_margin(self.brackets(symbol), notional)


def _check_leverage(symbol: str, leverage: Decimal) -> None:
    if leverage < _ONE:
        raise ValueError(f"{symbol}: leverage must be at least 1, got {leverage}")


def default_margin_table() -> MarginTable:
    """Binance's BTC/ETH brackets, the generic table for other perps, leverage 10: the same
    defaults as the simulated exchange's :class:`~ballast.adapters.sim.config.SimConfig`."""
    return MarginTable(default_brackets(), GENERIC_BRACKETS, {}, DEFAULT_LEVERAGE)


@dataclass(frozen=True, slots=True)
class PerpHolding:
    """One open perp position of the account: signed ``qty``, signed ``cost`` (``qty × entry``)
    and its current ``mark``."""

    symbol: str
    qty: Decimal
    cost: Decimal
    mark: Decimal

    @property
    def notional(self) -> Decimal:
        return self.qty * self.mark

    @property
    def unrealized(self) -> Decimal:
        return self.qty * self.mark - self.cost


def account_liquidation_price(
    symbol: str,
    holdings: Sequence[PerpHolding],
    wallet: Decimal,
    table: MarginTable,
    tick: Decimal | None = None,
) -> Decimal | None:
    """The mark of ``symbol`` at which the cross account (quote ``wallet`` balance and the perp
    ``holdings``, every other position held at its mark) reaches maintenance; None if flat or
    never. Rounded to ``tick`` when given and not 0 (longs down, shorts up; None if that is not
    positive)."""
    own = next((h for h in holdings if h.symbol == symbol and h.qty != 0), None)
    if own is None:
        return None
    others = [h for h in holdings if h.symbol != symbol and h.qty != 0]
    raw = liquidation_price(
        own.qty,
        own.cost,
        table.brackets(symbol),
        equity_others=wallet + sum((h.unrealized for h in others), _ZERO),
        mm_others=sum((table.maintenance(h.symbol, h.notional) for h in others), _ZERO),
    )
    if raw is None or not tick:
        return raw
    rounding = ROUND_FLOOR if own.qty > 0 else ROUND_CEILING
    price = (raw / tick).to_integral_value(rounding=rounding) * tick
    return price if price > 0 else None


def liquidation_distance(mark: Decimal, liquidation: Decimal) -> Decimal:
    """``|mark − liquidation| / mark``: the fraction the mark may move before liquidation."""
    return abs(mark - liquidation) / mark


def margin_balance(holdings: Sequence[PerpHolding], wallet: Decimal) -> Decimal:
    """Quote wallet balance + Σ unrealised PnL of the perp positions at their marks."""
    return wallet + sum((h.unrealized for h in holdings), _ZERO)


def position_initial_margin(holdings: Sequence[PerpHolding], table: MarginTable) -> Decimal:
    """Σ ``|qty × mark| / leverage`` of the perp positions."""
    return sum((table.initial(h.symbol, h.notional) for h in holdings), _ZERO)
