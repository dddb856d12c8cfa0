"""The one symbol helper (engine/kernel/instruments.py): every question about a symbol — spot or
perp, base, quote, settlement asset, the perp or spot of an asset — is answered there."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ballast.engine.kernel.instruments import (
    base_of,
    binance_defaults,
    is_perp,
    kind_of,
    perp_symbol,
    quote_of,
    settle_of,
    spot_of,
    spot_symbol,
    symbol_of,
)


@pytest.mark.parametrize(
    ("symbol", "kind", "base", "quote", "settle", "spot"),
    [
        ("BTC/USDT", "spot", "BTC", "USDT", "USDT", "BTC/USDT"),
        ("BTC/USDT:USDT", "perp", "BTC", "USDT", "USDT", "BTC/USDT"),
        ("ETH/USDC:USDC", "perp", "ETH", "USDC", "USDC", "ETH/USDC"),
        ("BTC/USD:BTC", "perp", "BTC", "USD", "BTC", "BTC/USD"),  # inverse: settles in the base
        ("1000PEPE/USDT", "spot", "1000PEPE", "USDT", "USDT", "1000PEPE/USDT"),
    ],
)
def test_a_symbol_answers_every_question_about_itself(
    symbol: str, kind: str, base: str, quote: str, settle: str, spot: str
) -> None:
    assert kind_of(symbol) == kind
    assert is_perp(symbol) == (kind == "perp")
    assert (base_of(symbol), quote_of(symbol), settle_of(symbol)) == (base, quote, settle)
    assert spot_of(symbol) == spot


def test_symbols_are_built_in_one_place() -> None:
    assert spot_symbol("BTC", "USDT") == symbol_of("spot", "BTC", "USDT") == "BTC/USDT"
    assert perp_symbol("BTC", "USDT") == symbol_of("perp", "BTC", "USDT") == "BTC/USDT:USDT"
    for kind in ("spot", "perp"):
        built = symbol_of(kind, "SOL", "USDC")
        assert (kind_of(built), base_of(built), quote_of(built)) == (kind, "SOL", "USDC")


def test_default_instruments_agree_with_their_symbols() -> None:
    instruments = binance_defaults(["BTC", "DOGE"], "USDC")
    assert [i.symbol for i in instruments] == [
        "BTC/USDC",
        "BTC/USDC:USDC",
        "DOGE/USDC",
        "DOGE/USDC:USDC",
    ]
    for inst in instruments:
        assert (inst.kind, inst.base, inst.quote) == (
            kind_of(inst.symbol),
            base_of(inst.symbol),
            quote_of(inst.symbol),
        )
        assert inst.min_qty == inst.lot_size
    btc_spot, btc_perp = instruments[:2]
    assert (btc_spot.tick_size, btc_spot.lot_size, btc_spot.min_notional) == (
        Decimal("0.01"),
        Decimal("0.00001"),
        Decimal(5),
    )
    assert (btc_perp.maker_fee, btc_perp.taker_fee, btc_perp.min_notional) == (
        Decimal("0.0002"),
        Decimal("0.0005"),
        Decimal(100),
    )
