"""The loopback Binance exchange through the real ccxt.pro client: markets, balances, orders,
user and public streams (tests/support/loopback.py starts it on 127.0.0.1, port 0)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import pytest

from tests.support.loopback import Loopback, loopback_exchange, subscribed
from tests.support.waiting import eventually

PERP = "BTC/USDT:USDT"
SPOT = "BTC/USDT"


@pytest.fixture
async def lb(tmp_path: Path) -> AsyncIterator[Loopback]:
    async with loopback_exchange(tmp_path / "exchange.sqlite") as exchange:
        yield exchange


def _order(state: dict[str, Any], client_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [o for o in state["orders"] if o["clientOrderId"] == client_id]
    assert len(found) == 1, found
    return found[0]


async def test_markets_load_with_binance_precision_and_limits(lb: Loopback) -> None:
    perp, spot = lb.client.market(PERP), lb.client.market(SPOT)
    assert perp["swap"]
    assert perp["linear"]
    assert perp["settle"] == "USDT"
    assert perp["id"] == "BTCUSDT"
    assert perp["precision"]["amount"] == 0.001
    assert perp["precision"]["price"] == 0.1
    assert perp["limits"]["amount"]["min"] == 0.001
    assert perp["limits"]["cost"]["min"] == 100
    assert spot["spot"]
    assert spot["precision"]["amount"] == 0.00001
    assert spot["precision"]["price"] == 0.01
    assert spot["limits"]["cost"]["min"] == 5
    assert set(lb.client.symbols) == {"BTC/USDT", "ETH/USDT", "BTC/USDT:USDT", "ETH/USDT:USDT"}


async def test_usdt_is_reported_on_spot_only(lb: Loopback) -> None:
    spot = await lb.client.fetch_balance()
    assert spot["USDT"]["free"] == 100000
    assert spot["USDT"]["used"] == 0
    swap = await lb.client.fetch_balance({"type": "swap"})
    assert swap["total"] == {}


async def test_perp_market_order_fills_over_rest_and_user_stream(lb: Loopback) -> None:
    orders = asyncio.create_task(lb.client.watch_orders(PERP))
    trades = asyncio.create_task(lb.client.watch_my_trades(PERP))
    await subscribed(lb, "user:futures")
    placed = await lb.client.create_order(
        PERP, "market", "buy", 0.01, None, {"newClientOrderId": "p-1"}
    )
    assert placed["clientOrderId"] == "p-1"
    assert placed["status"] == "closed"
    assert placed["filled"] == 0.01
    assert placed["average"] == 50000
    streamed = await asyncio.wait_for(orders, 5)
    assert [(o["clientOrderId"], o["status"]) for o in streamed][-1] == ("p-1", "closed")
    fills = await asyncio.wait_for(trades, 5)
    assert fills[0]["order"] == placed["id"]
    assert fills[0]["amount"] == 0.01
    assert fills[0]["fee"] == {"currency": "USDT", "cost": 0.25}  # 500 × 0.05 % taker
    positions = await lb.client.fetch_positions([PERP])
    assert positions[0]["contracts"] == 0.01
    assert positions[0]["side"] == "long"
    assert positions[0]["entryPrice"] == 50000
    state = await lb.state()
    assert state["positions"][PERP]["qty"] == "0.01"
    assert Decimal(state["balances"]["USDT"]["free"]) == Decimal("99999.75")


async def test_spot_limit_order_rests_locks_and_cancels(lb: Loopback) -> None:
    balance = asyncio.create_task(lb.client.watch_balance())
    orders = asyncio.create_task(lb.client.watch_orders(SPOT))
    await subscribed(lb, "user:spot")
    placed = await lb.client.create_order(
        SPOT, "limit", "buy", 0.01, 49000, {"newClientOrderId": "s-1"}
    )
    assert placed["status"] == "open"
    assert placed["price"] == 49000
    assert [o["status"] for o in await asyncio.wait_for(orders, 5)] == ["open"]
    locked = await asyncio.wait_for(balance, 5)
    assert locked["USDT"]["used"] == pytest.approx(490.49)  # 490 + 0.1 % maker fee
    assert [o["id"] for o in await lb.client.fetch_open_orders(SPOT)] == [placed["id"]]
    canceled = await lb.client.cancel_order(placed["id"], SPOT)
    assert canceled["status"] == "canceled"
    assert await lb.client.fetch_open_orders(SPOT) == []
    assert (await lb.client.fetch_balance())["USDT"]["free"] == 100000
    with pytest.raises(ccxt.OrderNotFound):
        await lb.client.cancel_order(placed["id"], SPOT)


async def test_resting_limit_fills_when_the_quote_touches_it(lb: Loopback) -> None:
    placed = await lb.client.create_order(
        PERP, "limit", "sell", 0.01, 50100, {"newClientOrderId": "l-1"}
    )
    assert placed["status"] == "open"
    orders = asyncio.create_task(lb.client.watch_orders(PERP))
    await subscribed(lb, "user:futures")
    await lb.quote(PERP, "50100", "50100.1")
    filled = await asyncio.wait_for(orders, 5)
    assert filled[-1]["status"] == "closed"
    assert filled[-1]["average"] == 50100
    trades = await lb.client.fetch_my_trades(PERP)
    assert [t["takerOrMaker"] for t in trades] == ["maker"]


async def test_fetch_order_by_client_id_and_open_orders(lb: Loopback) -> None:
    await lb.client.create_order(PERP, "limit", "buy", 0.01, 40000, {"newClientOrderId": "c-1"})
    found = await lb.client.fetch_order(None, PERP, {"origClientOrderId": "c-1"})
    assert found["clientOrderId"] == "c-1"
    assert found["status"] == "open"
    with pytest.raises(ccxt.OrderNotFound):
        await lb.client.fetch_order(None, PERP, {"origClientOrderId": "nope"})
    assert [o["clientOrderId"] for o in await lb.client.fetch_open_orders(PERP)] == ["c-1"]
    await lb.client.cancel_order(None, PERP, {"origClientOrderId": "c-1"})
    found = await lb.client.fetch_order(None, PERP, {"origClientOrderId": "c-1"})
    assert found["status"] == "canceled"


@pytest.mark.parametrize("symbol", [PERP, SPOT])
async def test_duplicate_client_order_id_is_one_order(lb: Loopback, symbol: str) -> None:
    params = {"newClientOrderId": "dup-1"}
    await lb.client.create_order(symbol, "market", "buy", 0.01, None, params)
    with pytest.raises(ccxt.InvalidOrder) as caught:
        await lb.client.create_order(symbol, "market", "buy", 0.01, None, params)
    assert ("-4116" if symbol == PERP else "-2010") in str(caught.value)
    state = await lb.state()
    assert _order(state, "dup-1")["status"] == "FILLED"
    assert len(state["trades"]) == 1


async def test_quotes_and_marks_stream_spot_and_perp_separately(lb: Loopback) -> None:
    perp = asyncio.create_task(lb.client.watch_bids_asks([PERP]))
    spot = asyncio.create_task(lb.client.watch_bids_asks([SPOT]))
    marks = asyncio.create_task(lb.client.watch_mark_prices([PERP]))
    await subscribed(lb, "btcusdt@bookticker", "btcusdt@markprice@1s")
    await eventually(lambda: lb.server.connections >= 3)
    await lb.quote(PERP, "50010", "50010.5")
    await lb.quote(SPOT, "50020", "50020.01")
    await lb.mark(PERP, "50011", "0.00015", next_ns=1_800_000_000_000_000_000)
    assert (await asyncio.wait_for(perp, 5))[PERP]["bid"] == 50010
    assert (await asyncio.wait_for(spot, 5))[SPOT]["ask"] == 50020.01
    mark = (await asyncio.wait_for(marks, 5))[PERP]
    assert mark["markPrice"] == 50011
    assert mark["info"]["r"] == "0.00015"
    assert mark["info"]["T"] == 1_800_000_000_000


async def test_funding_rate_rest(lb: Loopback) -> None:
    await lb.mark(PERP, "50000", "0.0001", next_ns=1_800_000_000_000_000_000)
    rate = await lb.client.fetch_funding_rate(PERP)
    assert rate["fundingRate"] == 0.0001
    assert rate["markPrice"] == 50000
    assert rate["fundingTimestamp"] == 1_800_000_000_000
    rates = await lb.client.fetch_funding_rates([PERP, "ETH/USDT:USDT"])
    assert set(rates) == {PERP, "ETH/USDT:USDT"}


async def test_positions_and_balance_stream_after_a_perp_fill(lb: Loopback) -> None:
    await lb.client.watch_positions([PERP])  # the first call answers with the REST snapshot
    positions = asyncio.create_task(lb.client.watch_positions([PERP]))
    balance = asyncio.create_task(lb.client.watch_balance())
    await subscribed(lb, "user:futures", "user:spot")
    await lb.client.create_order(PERP, "market", "sell", 0.02)
    held = await asyncio.wait_for(positions, 5)
    assert held[-1]["contracts"] == 0.02
    assert held[-1]["side"] == "short"
    usdt = (await asyncio.wait_for(balance, 5))["USDT"]
    assert usdt["total"] == pytest.approx(100000 - 0.5)  # 1000 × 0.05 % taker


async def test_leverage(lb: Loopback) -> None:
    reply = await lb.client.set_leverage(5, PERP)
    assert reply["leverage"] == 5
    assert lb.core.exchange.leverage(PERP) == 5


async def test_funding_over_the_user_streams_and_income_rest(lb: Loopback) -> None:
    await lb.client.create_order(PERP, "market", "buy", 0.01)
    await lb.client.watch_positions([PERP])  # the REST snapshot
    positions = asyncio.create_task(lb.client.watch_positions([PERP]))
    balance = asyncio.create_task(lb.client.watch_balance())
    await subscribed(lb, "user:futures", "user:spot")
    before = lb.core.exchange.balance("USDT")
    await lb.core.settle_funding(PERP, Decimal("0.0001"), Decimal(50000), lb.clock.now_ns())
    assert lb.core.exchange.balance("USDT") == before - Decimal("0.05")  # longs pay
    funded = await asyncio.wait_for(positions, 5)
    assert funded[-1]["info"]["ps"] == "BOTH"
    usdt = (await asyncio.wait_for(balance, 5))["USDT"]
    assert usdt["total"] == pytest.approx(float(before - Decimal("0.05")))
    history = await lb.client.fetch_funding_history(PERP)
    assert [(h["amount"], h["code"], h["symbol"]) for h in history] == [(-0.05, "USDT", PERP)]
    assert history[0]["id"] == "1"
    income = await lb.client.fapiPrivateGetIncome({"incomeType": "FUNDING_FEE"})
    assert income[0]["tranId"] == 1
    assert income[0]["incomeType"] == "FUNDING_FEE"
    rates = await lb.client.fetch_funding_rate_history(PERP)
    assert [r["fundingRate"] for r in rates] == [0.0001]


async def test_my_trades_since_and_from_id(lb: Loopback) -> None:
    for _ in range(3):
        await lb.client.create_order(PERP, "market", "buy", 0.01)
    await lb.client.create_order(SPOT, "market", "buy", 0.01)
    perp = await lb.client.fetch_my_trades(PERP)
    assert [t["id"] for t in perp] == ["1", "2", "3"]
    later = await lb.client.fetch_my_trades(PERP, None, None, {"fromId": 2})
    assert [t["id"] for t in later] == ["2", "3"]
    since = await lb.client.fetch_my_trades(PERP, perp[2]["timestamp"])
    assert "3" in [t["id"] for t in since]
    assert [t["id"] for t in await lb.client.fetch_my_trades(SPOT)] == ["4"]


async def test_spot_market_buy_by_quote_quantity(lb: Loopback) -> None:
    placed = await lb.client.create_order(SPOT, "market", "buy", None, None, {"quoteOrderQty": 500})
    assert placed["filled"] == 0.01
    assert placed["cost"] == 500
    assert (await lb.client.fetch_balance())["BTC"]["total"] == 0.01


async def test_ioc_limit_that_does_not_cross_expires(lb: Loopback) -> None:
    placed = await lb.client.create_order(PERP, "limit", "buy", 0.01, 49000, {"timeInForce": "IOC"})
    assert placed["status"] == "expired"
    assert placed["timeInForce"] == "IOC"
    assert (await lb.client.fetch_order(placed["id"], PERP))["status"] == "expired"
    crossing = await lb.client.create_order(
        PERP, "limit", "buy", 0.01, 50100, {"timeInForce": "IOC"}
    )
    assert crossing["status"] == "closed"
    assert crossing["average"] == 50000  # the taker price of the core: the quote mid


async def test_cancel_all_open_orders_of_a_symbol(lb: Loopback) -> None:
    for n, price in enumerate((40000, 41000)):
        await lb.client.create_order(
            PERP, "limit", "buy", 0.01, price, {"newClientOrderId": f"p{n}"}
        )
        await lb.client.create_order(
            SPOT, "limit", "buy", 0.01, price, {"newClientOrderId": f"s{n}"}
        )
    await lb.client.cancel_all_orders(PERP)
    assert await lb.client.fetch_open_orders(PERP) == []
    canceled = await lb.client.cancel_all_orders(SPOT)
    assert sorted(o["info"]["origClientOrderId"] for o in canceled) == ["s0", "s1"]
    assert (await lb.state())["openOrders"] == []
    assert (await lb.client.fetch_balance())["USDT"]["used"] == 0
