"""Loopback streams beyond the basics: fills after the REST reply, spot own trades, listenKey
lifecycle, the control price route, klines, and a clean stop with clients still connected."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import aiohttp
import ccxt
import pytest

from ballast.adapters.loopback import server as server_module
from ballast.adapters.sim.config import Latency, SimConfig
from ballast.engine.kernel.events import Bar
from tests.support.loopback import API_KEY, Loopback, loopback_exchange, subscribed
from tests.support.waiting import eventually

PERP = "BTC/USDT:USDT"
SPOT = "BTC/USDT"


async def test_market_order_filled_after_the_rest_reply(tmp_path: Path) -> None:
    config = SimConfig(balances={"USDT": Decimal(100000)}, latency=Latency(fill_ns=1))
    async with loopback_exchange(config=config) as lb:
        orders = asyncio.create_task(lb.client.watch_orders(PERP))
        await subscribed(lb, "user:futures")
        placed = await lb.client.create_order(PERP, "market", "buy", 0.01)
        assert placed["status"] == "open"  # waits for the next price
        assert [o["status"] for o in await asyncio.wait_for(orders, 5)] == ["open"]
        orders = asyncio.create_task(lb.client.watch_orders(PERP))
        await lb.quote(PERP, "50100", "50100.2")
        filled = await asyncio.wait_for(orders, 5)
        assert filled[-1]["id"] == placed["id"]
        assert filled[-1]["status"] == "closed"
        assert filled[-1]["average"] == 50100.1
        fetched = await lb.client.fetch_order(placed["id"], PERP)
        assert fetched["status"] == "closed"


async def test_spot_own_trades_stream(tmp_path: Path) -> None:
    async with loopback_exchange() as lb:
        trades = asyncio.create_task(lb.client.watch_my_trades(SPOT))
        await subscribed(lb, "user:spot")
        placed = await lb.client.create_order(SPOT, "market", "buy", 0.01)
        fills = await asyncio.wait_for(trades, 5)
        assert [(t["order"], t["amount"], t["price"]) for t in fills] == [
            (placed["id"], 0.01, 50000)
        ]
        assert fills[0]["fee"]["currency"] == "USDT"


async def _listen_key(session: aiohttp.ClientSession, lb: Loopback, method: str) -> str:
    headers = {"X-MBX-APIKEY": API_KEY}
    async with session.request(
        method, lb.server.rest_url + "/fapi/v1/listenKey", headers=headers
    ) as r:
        assert r.status == 200, await r.text()
        body: dict[str, str] = await r.json()
        return body.get("listenKey", "")


async def test_listen_key_lifecycle(tmp_path: Path) -> None:
    async with loopback_exchange() as lb, aiohttp.ClientSession() as session:
        key = await _listen_key(session, lb, "POST")
        assert await _listen_key(session, lb, "POST") == key  # the active key is reused
        assert await _listen_key(session, lb, "PUT") == key
        url = f"{lb.server.ws_url}/fws/private/ws?listenKey={key}"
        async with session.ws_connect(url) as ws:
            await eventually(lambda: "user:futures" in lb.server.subscriptions())
            await _listen_key(session, lb, "DELETE")
            closed = await ws.receive(timeout=5)
            assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(url)

        lb.server.listen_key_ttl_s = 0.2
        key = await _listen_key(session, lb, "POST")
        async with session.ws_connect(f"{lb.server.ws_url}/fws/private/ws?listenKey={key}") as ws:
            expired = await ws.receive_json(timeout=5)
            assert expired["e"] == "listenKeyExpired"
            assert expired["listenKey"] == key
            closed = await ws.receive(timeout=5)
            assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_price_control_route_feeds_quotes_and_marks(tmp_path: Path) -> None:
    async with loopback_exchange() as lb:
        quotes = asyncio.create_task(lb.client.watch_bids_asks([PERP]))
        await subscribed(lb, "btcusdt@bookticker")
        url = lb.server.rest_url + "/_loopback/price"
        async with aiohttp.ClientSession() as session:
            body = {"symbol": PERP, "bid": "50200", "ask": "50200.5"}
            async with session.post(url, data=json.dumps(body)) as resp:
                assert resp.status == 200
            body = {"symbol": PERP, "mark": "50201", "funding_rate": "0.0003"}
            async with session.post(url, data=json.dumps(body)) as resp:
                assert resp.status == 200
            body = {"symbol": "BTC/USDT", "price": "50300"}
            async with session.post(url, data=json.dumps(body)) as resp:
                assert resp.status == 200
            async with session.post(url, data=json.dumps({"symbol": "XYZ", "price": "1"})) as resp:
                assert resp.status == 400
            async with session.post(url, data=json.dumps({"symbol": PERP})) as resp:
                assert resp.status == 400
        assert (await asyncio.wait_for(quotes, 5))[PERP]["ask"] == 50200.5
        assert lb.core.exchange.mark_price(PERP) == 50201
        assert lb.core.exchange.last_price(SPOT) == 50300
        assert (await lb.client.fetch_funding_rate(PERP))["fundingRate"] == 0.0003
        async with aiohttp.ClientSession() as session:
            body = {"symbol": PERP, "price": "50600", "mark": "50601"}
            async with session.post(url, data=json.dumps(body)) as resp:
                assert resp.status == 200
        assert lb.core.exchange.last_price(PERP) == 50600
        assert lb.core.exchange.mark_price(PERP) == 50601


async def test_bars_move_prices_and_stream_as_klines(tmp_path: Path) -> None:
    async with loopback_exchange() as lb:
        klines = asyncio.create_task(lb.client.watch_ohlcv(PERP, "1m"))
        await subscribed(lb, "btcusdt@kline_1m")
        now = lb.clock.now_ns()
        o, h, low, c = (Decimal(p) for p in ("50000", "50500", "49900", "50400"))
        bar = Bar(now, now, PERP, 60, o, h, low, c, Decimal(3))
        await lb.core.on_market(bar)
        candles = await asyncio.wait_for(klines, 5)
        assert candles[-1][1:5] == [50000, 50500, 49900, 50400]
        assert lb.core.exchange.last_price(PERP) == 50400


async def test_stop_with_clients_still_connected(tmp_path: Path) -> None:
    async with loopback_exchange() as lb:
        quotes = asyncio.create_task(lb.client.watch_bids_asks([PERP]))
        orders = asyncio.create_task(lb.client.watch_orders(PERP))
        await subscribed(lb, "btcusdt@bookticker", "user:futures")
        await lb.server.stop()
        for task in (quotes, orders):
            with pytest.raises(ccxt.NetworkError):
                await asyncio.wait_for(task, 5)


async def test_a_liquidation_streams_the_exchange_order_and_the_closed_position(
    tmp_path: Path,
) -> None:
    async with loopback_exchange(balances={"USDT": "1000"}) as lb:
        await lb.client.create_order(PERP, "market", "buy", 0.1)  # 5,000 notional at 10x
        orders = asyncio.create_task(lb.client.watch_orders(PERP))
        await subscribed(lb, "user:futures")
        await lb.mark(PERP, "40000")  # -1,000: under maintenance margin
        liquidated = await asyncio.wait_for(orders, 5)
        assert liquidated[-1]["clientOrderId"] == "liquidation-1"
        assert liquidated[-1]["status"] == "closed"
        assert liquidated[-1]["side"] == "sell"
        assert await lb.client.fetch_positions([PERP]) == []
        state = await lb.state()
        assert state["positions"] == {}
        assert state["trades"][-1]["clientOrderId"] == "liquidation-1"


async def test_a_client_that_does_not_read_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "MAX_BACKLOG", 5)
    async with loopback_exchange() as lb, aiohttp.ClientSession() as session:
        url = f"{lb.server.ws_url}/fws/public/ws/0"
        async with session.ws_connect(url) as ws:
            await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 1})
            assert await ws.receive_json(timeout=5) == {"result": None, "id": 1}
            (stalled,) = lb.server._sockets

            async def hang(_text: str) -> None:
                await asyncio.sleep(3600)

            monkeypatch.setattr(stalled.ws, "send_str", hang)
            for n in range(7):  # more than MAX_BACKLOG messages left unsent
                await lb.quote(PERP, str(50000 + n), str(50001 + n))
            assert stalled.dropped
            await eventually(lambda: lb.server.connections == 0)
            closed = await ws.receive(timeout=5)
            assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                   aiohttp.WSMsgType.ERROR)  # fmt: skip
