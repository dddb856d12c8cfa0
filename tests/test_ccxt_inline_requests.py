"""A WebSocket API order leaves in its caller's step (:mod:`ballast.adapters.ccxt.inline_requests`):
the venue's ccxt.pro client writes the ``order.place`` frame before the awaiting task first
yields, instead of two loop iterations later, and everything else of ccxt's request (its future,
its answer handler) stays as it was."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.loopback import Loopback, loopback_exchange
from tests.support.waiting import eventually

SPOT = "BTC/USDT"
PERP = "BTC/USDT:USDT"


@pytest.fixture
async def lb() -> AsyncIterator[Loopback]:
    async with loopback_exchange() as exchange:
        yield exchange


def _recording(client: Any) -> list[str]:
    """What the client's WebSocket connections send, from ccxt's own verbose log."""
    sent: list[str] = []

    def log(*parts: Any) -> None:
        if len(parts) >= 3 and parts[1] == "sending":
            message = parts[2]
            sent.append(message if isinstance(message, str) else json.dumps(message))

    client.log = log
    client.verbose = True
    return sent


@pytest.mark.parametrize("symbol", [SPOT, PERP])
async def test_an_order_on_an_open_socket_is_written_before_its_caller_first_waits(
    lb: Loopback, symbol: str
) -> None:
    client = lb.venue().build_client()
    sent = _recording(client)
    try:
        await client.load_markets()
        first = await client.create_order_ws(  # opens the WS-API socket (ccxt's own watch)
            symbol, "market", "buy", 0.01, None, {"newClientOrderId": "bl-inline-1"}
        )
        assert first["clientOrderId"] == "bl-inline-1"
        call = client.create_order_ws(
            symbol, "market", "sell", 0.01, None, {"newClientOrderId": "bl-inline-2"}
        )
        waiting_on = call.send(None)  # the caller's step, up to its first wait: the answer
        assert any("bl-inline-2" in frame for frame in sent), sent
        call.close()  # the caller gives up on the answer; the exchange has the order
        assert waiting_on is not None
        await eventually(lambda: "bl-inline-2" in lb.server.core.orders, what="the order placed")
        # the next order on the same socket is answered as ccxt answers it
        third = await client.create_order_ws(
            symbol, "market", "buy", 0.01, None, {"newClientOrderId": "bl-inline-3"}
        )
        assert third["clientOrderId"] == "bl-inline-3"
        assert third["status"] == "closed"
    finally:
        await client.close()
