"""The floors under ``bench live``'s quote → order figure, measured in the same run (issue 11).

The engine's quote → order time sits on what the host, the loopback sockets and ccxt.pro cost
whatever the engine does. Two children measure that, each as the engine child is run (``python
-m bench.live_floor KIND ...``, the same interpreter, uvloop through :func:`bench.common.run`, the
same environment and API key), and the exchange times them with the same probe, quote by quote:

- ``ccxt``: the ccxt.pro client the venue adapter builds (:meth:`CcxtVenue.build_client`: the
  same class, options, URLs, timeouts; markets loaded, then ``client.number = str`` as the venue
  sets it; the WS-API order socket opened at start as the venue opens it), doing nothing but
  ``watch_bids_asks`` on the symbol and, for each quote that moves the mid by more than
  ``BAND`` from the price it last traded at, sending a market order at once
  (``create_order_ws`` for the ``websocket`` transport, ``create_order`` for ``rest``). No bus,
  no journal, no portfolio, no decision.
- ``wire``: no ccxt: aiohttp's WebSocket client reads the raw ``bookTicker`` frame (one
  ``json.loads``) and writes a signed ``order.place`` frame on the WS-API socket (``websocket``)
  or POSTs the signed form to ``/api/v3/order`` on a kept-alive connection (``rest``). The
  floor of the host, the loopback sockets and aiohttp.

Both sell on a rise and buy on a fall (``SIZE`` BTC at market; selling high and buying low
builds up cash, which the bench's exchange puts back on target after each start). The child
speaks the engine child's line protocol: ``{"ready": true}`` once subscribed, then ``stats``
(orders sent, answers that were errors, the first error) and ``stop``.

The venue takes a quote from a hook in ccxt's message handler (``ExchangeSpec.tap``), the ccxt
floor from ``watch_bids_asks``'s return, one loop callback later: the floor may be higher than
the venue's own path by that callback (microseconds), never lower by it.

Only ``ballast`` modules that 0.1.0 has too are used (``make bench`` runs this file on the
previous release's package as well).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import hmac
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from decimal import Decimal
from typing import Any, Final, Literal
from urllib.parse import urlencode

import aiohttp

from bench.common import run

FloorKind = Literal["ccxt", "wire"]
FLOORS: Final[tuple[FloorKind, ...]] = ("ccxt", "wire")
SYMBOL: Final = "BTC/USDT"
WIRE_SYMBOL: Final = "BTCUSDT"
STREAM: Final = "btcusdt@bookTicker"
SIZE: Final = "0.005"
BAND: Final = Decimal("0.002")
"""A mid that moved more than this share from the last traded price trades (the bench's prices
alternate 50,000 / 50,500: 1 %)."""


def floor_args(
    kind: FloorKind, rest_url: str, ws_url: str, transport: str, mid: Decimal
) -> list[str]:
    """The child's command line after the interpreter: ``mid``: the last price the exchange
    sent (the first quote that moves away from it trades)."""
    return ["-m", "bench.live_floor", kind, rest_url, ws_url, transport, str(mid)]


class Trader:
    """Which way a quote trades, if at all: away from the last traded mid by more than BAND."""

    def __init__(self, mid: Decimal) -> None:
        self.mid = mid

    def side(self, bid: Decimal, ask: Decimal) -> str | None:
        mid = (bid + ask) / 2
        if abs(mid - self.mid) <= self.mid * BAND:
            return None
        side = "sell" if mid > self.mid else "buy"
        self.mid = mid
        return side


class _Stats:
    def __init__(self) -> None:
        self.orders = 0
        self.errors = 0
        self.first_error = ""

    def error(self, text: str) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = text[:500]

    def answer(self) -> dict[str, Any]:
        return {"orders": self.orders, "errors": self.errors, "first_error": self.first_error}


async def _serve_watching(
    watch: Coroutine[Any, Any, None],
    ready: Callable[[asyncio.Future[None]], Awaitable[None]],
    stats: _Stats,
) -> None:
    """Run ``watch`` (the floor's quote → order loop) and serve the parent until it says stop,
    once ``ready(the watch's task)`` returns; then end the watch."""
    watcher = asyncio.ensure_future(watch)
    try:
        await _serve(ready(watcher), stats)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher


async def _serve(ready: Awaitable[None], stats: _Stats) -> None:
    """The parent's line protocol on stdin/stdout, once ``ready``."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def answer(payload: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()

    await ready  # the parent waits for the exchange to see the subscription too
    gc.collect()
    gc.freeze()  # as the engine child does once started (freeze_startup_heap)
    answer({"ready": True})
    while line := (await reader.readline()).decode().split():
        if line[0] == "stats":
            answer(stats.answer())
        elif line[0] == "stop":
            answer({"stopped": True})
            break


# ---------------------------------------------------------------------------- ccxt.pro


def _subscribed(client: Any) -> bool:
    """ccxt has an open public socket carrying the symbol's book ticker subscription."""
    for ws in list(client.clients.values()):
        try:
            if not ws.connected.done() or ws.connected.exception():
                continue
            hashes = set(ws.futures) | set(ws.subscriptions)
        except (AttributeError, asyncio.InvalidStateError):
            continue
        if any("bookTicker" in str(h) and SYMBOL in str(h) for h in hashes):
            return True
    return False


async def _ccxt_floor(rest_url: str, ws_url: str, transport: str, mid: Decimal) -> None:
    from ballast.adapters.ccxt.exchanges import EXCHANGES
    from ballast.adapters.ccxt.venue import CcxtVenue
    from ballast.engine.kernel.clock import LiveClock

    venue = CcxtVenue(
        EXCHANGES["binance"],
        spot=[SYMBOL],
        perp=[],
        api_key=os.environ["BENCH_API_KEY"],
        api_secret=os.environ["BENCH_API_SECRET"],
        clock=LiveClock(),
        rest_url=rest_url,
        ws_url=ws_url,
        order_transport="websocket" if transport == "websocket" else "rest",
    )
    client = venue.build_client()  # the venue's own construction: same class, options, URLs
    stats = _Stats()
    try:
        await client.load_markets()
        client.number = str  # as the venue sets it once the markets are loaded
        create: Callable[..., Awaitable[Any]] = client.create_order
        if transport == "websocket":
            url = str(client.urls["api"]["ws"]["ws-api"]["spot"])
            await client.client(url).connect(client.session, 0)  # opened at start, as the venue
            create = client.create_order_ws
        trader = Trader(mid)

        async def watch() -> None:
            while True:
                tickers = await client.watch_bids_asks([SYMBOL])
                t = tickers[SYMBOL]
                side = trader.side(Decimal(str(t["bid"])), Decimal(str(t["ask"])))
                if side is None:
                    continue
                stats.orders += 1
                params = {"newClientOrderId": f"floor-ccxt-{os.getpid()}-{stats.orders}"}
                try:
                    await create(SYMBOL, "market", side, float(SIZE), None, params)
                except Exception as e:  # counted and said: the parent fails on any
                    stats.error(f"{type(e).__name__}: {e}")

        async def subscribed(watcher: asyncio.Future[None]) -> None:
            while not _subscribed(client):
                if watcher.done():
                    watcher.result()  # raises what stopped it
                await asyncio.sleep(0.01)

        await _serve_watching(watch(), subscribed, stats)
    finally:
        await client.close()


# ---------------------------------------------------------------------------- the raw wire


def _signed(secret: str, params: dict[str, str]) -> str:
    return hmac.new(secret.encode(), urlencode(params).encode(), hashlib.sha256).hexdigest()


async def _wire_floor(rest_url: str, ws_url: str, transport: str, mid: Decimal) -> None:
    key, secret = os.environ["BENCH_API_KEY"], os.environ["BENCH_API_SECRET"]
    stats = _Stats()
    trader = Trader(mid)
    base = rest_url.rstrip("/")
    wsb = ws_url.rstrip("/")
    async with aiohttp.ClientSession() as session:
        public = await session.ws_connect(f"{wsb}/stream/ws/1")
        await public.send_str(json.dumps({"method": "SUBSCRIBE", "params": [STREAM], "id": 1}))
        await public.receive_json(timeout=10)  # {"result": null, "id": 1}
        api: aiohttp.ClientWebSocketResponse | None = None
        if transport == "websocket":
            api = await session.ws_connect(f"{wsb}/ws-api/v3")
        else:  # the kept-alive connection: one signed read, as ccxt's load_markets opens it
            await session.get(f"{base}/api/v3/time")

        async def order(side: str) -> None:
            stats.orders += 1
            params = {
                "symbol": WIRE_SYMBOL,
                "side": side.upper(),
                "type": "MARKET",
                "quantity": SIZE,
                "newClientOrderId": f"floor-wire-{os.getpid()}-{stats.orders}",
                "timestamp": str(int(time.time() * 1000)),
            }
            if api is not None:
                params["apiKey"] = key
                signed = dict(sorted(params.items()))
                signed["signature"] = _signed(secret, signed)
                frame = {"id": stats.orders, "method": "order.place", "params": signed}
                await api.send_str(json.dumps(frame))
                reply = await api.receive_json(timeout=10)
                if reply.get("status") != 200:
                    stats.error(json.dumps(reply))
                return
            params["signature"] = _signed(secret, params)
            async with session.post(
                f"{base}/api/v3/order",
                data=urlencode(params),
                headers={
                    "X-MBX-APIKEY": key,
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            ) as response:
                body = await response.text()
                if response.status != 200:
                    stats.error(f"{response.status} {body}")

        async def watch() -> None:
            while True:
                message = await public.receive()
                if message.type != aiohttp.WSMsgType.TEXT:
                    raise RuntimeError(f"public socket: {message.type}")
                data = json.loads(message.data)
                data = data.get("data", data)
                if "b" not in data:
                    continue
                side = trader.side(Decimal(data["b"]), Decimal(data["a"]))
                if side is not None:
                    await order(side)

        async def subscribed(watcher: asyncio.Future[None]) -> None:
            return None  # subscribed once the SUBSCRIBE above was answered

        try:
            await _serve_watching(watch(), subscribed, stats)
        finally:
            await public.close()
            if api is not None:
                await api.close()


def main(argv: list[str]) -> int:
    if len(argv) != 5 or argv[0] not in FLOORS or argv[3] not in ("rest", "websocket"):
        print(
            "usage: python -m bench.live_floor {ccxt,wire} REST_URL WS_URL {rest,websocket} MID",
            file=sys.stderr,
        )
        return 2
    kind, rest_url, ws_url, transport, mid = argv
    floor = _ccxt_floor if kind == "ccxt" else _wire_floor
    run(floor(rest_url, ws_url, transport, Decimal(mid)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
