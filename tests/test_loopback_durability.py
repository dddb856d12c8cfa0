"""The loopback exchange drops connections like a network does and survives its own restart."""

from __future__ import annotations

import asyncio
import socket
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import ccxt
import pytest

from ballast.adapters.loopback.core import LoopbackCore
from ballast.adapters.loopback.server import LoopbackServer
from tests.support.loopback import API_KEY, SECRET, loopback_exchange, subscribed
from tests.support.waiting import eventually

PERP = "BTC/USDT:USDT"
SPOT = "BTC/USDT"


async def test_drop_closes_sockets_and_ccxt_reconnects_on_the_next_watch(tmp_path: Path) -> None:
    async with loopback_exchange() as lb:
        quotes = asyncio.create_task(lb.client.watch_bids_asks([PERP]))
        orders = asyncio.create_task(lb.client.watch_orders(PERP))
        await subscribed(lb, "btcusdt@bookticker", "user:futures")
        assert await lb.server.drop_connections("all") == 2
        with pytest.raises(ccxt.NetworkError):
            await asyncio.wait_for(quotes, 5)
        with pytest.raises(ccxt.NetworkError):
            await asyncio.wait_for(orders, 5)
        assert lb.server.connections == 0

        quotes = asyncio.create_task(lb.client.watch_bids_asks([PERP]))
        orders = asyncio.create_task(lb.client.watch_orders(PERP))
        await subscribed(lb, "btcusdt@bookticker", "user:futures")
        await lb.quote(PERP, "50020", "50020.1")
        assert (await asyncio.wait_for(quotes, 5))[PERP]["bid"] == 50020
        await lb.client.create_order(PERP, "market", "buy", 0.01, None, {"newClientOrderId": "r-1"})
        seen = await asyncio.wait_for(orders, 5)
        assert seen[-1]["clientOrderId"] == "r-1"


async def test_drop_over_http_control_route_only_user_sockets(tmp_path: Path) -> None:
    async with loopback_exchange() as lb:
        quotes = asyncio.create_task(lb.client.watch_bids_asks([SPOT]))
        balance = asyncio.create_task(lb.client.watch_balance())
        await subscribed(lb, "btcusdt@bookticker", "user:spot")
        async with (
            aiohttp.ClientSession() as session,
            session.post(lb.server.rest_url + "/_loopback/drop?which=user") as resp,
        ):
            assert (await resp.json())["dropped"] == 1
        with pytest.raises(ccxt.NetworkError):
            await asyncio.wait_for(balance, 5)
        await eventually(lambda: lb.server.connections == 1)
        await lb.quote(SPOT, "50001", "50002")
        assert (await asyncio.wait_for(quotes, 5))[SPOT]["bid"] == 50001


def _book(state: dict[str, Any]) -> dict[str, Any]:
    return {k: state[k] for k in ("balances", "positions", "openOrders", "orders", "trades")}


async def test_restart_from_state_path_reproduces_the_exchange(tmp_path: Path) -> None:
    path = tmp_path / "exchange.sqlite"
    async with loopback_exchange(path) as lb:
        await lb.client.create_order(PERP, "market", "buy", 0.02, None, {"newClientOrderId": "a"})
        await lb.client.create_order(SPOT, "market", "buy", 0.1, None, {"newClientOrderId": "b"})
        await lb.client.create_order(SPOT, "limit", "sell", 0.05, 51000, {"newClientOrderId": "c"})
        await lb.client.create_order(PERP, "limit", "sell", 0.01, 50500, {"newClientOrderId": "d"})
        await lb.client.create_order(PERP, "limit", "buy", 0.01, 45000, {"newClientOrderId": "e"})
        await lb.client.cancel_order(None, PERP, {"origClientOrderId": "e"})
        await lb.client.set_leverage(4, PERP)
        await lb.quote(PERP, "50500", "50500.1")  # fills d as maker
        await lb.mark(PERP, "50400", "0.0001")
        await lb.core.settle_funding(PERP, Decimal("0.0001"), Decimal(50400), lb.clock.now_ns())
        with pytest.raises(ccxt.InsufficientFunds):
            await lb.client.create_order(PERP, "market", "buy", 50, None, {"newClientOrderId": "f"})
        before = await lb.state()
    assert [o["status"] for o in before["orders"]] == [
        "FILLED",
        "FILLED",
        "NEW",
        "FILLED",
        "CANCELED",
        "REJECTED",
    ]

    async with loopback_exchange(path) as lb:
        after = await lb.state()
        assert _book(after) == _book(before)
        assert after["income"] == before["income"]
        assert lb.core.exchange.leverage(PERP) == 4
        with pytest.raises(ccxt.InvalidOrder, match="-4116"):
            await lb.client.create_order(
                PERP, "market", "buy", 0.01, None, {"newClientOrderId": "a"}
            )
        placed = await lb.client.create_order(
            PERP, "market", "buy", 0.01, None, {"newClientOrderId": "g"}
        )
        accepted = [o["orderId"] for o in before["orders"] if o["status"] != "REJECTED"]
        assert int(placed["id"]) == max(accepted) + 1
        trades = await lb.client.fetch_my_trades(PERP)
        assert int(trades[-1]["id"]) == max(t["id"] for t in before["trades"]) + 1
        assert [o["clientOrderId"] for o in await lb.client.fetch_open_orders(SPOT)] == ["c"]


async def test_user_stream_survives_an_exchange_restart(tmp_path: Path) -> None:
    """A client keeps its listenKey across a restart of the exchange (same state, same port)."""
    path = tmp_path / "exchange.sqlite"
    async with loopback_exchange(path) as lb:
        orders = asyncio.create_task(lb.client.watch_orders(PERP))
        await subscribed(lb, "user:futures")
        port = lb.server.port
        await lb.server.stop()
        lb.core.close()
        with pytest.raises(ccxt.NetworkError):
            await asyncio.wait_for(orders, 5)
        lb.core = LoopbackCore(
            list(lb.core.instruments.values()), lb.core.config, lb.clock, state_path=path
        )
        lb.server = LoopbackServer(lb.core, port=port, keys={API_KEY: SECRET})
        await lb.server.start()
        orders = asyncio.create_task(lb.client.watch_orders(PERP))
        await subscribed(lb, "user:futures")
        await lb.client.create_order(PERP, "market", "buy", 0.01, None, {"newClientOrderId": "x"})
        assert (await asyncio.wait_for(orders, 5))[-1]["clientOrderId"] == "x"
    with socket.socket() as probe:  # the restarted exchange was stopped with the others
        assert probe.connect_ex(("127.0.0.1", port)) != 0


async def test_spot_user_stream_resubscribes_after_a_drop(tmp_path: Path) -> None:
    async with loopback_exchange() as lb:
        balance = asyncio.create_task(lb.client.watch_balance())
        await subscribed(lb, "user:spot")
        await lb.server.drop_connections("user")
        with pytest.raises(ccxt.NetworkError):
            await asyncio.wait_for(balance, 5)
        balance = asyncio.create_task(lb.client.watch_balance())
        await subscribed(lb, "user:spot")
        await lb.client.create_order(SPOT, "market", "buy", 0.01)
        assert (await asyncio.wait_for(balance, 5))["BTC"]["total"] == 0.01
