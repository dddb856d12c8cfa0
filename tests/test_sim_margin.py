"""Margin of the simulated exchange: maintenance tiers, initial margin by leverage, liquidation
price, and how the exchange reports them."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from ballast.adapters.sim.config import SimConfig
from ballast.adapters.sim.exchange import SimExchange
from ballast.adapters.sim.margin import (
    BTCUSDT_BRACKETS,
    ETHUSDT_BRACKETS,
    GENERIC_BRACKETS,
    Bracket,
    MarginTable,
    bracket_for,
    initial_margin,
    liquidation_price,
    maintenance_margin,
)
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.events import Bar, OrderRejected, PositionUpdated, Side
from ballast.engine.kernel.instruments import binance_defaults

D = Decimal
BTC_PERP = "BTC/USDT:USDT"
ETH_PERP = "ETH/USDT:USDT"
TABLES = {"btc": BTCUSDT_BRACKETS, "eth": ETHUSDT_BRACKETS, "generic": GENERIC_BRACKETS}


@pytest.mark.parametrize(
    ("notional", "expected"),
    [
        (D(0), D(0)),
        (D(10_000), D(40)),  # tier 1: 0.4 %, amount 0
        (D(50_000), D(200)),  # the boundary: tier 1 (and tier 2 gives the same)
        (D("50000.1"), D("200.0005")),  # tier 2: 0.5 % − 50
        (D(100_000), D(450)),
        (D(250_000), D(1_200)),
        (D(250_001), D("1200.01")),  # tier 3: 1 % − 1 300
        (D(3_000_000), D(28_700)),
        (D(3_000_001), D("28700.025")),  # tier 4: 2.5 % − 46 300
        (D(20_000_000), D(453_700)),
        (D(30_000_000), D(953_700)),  # tier 5: 5 % − 546 300
        (D(50_000_000), D(1_953_700)),  # beyond the last cap: the last tier
    ],
)
def test_btc_maintenance_margin_per_tier(notional: Decimal, expected: Decimal) -> None:
    assert maintenance_margin(BTCUSDT_BRACKETS, notional) == expected
    assert maintenance_margin(BTCUSDT_BRACKETS, -notional) == expected


@pytest.mark.parametrize(
    ("notional", "expected"),
    [
        (D(10_000), D(50)),  # 0.5 %
        (D(10_001), D("50.0065")),  # 0.65 % − 15
        (D(100_000), D(635)),
        (D(100_001), D("635.01")),  # 1 % − 365
        (D(500_001), D("4635.02")),  # 2 % − 5 365
        (D(1_000_001), D("14635.05")),  # 5 % − 35 365
    ],
)
def test_eth_maintenance_margin_per_tier(notional: Decimal, expected: Decimal) -> None:
    assert maintenance_margin(ETHUSDT_BRACKETS, notional) == expected


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_table_is_contiguous_and_continuous_at_its_boundaries(name: str) -> None:
    table = TABLES[name]
    assert table[0].floor == 0
    for lower, upper in itertools.pairwise(table):
        assert upper.floor == lower.cap
        assert upper.mmr > lower.mmr
        assert upper.max_leverage <= lower.max_leverage
        boundary = upper.floor
        assert (
            boundary * lower.mmr - lower.maint_amount == boundary * upper.mmr - upper.maint_amount
        )


def test_bracket_lookup_takes_the_lower_tier_on_a_boundary_and_the_last_beyond_the_cap() -> None:
    assert bracket_for(BTCUSDT_BRACKETS, D(50_000)) is BTCUSDT_BRACKETS[0]
    assert bracket_for(BTCUSDT_BRACKETS, D("50000.01")) is BTCUSDT_BRACKETS[1]
    assert bracket_for(BTCUSDT_BRACKETS, D(10**12)) is BTCUSDT_BRACKETS[-1]


@pytest.mark.parametrize(
    ("leverage", "expected"),
    [(D(1), D(50_000)), (D(2), D(25_000)), (D(10), D(5_000)), (D(20), D(2_500))],
)
def test_initial_margin_is_notional_over_leverage(leverage: Decimal, expected: Decimal) -> None:
    assert initial_margin(D(50_000), leverage) == expected
    assert initial_margin(D(-50_000), leverage) == expected


def test_margin_table_leverage_default_per_symbol_and_limits() -> None:
    table = MarginTable({BTC_PERP: BTCUSDT_BRACKETS}, GENERIC_BRACKETS, {ETH_PERP: D(3)}, D(10))
    assert table.leverage(BTC_PERP) == 10
    assert table.leverage(ETH_PERP) == 3
    assert table.initial(ETH_PERP, D(30_000)) == D(10_000)
    table.set_leverage(BTC_PERP, D(20))
    assert table.initial(BTC_PERP, D(30_000)) == D(1_500)
    assert table.brackets("SOL/USDT:USDT") == GENERIC_BRACKETS
    with pytest.raises(ValueError, match="above the maximum 125"):
        table.set_leverage(BTC_PERP, D(150))
    with pytest.raises(ValueError, match="at least 1"):
        table.set_leverage(BTC_PERP, D("0.5"))


@pytest.mark.parametrize(
    ("qty", "entry", "wallet"),
    [
        (D(2), D(50_000), D(9_950)),
        (D(-2), D(50_000), D(9_950)),
        (D("0.5"), D(30_000), D(2_000)),
        (D(-100), D(30_000), D(400_000)),  # deep tiers
    ],
)
def test_liquidation_price_solves_margin_balance_equals_maintenance(
    qty: Decimal, entry: Decimal, wallet: Decimal
) -> None:
    cost = qty * entry
    price = liquidation_price(qty, cost, BTCUSDT_BRACKETS, equity_others=wallet)
    assert price is not None
    margin_balance = wallet + qty * price - cost
    maintenance = maintenance_margin(BTCUSDT_BRACKETS, abs(qty) * price)
    assert abs(margin_balance - maintenance) < D("1e-18")


def test_a_long_backed_by_more_than_its_notional_has_no_liquidation_price() -> None:
    assert liquidation_price(D(1), D(50_000), BTCUSDT_BRACKETS, equity_others=D(60_000)) is None
    assert liquidation_price(D(0), D(0), BTCUSDT_BRACKETS, equity_others=D(1)) is None


def _bar(symbol: str, close: str, ts: int) -> Bar:
    price = D(close)
    return Bar(ts, ts, symbol, 3600, price, price, price, price, D(1))


def _market(symbol: str, side: Side, qty: str, cid: str) -> SubmitOrder:
    return SubmitOrder(
        ts_event=0,
        ts_init=0,
        intent_id=cid,
        client_order_id=cid,
        symbol=symbol,
        side=side,
        order_type="market",
        qty=D(qty),
        price=None,
        reduce_only=False,
        post_only=False,
        time_in_force="GTC",
    )


def test_exchange_reports_initial_margin_by_per_symbol_leverage_and_tiered_maintenance() -> None:
    config = SimConfig(balances={"USDT": D(100_000)}, leverage={ETH_PERP: D(4)})
    exchange = SimExchange(binance_defaults(["BTC", "ETH"]), config)
    exchange.on_bar(_bar(BTC_PERP, "60000", 1))
    exchange.on_bar(_bar(ETH_PERP, "3000", 1))
    btc = exchange.submit(_market(BTC_PERP, "buy", "1", "b"), 2)[-1]
    eth = exchange.submit(_market(ETH_PERP, "sell", "10", "e"), 2)[-1]
    assert isinstance(btc, PositionUpdated)
    assert isinstance(eth, PositionUpdated)
    assert btc.margin == D(6_000)  # 60 000 / 10 (default leverage)
    assert eth.margin == D(7_500)  # 30 000 / 4
    assert exchange.position_margin() == D(13_500)
    # BTC 60 000 notional: tier 2 (0.5 % − 50) = 250; ETH 30 000: tier 2 (0.65 % − 15) = 180.
    assert exchange.maintenance_margin() == D(430)


def test_the_exchange_margin_check_uses_the_symbols_current_leverage() -> None:
    exchange = SimExchange(binance_defaults(["BTC"]), SimConfig(balances={"USDT": D(1_000)}))
    exchange.on_bar(_bar(BTC_PERP, "50000", 1))
    refused = exchange.submit(_market(BTC_PERP, "buy", "0.3", "a"), 2)  # 15 000 / 10 > 1 000
    assert isinstance(refused[-1], OrderRejected)
    exchange.set_leverage(BTC_PERP, D(20))
    assert exchange.leverage(BTC_PERP) == 20
    opened = exchange.submit(_market(BTC_PERP, "buy", "0.3", "b"), 3)  # 15 000 / 20 = 750
    assert isinstance(opened[-1], PositionUpdated)
    assert opened[-1].margin == D(750)


def test_custom_brackets_replace_the_defaults() -> None:
    flat = (Bracket(floor=D(0), cap=D(10**9), max_leverage=D(20), mmr=D("0.1"), maint_amount=D(0)),)
    config = SimConfig(balances={"USDT": D(100_000)}, brackets={BTC_PERP: flat})
    exchange = SimExchange(binance_defaults(["BTC"]), config)
    exchange.on_bar(_bar(BTC_PERP, "50000", 1))
    exchange.submit(_market(BTC_PERP, "buy", "1", "b"), 2)
    assert exchange.maintenance_margin() == D(5_000)
