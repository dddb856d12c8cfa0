"""Orders over the WS-API: the loopback exchange answers ccxt.pro's ``create_order_ws`` (Binance
``order.place`` on ``/ws-api/v3`` for spot, ``/ws-fapi/v1`` for USDⓈ-M) as its REST endpoint
does, with the same checks, codes and request weight."""

from __future__ import annotations

from collections.abc import AsyncIterator

import ccxt
import pytest

from tests.support.loopback import Loopback, loopback_exchange

PERP = "BTC/USDT:USDT"
SPOT = "BTC/USDT"


@pytest.fixture
async def lb() -> AsyncIterator[Loopback]:
    async with loopback_exchange() as exchange:
        yield exchange


async def test_a_spot_market_order_over_the_ws_api_fills_and_answers_with_its_fills(
    lb: Loopback,
) -> None:
    order = await lb.client.create_order_ws(
        SPOT, "market", "buy", 0.01, None, {"newClientOrderId": "bl-ws-1"}
    )
    assert order["clientOrderId"] == "bl-ws-1"
    assert order["status"] == "closed"
    assert order["filled"] == 0.01
    assert len(order["trades"]) == 1
    state = await lb.state()
    placed = [o for o in state["orders"] if o["clientOrderId"] == "bl-ws-1"]
    assert [o["status"] for o in placed] == ["FILLED"]
    assert len(lb.server.core.trades) == 1


async def test_a_perp_order_goes_to_the_futures_ws_api_and_opens_a_position(
    lb: Loopback,
) -> None:
    order = await lb.client.create_order_ws(
        PERP, "market", "sell", 0.01, None, {"newClientOrderId": "bl-ws-2"}
    )
    assert order["clientOrderId"] == "bl-ws-2"
    assert order["status"] == "closed"
    urls = set(lb.client.clients)
    assert any(url.endswith("/ws-fapi/v1") for url in urls), urls
    positions = await lb.client.fetch_positions([PERP])
    assert [(p["side"], p["contracts"]) for p in positions if p["contracts"]] == [("short", 0.01)]


async def test_a_reused_client_order_id_is_refused_as_a_duplicate_on_both_markets(
    lb: Loopback,
) -> None:
    for symbol, code in ((SPOT, "-2010"), (PERP, "-4116")):
        params = {"newClientOrderId": f"bl-dup-{code}"}
        await lb.client.create_order_ws(symbol, "market", "buy", 0.01, None, params)
        with pytest.raises(ccxt.ExchangeError, match=code):
            await lb.client.create_order_ws(symbol, "market", "buy", 0.01, None, params)
    assert len(lb.server.core.trades) == 2


async def test_a_bad_signature_is_refused_with_1022_and_places_nothing(lb: Loopback) -> None:
    client = lb.new_client(secret="not-the-secret")
    try:
        await client.load_markets()
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            await client.create_order_ws(SPOT, "market", "buy", 0.01)
    finally:
        await client.close()
    assert (await lb.state())["orders"] == []


async def test_filters_are_checked_as_on_rest(lb: Loopback) -> None:
    with pytest.raises(ccxt.InvalidOrder, match=r"-1013|-4164"):  # min notional
        await lb.client.create_order_ws(SPOT, "market", "buy", 0.00001)
    with pytest.raises(ccxt.InsufficientFunds):
        await lb.client.create_order_ws(SPOT, "market", "buy", 1000)
    with pytest.raises(ccxt.InvalidOrder, match="-2022"):  # reduce-only with no position
        await lb.client.create_order_ws(PERP, "market", "buy", 0.01, None, {"reduceOnly": True})
    assert lb.server.core.trades == []


async def test_ws_orders_count_on_the_ip_weight_budget_and_are_refused_past_it() -> None:
    async with loopback_exchange(spot_weight_limit=30) as lb:  # load_markets used 20
        before = lb.server.used_weight("spot")
        await lb.client.create_order_ws(SPOT, "market", "buy", 0.01)
        assert lb.server.used_weight("spot") == before + 1
        for _ in range(30 - lb.server.used_weight("spot")):  # up to the limit
            await lb.client.create_order_ws(SPOT, "market", "buy", 0.01)
        assert lb.server.used_weight("spot") == 30
        with pytest.raises(ccxt.RateLimitExceeded, match="-1003"):
            await lb.client.create_order_ws(SPOT, "market", "buy", 0.01)


async def test_a_read_only_key_is_refused_over_the_ws_api_as_on_rest(lb: Loopback) -> None:
    lb.server.permissions.default = "read"
    for symbol in (SPOT, PERP):
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await lb.client.create_order_ws(symbol, "market", "buy", 0.01)
    assert (await lb.state())["orders"] == []
