"""A loopback Binance exchange for tests: core + server on 127.0.0.1 (port 0) + real ccxt.pro
clients, closed cleanly.

    async with loopback_exchange(tmp_path / "exchange.sqlite") as lb:  # or () for no state file
        await lb.quote("BTC/USDT:USDT", "50000", "50001")
        order = await lb.client.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
        state = await lb.state()

``loopback_exchange`` prices every instrument it is given (``prices``: asset → mid; quotes a tick
either side, perps also a mark) before the client connects, unless the state file already holds
inputs (a restart). ``subscribed`` waits until a ``watch_*`` call is live on the server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.pro

from ballast.adapters.ccxt import BINANCE, CcxtVenue
from ballast.adapters.loopback.core import LoopbackCore
from ballast.adapters.loopback.server import LoopbackServer
from ballast.adapters.sim.config import SimConfig
from ballast.engine.kernel.clock import NS_PER_HOUR, Clock, LiveClock
from ballast.engine.kernel.events import MarkPriceUpdated, QuoteTick
from ballast.engine.kernel.instruments import Instrument, binance_defaults
from tests.support.waiting import eventually

API_KEY = "loopback-test-key"
SECRET = "loopback-test-secret"
DEFAULT_PRICES: Mapping[str, str] = {"BTC": "50000", "ETH": "3000"}


@dataclass
class Loopback:
    core: LoopbackCore
    server: LoopbackServer
    client: Any  # ccxt.pro.binance (untyped)
    clock: Clock
    clients: list[Any] = field(default_factory=list)

    def venue(self, **overrides: Any) -> CcxtVenue:
        """The engine's venue adapter on this exchange: Binance, BTC spot and perp, the test key;
        ``overrides`` are :class:`CcxtVenue` keyword arguments."""
        kwargs: dict[str, Any] = {
            "spot": ["BTC/USDT"],
            "perp": ["BTC/USDT:USDT"],
            "api_key": API_KEY,
            "api_secret": SECRET,
            "clock": self.clock,
            "rest_url": self.server.rest_url,
            "ws_url": self.server.ws_url,
        }
        kwargs.update(overrides)
        return CcxtVenue(BINANCE, **kwargs)

    def new_client(self, **overrides: Any) -> Any:
        """Another ccxt.pro client on this exchange (closed with the exchange)."""
        config = self.server.ccxt_config(API_KEY, SECRET)
        config.update(overrides)
        client = ccxt.pro.binance(config)
        self.clients.append(client)
        return client

    async def quote(
        self, symbol: str, bid: str | Decimal, ask: str | Decimal, size: str = "1"
    ) -> None:
        now = self.clock.now_ns()
        await self.core.on_market(
            QuoteTick(now, now, symbol, Decimal(bid), Decimal(ask), Decimal(size), Decimal(size))
        )

    async def mark(
        self, symbol: str, mark: str | Decimal, rate: str = "0.0001", next_ns: int | None = None
    ) -> None:
        now = self.clock.now_ns()
        nxt = next_ns if next_ns is not None else (now // NS_PER_HOUR + 8) * NS_PER_HOUR
        price = Decimal(mark)
        await self.core.on_market(
            MarkPriceUpdated(now, now, symbol, price, price, Decimal(rate), nxt)
        )

    async def state(self) -> dict[str, Any]:
        """``GET /_loopback/state`` over HTTP."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.server.rest_url + "/_loopback/state") as resp,
        ):
            data: dict[str, Any] = json.loads(await resp.text())
            return data


async def price_all(lb: Loopback, prices: Mapping[str, str]) -> None:
    for inst in lb.core.instruments.values():
        mid = Decimal(prices.get(inst.base, "100"))
        bid, ask = mid - inst.tick_size, mid + inst.tick_size
        await lb.quote(inst.symbol, bid, ask)
        if inst.is_perp:
            await lb.mark(inst.symbol, mid)


@asynccontextmanager
async def loopback_exchange(
    state_path: Path | None = None,
    *,
    instruments: Sequence[Instrument] | None = None,
    balances: Mapping[str, str] | None = None,
    prices: Mapping[str, str] | None = DEFAULT_PRICES,
    config: SimConfig | None = None,
    weight_limit: int = 2400,
    spot_weight_limit: int = 6000,
    clock: Clock | None = None,
) -> AsyncIterator[Loopback]:
    """Core + server + one ready ccxt.pro client (markets loaded); everything closed on exit."""
    insts = list(instruments) if instruments is not None else binance_defaults(["BTC", "ETH"])
    funds = {k: Decimal(v) for k, v in (balances or {"USDT": "100000"}).items()}
    cfg = config if config is not None else SimConfig(balances=funds)
    the_clock = clock if clock is not None else LiveClock()
    core = LoopbackCore(insts, cfg, the_clock, state_path=state_path)
    server = LoopbackServer(
        core,
        keys={API_KEY: SECRET},
        weight_limit=weight_limit,
        spot_weight_limit=spot_weight_limit,
    )
    await server.start()
    lb = Loopback(core, server, None, the_clock)
    try:
        if prices is not None and core.inputs_logged == 0:
            await price_all(lb, prices)
        lb.client = lb.new_client()
        await lb.client.load_markets()
        yield lb
    finally:
        for client in lb.clients:
            await client.close()
        # what the handle holds now, and the first ones if a test restarted the exchange in
        # between (its new server, left listening, went to the GC: a ResourceWarning about an
        # unclosed socket in some later test); stop() and close() again are no-ops
        for each_server in dict.fromkeys((lb.server, server)):
            await each_server.stop()
        for each_core in dict.fromkeys((lb.core, core)):
            each_core.close()


async def subscribed(lb: Loopback, *names: str, within_s: float = 5.0) -> None:
    """Wait until the server has sockets listening to every one of ``names`` (see
    :meth:`LoopbackServer.subscriptions`)."""
    await eventually(
        lambda: set(names) <= lb.server.subscriptions(), within_s=within_s, what=f"{names}"
    )
