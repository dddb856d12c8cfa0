"""Instruments and exchange precision: tick size, lot size, minimum quantity and notional.

Every quantity and price that leaves the engine goes through :meth:`Instrument.round_qty` /
:meth:`Instrument.round_price` and is checked with :meth:`Instrument.violation`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from typing import Literal, NamedTuple

import msgspec

from ballast.engine.kernel.fee_presets import DEFAULT_FEE_PRESET, FEE_PRESETS

InstrumentKind = Literal["spot", "perp"]
_ZERO = Decimal(0)


class Instrument(msgspec.Struct, frozen=True, kw_only=True):
    """A tradable instrument with its exchange filters and default fees (fractions of notional).

    A ``lot_size`` or ``tick_size`` of 0 is no step: quantities (prices) are taken as they are,
    exactly (the simulated venue's ``precision = "exact"``).
    """

    symbol: str
    kind: InstrumentKind
    base: str
    quote: str
    tick_size: Decimal
    lot_size: Decimal
    min_qty: Decimal
    min_notional: Decimal
    maker_fee: Decimal = Decimal("0.001")
    taker_fee: Decimal = Decimal("0.001")

    @property
    def is_perp(self) -> bool:
        return self.kind == "perp"

    def round_qty(self, qty: Decimal) -> Decimal:
        """Round a non-negative quantity down to the lot size (never trade more than asked)."""
        if not self.lot_size:
            return qty
        steps = (qty / self.lot_size).to_integral_value(rounding=ROUND_DOWN)
        return plain(steps * self.lot_size) if steps else _ZERO

    def round_price(self, price: Decimal, *, side: str | None = None) -> Decimal:
        """Round to the tick: down for buys, up for sells (never worse than asked), else nearest."""
        if not self.tick_size:
            return price
        ratio = price / self.tick_size
        if side == "buy":
            steps = ratio.to_integral_value(rounding=ROUND_FLOOR)
        elif side == "sell":
            steps = ratio.to_integral_value(rounding=ROUND_CEILING)
        else:
            steps = ratio.to_integral_value()
        return plain(steps * self.tick_size)

    def violation(self, qty: Decimal, price: Decimal | None) -> str | None:
        """Why an order of ``qty`` at ``price`` would be rejected by the exchange, or None."""
        if qty <= 0:
            return f"quantity {qty} is not positive"
        if self.lot_size and qty % self.lot_size != 0:
            return f"quantity {qty} is not a multiple of lot size {self.lot_size}"
        if qty < self.min_qty:
            return f"quantity {qty} is below minimum quantity {self.min_qty}"
        if price is not None:
            if price <= 0:
                return f"price {price} is not positive"
            if self.tick_size and price % self.tick_size != 0:
                return f"price {price} is not a multiple of tick size {self.tick_size}"
            if qty * price < self.min_notional:
                return f"notional {qty * price} is below minimum notional {self.min_notional}"
        return None


def plain(value: Decimal) -> Decimal:
    """The shortest exact form without an exponent: 10.000 → 10, 0.13846000 → 0.13846 (never
    1E+1, which is what ``normalize`` gives and what would end up in journals and exports)."""
    value = value.normalize()
    return value.quantize(Decimal(1)) if value.as_tuple().exponent > 0 else value  # type: ignore[operator]


# ------------------------------------------------------------------ symbols
# The one place that reads and writes instrument symbols (ccxt's unified form): spot
# ``BASE/QUOTE`` (``BTC/USDT``), linear perp ``BASE/QUOTE:SETTLE`` (``BTC/USDT:USDT``).


def spot_symbol(base: str, quote: str) -> str:
    """``BTC``, ``USDT`` → ``BTC/USDT``."""
    return f"{base}/{quote}"


def perp_symbol(base: str, quote: str) -> str:
    """The linear perp of ``base`` in ``quote``: ``BTC``, ``USDT`` → ``BTC/USDT:USDT``."""
    return f"{base}/{quote}:{quote}"


def symbol_of(kind: InstrumentKind, base: str, quote: str) -> str:
    """The symbol of ``base``'s ``kind`` instrument in ``quote`` (:func:`spot_symbol` or
    :func:`perp_symbol`)."""
    return perp_symbol(base, quote) if kind == "perp" else spot_symbol(base, quote)


def is_perp(symbol: str) -> bool:
    """``BTC/USDT:USDT`` (it names a settlement asset) is a perp, ``BTC/USDT`` is spot."""
    return ":" in symbol


def kind_of(symbol: str) -> InstrumentKind:
    """``perp`` or ``spot`` (see :func:`is_perp`)."""
    return "perp" if is_perp(symbol) else "spot"


def base_of(symbol: str) -> str:
    """``BTC/USDT`` and ``BTC/USDT:USDT`` → ``BTC``."""
    return symbol.partition("/")[0]


def quote_of(symbol: str) -> str:
    """``BTC/USDT`` and ``BTC/USDT:USDT`` → ``USDT`` (the currency prices are in)."""
    return symbol.partition("/")[2].partition(":")[0]


def settle_of(symbol: str) -> str:
    """The asset a trade of ``symbol`` pays and is paid in: a perp's settlement asset
    (``BTC/USDT:USDT`` → ``USDT``), a spot pair's quote (``BTC/USDT`` → ``USDT``)."""
    quote, _, settle = symbol.partition("/")[2].partition(":")
    return settle or quote


def spot_of(symbol: str) -> str:
    """The spot pair of the same base and quote: ``BTC/USDT:USDT`` (and ``BTC/USDT``) →
    ``BTC/USDT``."""
    return symbol.partition(":")[0]


def index_by_symbol(instruments: Iterable[Instrument]) -> Mapping[str, Instrument]:
    return {i.symbol: i for i in instruments}


def binance_defaults(assets: Iterable[str], quote: str = "USDT") -> list[Instrument]:
    """Binance-like filters for spot and USD-M perps (values as published by Binance for BTC and
    ETH; other assets get conservative generic filters). Fees: spot 0.1 %, perps 0.02/0.05 %."""
    known = {
        "BTC": (
            Decimal("0.01"),
            Decimal("0.00001"),
            Decimal("0.1"),
            Decimal("0.001"),
            Decimal(100),
        ),
        "ETH": (Decimal("0.01"), Decimal("0.0001"), Decimal("0.01"), Decimal("0.001"), Decimal(20)),
    }
    generic = (Decimal("0.0001"), Decimal("0.01"), Decimal("0.0001"), Decimal("0.1"), Decimal(5))
    fees = FEE_PRESETS[DEFAULT_FEE_PRESET]
    out: list[Instrument] = []
    for asset in assets:
        s_tick, s_lot, p_tick, p_lot, p_min = known.get(asset, generic)
        spot = _Filters(s_tick, s_lot, Decimal(5), fees.spot.maker, fees.spot.taker)
        perp = _Filters(p_tick, p_lot, p_min, fees.perp.maker, fees.perp.taker)
        out += [_instrument("spot", asset, quote, spot), _instrument("perp", asset, quote, perp)]
    return out


class _Filters(NamedTuple):
    """An instrument's exchange filters (its minimum quantity is one lot) and fees."""

    tick_size: Decimal
    lot_size: Decimal
    min_notional: Decimal
    maker_fee: Decimal
    taker_fee: Decimal


def _instrument(kind: InstrumentKind, base: str, quote: str, filters: _Filters) -> Instrument:
    return Instrument(
        symbol=symbol_of(kind, base, quote),
        kind=kind,
        base=base,
        quote=quote,
        tick_size=filters.tick_size,
        lot_size=filters.lot_size,
        min_qty=filters.lot_size,
        min_notional=filters.min_notional,
        maker_fee=filters.maker_fee,
        taker_fee=filters.taker_fee,
    )
