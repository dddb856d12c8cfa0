"""Issue 11, fault injection on the WebSocket order path: the loopback exchange's REST fault kinds
(:mod:`ballast.adapters.loopback.faults`) reach the WS-API's ``order.place`` in Binance's WS-API
shapes (``{"id", "status", "error": {"code", "msg"}}``), drawn from the same spec and seed and
counted as ``ws_api:<kind>``; the venue with ``order_transport = "websocket"`` takes each as the
REST path does (a 5xx is an unknown outcome whatever its code, a 429/418 is waited out for its
``retryAfter``); and the live engine trading over the WS-API through every kind leaves no
duplicate order, no lost fill, a whole journal and the exchange's book (the fault campaign of
tests/support/fault_campaign.py, shared with the REST one, with orders over the WS-API)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ballast.adapters.ccxt import BINANCE, CcxtVenue
from ballast.adapters.loopback.faults import FaultPlan, parse_spec
from ballast.engine.kernel.events import OrderAccepted, OrderRejected
from ballast.engine.trading.venue import VenueError
from tests.support.fault_campaign import FaultCampaign, run_campaign, trading
from tests.support.live_exchange import Exchange
from tests.support.loopback import API_KEY, SECRET, Loopback, loopback_exchange
from tests.support.waiting import eventually
from tests.test_faults_rest import Sink, market_order

pytestmark = pytest.mark.reliability

PERP = "BTC/USDT:USDT"
SPOT = "BTC/USDT"


# ------------------------------------------------------------------------------ on the socket


class WsApi:
    """A raw WS-API socket (spot ``/ws-api/v3`` or USDⓈ-M ``/ws-fapi/v1``) sending signed
    ``order.place`` requests and reading the replies as they come."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, futures: bool) -> None:
        self.ws = ws
        self.futures = futures
        self.next_id = 0

    async def place(
        self, coid: str, *, side: str = "BUY", qty: str = "0.01", **extra: str
    ) -> tuple[dict[str, Any], float]:
        """Send one market order; its reply and the seconds it took."""
        self.next_id += 1
        params: dict[str, Any] = {
            "apiKey": API_KEY, "symbol": "BTCUSDT", "side": side, "type": "MARKET",
            "quantity": qty, "newClientOrderId": coid, "timestamp": int(time.time() * 1000),
            **extra,
        }  # fmt: skip
        payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        digest = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256)
        params["signature"] = digest.hexdigest()
        started = time.monotonic()
        await self.ws.send_str(
            json.dumps({"id": str(self.next_id), "method": "order.place", "params": params})
        )
        while True:
            reply = json.loads(await asyncio.wait_for(self.ws.receive_str(), 10))
            if reply.get("id") == str(self.next_id):
                return reply, time.monotonic() - started


@pytest.fixture
async def lb() -> AsyncIterator[Loopback]:
    async with loopback_exchange() as exchange:
        yield exchange


async def ws_api(lb: Loopback, session: aiohttp.ClientSession, *, futures: bool) -> WsApi:
    path = "/ws-fapi/v1" if futures else "/ws-api/v3"
    return WsApi(await session.ws_connect(lb.server.ws_url + path), futures)


def faults_on(lb: Loopback, spec: str) -> None:
    lb.server.faults.replace(parse_spec(spec))


def placed(lb: Loopback, coid: str, futures: bool) -> bool:
    return lb.core.order(PERP if futures else SPOT, client_id=coid) is not None


@pytest.mark.parametrize("futures", [False, True], ids=["spot", "usdm"])
async def test_a_5xx_before_processing_is_a_ws_api_error_and_places_nothing(
    lb: Loopback, futures: bool
) -> None:
    faults_on(lb, "rest_5xx=1")
    async with aiohttp.ClientSession() as session:
        sock = await ws_api(lb, session, futures=futures)
        replies = [(await sock.place(f"b{n}"))[0] for n in range(12)]
    shapes = {(r["status"], r["error"]["code"]) for r in replies}
    # Binance's three: 500 internal error, a gateway's 502, 503 overloaded
    assert shapes == {(500, -1001), (502, -1001), (503, -1008)}
    assert all("result" not in r and r["error"]["msg"] for r in replies)
    assert not any(placed(lb, f"b{n}", futures) for n in range(12))
    assert lb.server.faults.counts == {"ws_api:rest_5xx": 12}  # not counted as a REST fault


@pytest.mark.parametrize("futures", [False, True], ids=["spot", "usdm"])
async def test_a_5xx_after_processing_leaves_the_order_placed(lb: Loopback, futures: bool) -> None:
    faults_on(lb, "rest_5xx_after=1")
    async with aiohttp.ClientSession() as session:
        sock = await ws_api(lb, session, futures=futures)
        reply, _ = await sock.place("a1")
    assert (reply["status"], reply["error"]["code"]) == (503, -1007)
    assert "execution status unknown" in reply["error"]["msg"]
    assert placed(lb, "a1", futures)


@pytest.mark.parametrize(("kind", "status"), [("rest_429", 429), ("rest_418", 418)])
async def test_429_and_418_carry_retry_after_in_their_data(
    lb: Loopback, kind: str, status: int
) -> None:
    faults_on(lb, f"{kind}=1,retry_after_s=7")
    async with aiohttp.ClientSession() as session:
        sock = await ws_api(lb, session, futures=True)
        reply, _ = await sock.place("r1")
    assert (reply["status"], reply["error"]["code"]) == (status, -1003)
    data = reply["error"]["data"]
    assert data["retryAfter"] - data["serverTime"] == 7000
    assert abs(data["serverTime"] - time.time() * 1000) < 2000
    assert not placed(lb, "r1", True)
    assert lb.server.faults.counts == {f"ws_api:{kind}": 1}


async def test_the_real_weight_limit_over_the_ws_api_says_when_to_retry_too() -> None:
    async with loopback_exchange(weight_limit=1) as lb, aiohttp.ClientSession() as session:
        sock = await ws_api(lb, session, futures=True)
        for n in range(3):
            reply, _ = await sock.place(f"w{n}")
            if reply["status"] != 200:
                break
        assert (reply["status"], reply["error"]["code"]) == (429, -1003)
        data = reply["error"]["data"]
        assert 0 < data["retryAfter"] - data["serverTime"] <= 60_000
        assert not lb.server.faults.counts  # Binance's own limit, not an injected fault


async def test_timeouts_hold_the_reply_with_and_without_processing(lb: Loopback) -> None:
    async with aiohttp.ClientSession() as session:
        sock = await ws_api(lb, session, futures=True)
        faults_on(lb, "timeout=1,hold_s=0.4")
        reply, took = await sock.place("t1")
        assert took >= 0.4
        assert (reply["status"], reply["error"]["code"]) == (503, -1007)
        assert not placed(lb, "t1", True)  # refused unprocessed
        faults_on(lb, "timeout_after=1,hold_s=0.4")
        pending = asyncio.create_task(sock.place("t2"))
        await eventually(lambda: placed(lb, "t2", True), within_s=0.3, what="placed at once")
        assert not pending.done()  # while the reply is held
        reply, took = await pending
        assert took >= 0.4
        assert reply["status"] == 200
        assert reply["result"]["clientOrderId"] == "t2"
        faults_on(lb, "slow=1,slow_ms=150")
        reply, took = await sock.place("t3")
        assert took >= 0.15
        assert reply["status"] == 200
    assert lb.server.faults.counts == {
        "ws_api:timeout": 1, "ws_api:timeout_after": 1, "ws_api:slow": 1,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "spot_code", "perp_code"),
    [
        ("reject_margin", -2010, -2019),
        ("reject_notional", -1013, -4164),
        ("reject_precision", -1111, -1111),
    ],
)
async def test_injected_rejects_are_binances_ws_api_errors(
    lb: Loopback, kind: str, spot_code: int, perp_code: int
) -> None:
    faults_on(lb, f"{kind}=1")
    async with aiohttp.ClientSession() as session:
        for futures, code in ((False, spot_code), (True, perp_code)):
            sock = await ws_api(lb, session, futures=futures)
            reply, _ = await sock.place(f"j{futures}")
            assert (reply["status"], reply["error"]["code"]) == (400, code), reply
    assert not lb.core.orders
    assert lb.server.faults.counts == {f"ws_api:{kind}": 2}


async def test_an_injected_reduce_only_reject_over_the_ws_api(lb: Loopback) -> None:
    async with aiohttp.ClientSession() as session:
        sock = await ws_api(lb, session, futures=True)
        assert (await sock.place("o1"))[0]["status"] == 200
        faults_on(lb, "reject_reduce_only=1")
        reply, _ = await sock.place("o2", side="SELL", reduceOnly="true")
        assert (reply["status"], reply["error"]["code"]) == (400, -2022)
        assert (await sock.place("o3"))[0]["status"] == 200  # not reduce-only: served


async def test_one_spec_and_seed_draw_for_both_transports() -> None:
    """REST and WS-API order requests draw from one seeded generator: the same sequence of
    requests gives the same faults, each counted under its transport."""
    runs = []
    for _ in range(2):
        async with loopback_exchange() as lb:
            lb.server.faults = FaultPlan.parse("rest_5xx=0.5", seed=11)
            async with aiohttp.ClientSession() as session:
                sock = await ws_api(lb, session, futures=True)
                outcomes = []
                for n in range(8):
                    reply, _ = await sock.place(f"s{n}")
                    outcomes.append(reply["status"])
                    try:
                        await lb.client.fetch_time()
                        outcomes.append(200)
                    except Exception:
                        outcomes.append(500)
            runs.append((outcomes, dict(lb.server.faults.counts)))
    assert runs[0] == runs[1]
    counts = runs[0][1]
    assert counts["ws_api:rest_5xx"] > 0
    assert counts["rest_5xx"] > 0


# ------------------------------------------------------------------------------ the venue


def ws_venue(lb: Loopback, sink: Sink) -> CcxtVenue:
    venue = CcxtVenue(
        BINANCE, spot=[SPOT], perp=[PERP], api_key=API_KEY, api_secret=SECRET, clock=lb.clock,
        rest_url=lb.server.rest_url, ws_url=lb.server.ws_url, order_transport="websocket",
        request_timeout_s=1,
    )  # fmt: skip
    venue.attach(sink)
    return venue


async def test_a_ws_api_5xx_is_an_unknown_outcome_never_a_rejection(lb: Loopback) -> None:
    """Fails before this change for 503 -1008 (ccxt reads the code only: an ExchangeError, so
    the order was reported rejected although Binance says its execution status is unknown)."""
    sink = Sink()
    async with ws_venue(lb, sink) as venue:
        await venue.connect()
        faults_on(lb, "rest_5xx=1")
        said = []
        for n in range(12):
            with pytest.raises(VenueError) as caught:
                await venue.submit(market_order(f"bl-w{n}", (SPOT, PERP)[n % 2]))
            said.append(str(caught.value))
        assert all(any(code in text for text in said) for code in ("-1001", "502", "-1008"))
        faults_on(lb, "rest_5xx_after=1")
        with pytest.raises(VenueError, match="-1007"):
            await venue.submit(market_order("bl-w99"))
        faults_on(lb, "")
        found = await venue.order_status("bl-w99", PERP)
    assert not sink.of(OrderRejected)  # the router looks each up and resends if absent
    assert found is not None
    assert found.filled_qty == Decimal("0.01")
    assert lb.server.faults.counts == {"ws_api:rest_5xx": 12, "ws_api:rest_5xx_after": 1}


async def test_a_ws_api_429_holds_the_order_until_its_retry_after(lb: Loopback) -> None:
    """Fails before this change: the venue resent at once, twice, and gave up within
    milliseconds (the WS-API's ``retryAfter`` was not read; only REST's header was)."""
    sink = Sink()
    async with ws_venue(lb, sink) as venue:
        await venue.connect()
        faults_on(lb, "rest_429=1,retry_after_s=1")
        started = time.monotonic()
        submitting = asyncio.create_task(venue.submit(market_order("bl-r1")))
        await eventually(
            lambda: lb.server.faults.counts["ws_api:rest_429"] > 0, within_s=2, what="a 429"
        )
        faults_on(lb, "")
        await submitting  # sent again after the wait, served
        waited = time.monotonic() - started
    assert waited >= 0.9
    assert lb.server.faults.counts == {"ws_api:rest_429": 1}
    assert [e.client_order_id for e in sink.of(OrderAccepted)] == ["bl-r1"]


async def test_a_timeout_on_the_ws_api_is_an_unknown_outcome_and_the_resend_finds_the_order(
    lb: Loopback,
) -> None:
    sink = Sink()
    async with ws_venue(lb, sink) as venue:
        await venue.connect()
        faults_on(lb, "timeout_after=1,hold_s=3")
        with pytest.raises(VenueError, match="no answer"):
            await venue.submit(market_order("bl-t1"))
        assert placed(lb, "bl-t1", True)
        faults_on(lb, "")
        await venue.submit(market_order("bl-t1"))  # the router's resend: a duplicate, looked up
    assert [e.client_order_id for e in sink.of(OrderAccepted)] == ["bl-t1"]
    assert not sink.of(OrderRejected)
    assert len([o for o in lb.core.orders.values() if o.client_order_id == "bl-t1"]) == 1


# ------------------------------------------------------------------------------ the live path


async def ws_api_orders(exchange: Exchange, journal_path: Path) -> int:
    """Orders the exchange received over its WebSocket API so far."""
    reply = await exchange.request("GET", "/_loopback/state")
    return int(reply.json()["ws_api_orders"])


OVER_WS_API = FaultCampaign(
    part="faults_ws_api",
    sections=trading("websocket"),
    counted=lambda kind: f"ws_api:{kind}",
    orders=ws_api_orders,
)
"""Each kind must reach an order over the WS-API (counted ``ws_api:<kind>``, not as a REST
fault); a phase's orders are those the exchange received over its WS-API."""


async def test_the_engine_trades_over_the_ws_api_through_its_faults_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    await run_campaign(tmp_path, OVER_WS_API)


async def test_a_key_refused_over_the_ws_api_holds_no_later_order(lb: Loopback) -> None:
    """ccxt raises DDoSProtection for a -2015 once the key has worked: without a ``retryAfter``
    the venue must not take it for a 429 and hold every call until the next minute; the order is
    refused for the key (not an unknown outcome)."""
    sink = Sink()
    async with ws_venue(lb, sink) as venue:
        await venue.connect()
        lb.server.permissions.default = "read"
        await venue.submit(market_order("bl-k1", SPOT))
        refused = [e.client_order_id for e in sink.of(OrderRejected) if "-2015" in e.reason]
        assert refused == ["bl-k1"]
        lb.server.permissions.default = "trade"
        started = time.monotonic()
        await venue.submit(market_order("bl-k2", SPOT))
        assert time.monotonic() - started < 1
    assert [e.client_order_id for e in sink.of(OrderAccepted)] == ["bl-k2"]
