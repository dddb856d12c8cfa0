"""What Binance rejects, the loopback exchange rejects with Binance's code, and ccxt turns each
into the exception class it raises against Binance."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import ccxt
import pytest

from tests.support.loopback import Loopback, loopback_exchange

PERP = "BTC/USDT:USDT"
SPOT = "BTC/USDT"


@pytest.fixture
async def lb(tmp_path: Path) -> AsyncIterator[Loopback]:
    async with loopback_exchange(tmp_path / "exchange.sqlite") as exchange:
        yield exchange


async def _state_order(lb: Loopback, client_id: str) -> dict[str, Any]:
    orders: list[dict[str, Any]] = (await lb.state())["orders"]
    return next(o for o in orders if o["clientOrderId"] == client_id)


async def test_bad_signature_is_1022(lb: Loopback) -> None:
    client = lb.new_client(secret="not-the-secret")
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        await client.fetch_balance()


async def test_unknown_api_key_is_2015(lb: Loopback) -> None:
    client = lb.new_client(apiKey="unknown-key")
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        await client.fetch_balance({"type": "swap"})


async def test_stale_timestamp_is_1021(lb: Loopback) -> None:
    client = lb.new_client()
    client.options["timeDifference"] = 30_000  # the client's clock 30 s behind (recvWindow 10 s)
    with pytest.raises(ccxt.InvalidNonce, match="-1021"):
        await client.fetch_balance()
    client.options["recvWindow"] = 60_000
    assert (await client.fetch_balance())["USDT"]["free"] == 100000
    client.options["recvWindow"] = 60_001
    with pytest.raises(ccxt.ExchangeError, match="-1131"):
        await client.fetch_balance()


async def test_precision_violations_are_filter_failures(lb: Loopback) -> None:
    with pytest.raises(ccxt.InvalidOrder, match="-1111"):
        await lb.client.fapiPrivatePostOrder(
            {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.0105"}
        )
    with pytest.raises(ccxt.InvalidOrder, match="-4014"):
        await lb.client.fapiPrivatePostOrder(
            {
                "symbol": "BTCUSDT",
                "side": "BUY",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "0.01",
                "price": "40000.05",
            }
        )
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        await lb.client.privatePostOrder(
            {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.000015"}
        )
    with pytest.raises(ccxt.InvalidOrder, match="PRICE_FILTER"):
        await lb.client.privatePostOrder(
            {
                "symbol": "BTCUSDT",
                "side": "BUY",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "0.01",
                "price": "40000.005",
            }
        )


async def test_min_notional(lb: Loopback) -> None:
    with pytest.raises(ccxt.InvalidOrder, match="-4164"):
        await lb.client.create_order(PERP, "market", "buy", 0.001)  # 50 < 100 USDT
    with pytest.raises(ccxt.InvalidOrder, match="NOTIONAL"):
        await lb.client.create_order(SPOT, "market", "buy", 0.00005)  # 2.5 < 5 USDT


async def test_insufficient_balance_and_margin(lb: Loopback) -> None:
    # ccxt matches Binance's message (-2010 "Account has insufficient balance ...") first
    with pytest.raises(ccxt.InsufficientFunds, match="insufficient balance"):
        await lb.client.create_order(SPOT, "market", "buy", 3, None, {"newClientOrderId": "b-1"})
    with pytest.raises(ccxt.InsufficientFunds, match="insufficient balance"):
        await lb.client.create_order(SPOT, "market", "sell", 0.1)  # holds no BTC
    with pytest.raises(ccxt.InsufficientFunds, match="-2019"):
        await lb.client.create_order(PERP, "market", "buy", 30)  # 150k initial margin at 10x
    rejected = await _state_order(lb, "b-1")
    assert rejected["status"] == "REJECTED"
    assert rejected["reason"].startswith("insufficient balance")
    assert (await lb.state())["trades"] == []


async def test_a_rejected_client_order_id_is_found_and_resending_it_is_rejected_again(
    lb: Loopback,
) -> None:
    params = {"newClientOrderId": "r-1"}
    with pytest.raises(ccxt.InsufficientFunds, match="-2019"):
        await lb.client.create_order(PERP, "market", "buy", 30, None, params)
    found = await lb.client.fetch_order(None, PERP, {"origClientOrderId": "r-1"})
    assert found["status"] == "rejected"
    assert found["filled"] == 0
    with pytest.raises(ccxt.InsufficientFunds, match="-2019"):
        await lb.client.create_order(PERP, "market", "buy", 30, None, params)
    with pytest.raises(ccxt.OrderNotFound):
        await lb.client.cancel_order(None, PERP, {"origClientOrderId": "r-1"})
    assert await lb.client.fetch_open_orders(PERP) == []
    assert [o["status"] for o in (await lb.state())["orders"]] == ["REJECTED"]


async def test_reduce_only_that_would_not_reduce_is_2022(lb: Loopback) -> None:
    with pytest.raises(ccxt.InvalidOrder, match="-2022"):
        await lb.client.create_order(PERP, "market", "sell", 0.01, None, {"reduceOnly": True})
    await lb.client.create_order(PERP, "market", "buy", 0.01)
    closed = await lb.client.create_order(PERP, "market", "sell", 0.01, None, {"reduceOnly": True})
    assert closed["status"] == "closed"
    assert closed["reduceOnly"] is True


async def test_post_only_that_would_take_is_refused(lb: Loopback) -> None:
    # quotes: perp 49999.9 / 50000.1, spot 49999.99 / 50000.01
    with pytest.raises(ccxt.OrderNotFillable, match="-5022"):
        await lb.client.create_order(PERP, "limit", "buy", 0.01, 50001, {"postOnly": True})
    with pytest.raises(ccxt.OrderImmediatelyFillable, match="would immediately match"):
        await lb.client.create_order(SPOT, "limit", "buy", 0.01, 50001, {"postOnly": True})
    resting = await lb.client.create_order(PERP, "limit", "buy", 0.01, 49000, {"postOnly": True})
    assert resting["status"] == "open"
    assert resting["postOnly"] is True
    assert resting["timeInForce"] == "PO"


async def test_weight_exhaustion_is_429_1003(tmp_path: Path) -> None:
    async with loopback_exchange(spot_weight_limit=60) as lb:
        # load_markets used 1 (futures) + 20 (spot); every fetch_balance costs 20 (spot)
        async def exhaust() -> None:
            for _ in range(5):
                await lb.client.fetch_balance()

        with pytest.raises(ccxt.DDoSProtection, match="-1003"):
            await exhaust()
        headers = lb.client.last_response_headers
        assert int(headers["X-MBX-USED-WEIGHT-1M"]) > 60
        assert 1 <= int(headers["Retry-After"]) <= 60
        assert lb.server.used_weight("futures") < 60  # counted per market
        await lb.client.fetch_balance({"type": "swap"})


async def test_time_ping_and_a_signed_call_without_a_key(lb: Loopback) -> None:
    spot_ms = await lb.client.fetch_time()
    futures = await lb.client.fapiPublicGetTime()
    assert abs(int(futures["serverTime"]) - spot_ms) < 60_000
    assert await lb.client.publicGetPing() == {}
    assert await lb.client.fapiPublicGetPing() == {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(lb.server.rest_url + "/fapi/v3/account?timestamp=1&signature=ab") as resp,
    ):
        assert resp.status == 401
        assert await resp.json() == {"code": -2014, "msg": "API-key format invalid."}
        assert "X-MBX-USED-WEIGHT-1M" in resp.headers


async def test_spot_user_stream_with_a_bad_signature_is_refused(lb: Loopback) -> None:
    client = lb.new_client(secret="not-the-secret")
    await client.load_markets()
    # ccxt 4.5.90 rejects the subscription with AuthenticationError in handle_ws_error, which also
    # deletes client.subscriptions["spot"]; ensure_user_data_stream_ws_subscribe_signature then
    # deletes it again and raises KeyError('spot') instead (the same against Binance)
    with pytest.raises((ccxt.AuthenticationError, KeyError)):
        await asyncio.wait_for(client.watch_balance(), 5)
    assert "user:spot" not in lb.server.subscriptions()


async def test_going_on_past_twice_the_limit_is_an_ip_ban_418(tmp_path: Path) -> None:
    async with loopback_exchange(spot_weight_limit=60) as lb:
        refusals: list[str] = []
        for _ in range(8):  # 20 weight each (load_markets used 20 of spot's too)
            try:
                await lb.client.fetch_balance()
            except ccxt.DDoSProtection as exc:  # ccxt: "binance <status> <reason> <body>"
                refusals.append(str(exc).split()[1])
        assert refusals[0] == "429"
        assert refusals[-1] == "418"
        assert "banned until" in lb.client.last_http_response
        assert 100 <= int(lb.client.last_response_headers["Retry-After"]) <= 120
        await lb.client.fetch_balance({"type": "swap"})  # futures: another limit
