"""LoopbackServer: Binance's spot and USDⓈ-M REST and WebSocket APIs on 127.0.0.1, over a
:class:`~ballast.adapters.loopback.core.LoopbackCore`.

What the real ccxt.pro ``binance`` client uses (``/work/shared/VENUE-NOTES.md`` of issue 11), as
Binance does it:

- REST under ``/api/v3`` (spot) and ``/fapi/v1|v2|v3`` (futures). Signed endpoints need the
  ``X-MBX-APIKEY`` header of a known key (else -2014/-2015, HTTP 401), ``timestamp`` within
  ``recvWindow`` (default 5000, at most ``recv_window_ms_max``) of the server's wall clock (else
  -1021) and ``signature`` = HMAC-SHA256 of the query string (GET/DELETE) or form body (POST/PUT)
  without the signature (else -1022). Errors are HTTP 400/401 ``{"code", "msg"}`` in Binance's
  words.
- Request weight per endpoint (Binance's published weights), per client IP per wall-clock
  minute, counted separately for spot and futures; every reply carries
  ``X-MBX-USED-WEIGHT-1M``; over the market's limit (``weight_limit``: futures, 2400;
  ``spot_weight_limit``: spot, 6000) the reply is HTTP 429 code -1003 with
  ``Retry-After`` (ccxt raises ``DDoSProtection`` for any 429, as it does against Binance); an IP
  that goes on past twice the limit is banned for ``ban_s`` (HTTP 418 -1003 "IP banned until",
  ``Retry-After``; also DDoSProtection in ccxt).
- listenKey (``POST/PUT/DELETE /fapi/v1/listenKey``, API key only): one per API key, returned
  again (and extended) while active, valid ``listen_key_ttl_s`` (60 minutes) from the last
  keep-alive; an expired key gets ``listenKeyExpired`` and its sockets closed, a deleted one its
  sockets closed. The key is derived from the API key and its secret, so a client keeps its user
  stream across a restart of the exchange (Binance's keys are random; a deleted or expired key
  stays refused until the next ``POST``).
- WebSockets, one socket per path: spot market ``/stream/ws/<n>``, futures ``/fws/public/ws/<n>``
  (bookTicker, trade) and ``/fws/market/ws/<n>`` (markPrice, kline); ``SUBSCRIBE`` /
  ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` answered ``{"result": ..., "id": n}``. Futures user data
  ``/fws/private/ws?listenKey=K`` (``ORDER_TRADE_UPDATE``, ``ACCOUNT_UPDATE``); spot user data
  through the WS-API ``/ws-api/v3`` method ``userDataStream.subscribe.signature`` (events
  ``{"subscriptionId": 0, "event": {...}}``: ``executionReport``, ``outboundAccountPosition``).
  Orders over the WS-API: ``order.place`` on ``/ws-api/v3`` (spot) and ``/ws-fapi/v1``
  (USDⓈ-M), signed in its parameters, checked and answered as the REST endpoint, with the
  same injected faults (``adapters/loopback/faults.py``; counted ``ws_api:<kind>``).
  Stream messages are formatted when the core reports the change and queued per socket, so each
  socket sees them in the order they happened; a socket more than ``MAX_BACKLOG`` messages behind
  is dropped. ``E``/``T`` are the core clock's milliseconds; REST ``serverTime`` and the
  timestamp check use the wall clock (what a client's clock is compared against).
- Control routes (no auth, loopback only): ``POST /_loopback/drop?which=all|public|user``,
  ``GET /_loopback/state`` (with ``ws_api_orders``: the orders that came over the WS-API;
  ``sockets``: the open WebSockets by kind),
  ``POST /_loopback/price`` (JSON ``{"symbol", "bid", "ask"}`` or ``{"symbol", "price"}`` for a
  quote, optional ``bid_size``/``ask_size``; ``"mark"`` with optional ``"index"``,
  ``"funding_rate"``, ``"next_funding_ms"`` for a mark price update; both in one body: the quote
  first), ``POST /_loopback/funding`` (JSON ``{"symbol", "rate", "mark"}``),
  ``POST /_loopback/keys?restriction=R`` (what the keys may do:
  ``adapters/loopback/permissions.py``), plus whatever :meth:`LoopbackServer.add_control` adds.

See :mod:`ballast.adapters.loopback.core` for the account model (the USDT wallet is reported on
the spot account only).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from ballast.adapters.loopback import faults as fault_plan
from ballast.adapters.loopback import wire
from ballast.adapters.loopback.ccxt_config import loopback_ccxt_config
from ballast.adapters.loopback.core import (
    BalanceUpdate,
    LoopbackCore,
    LoopbackError,
    MarketUpdate,
    OrderRecord,
    OrderUpdate,
    PositionUpdate,
    Update,
)
from ballast.adapters.loopback.errors import (
    BinanceError,
    bad_key_format,
    bad_signature,
    duplicate,
    illegal,
    invalid_key,
    invalid_symbol,
    mandatory,
    no_such_order,
    refusal,
    unknown_order,
)
from ballast.adapters.loopback.faults import FaultPlan, InjectedError, endpoint_of
from ballast.adapters.loopback.permissions import RESTRICTIONS_PATH, KeyPermissions
from ballast.adapters.loopback.stream_faults import StreamFaults
from ballast.engine.kernel.clock import NS_PER_MILLISECOND
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.events import (
    Bar,
    MarkPriceUpdated,
    QuoteTick,
    Side,
    TimeInForce,
    TradeTick,
)
from ballast.engine.kernel.instruments import Instrument

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SocketKind = Literal["spot", "futures", "futures_private", "ws_api", "ws_fapi"]
"""``ws_api``: spot WS-API ``/ws-api/v3``; ``ws_fapi``: USDⓈ-M WS-API ``/ws-fapi/v1``."""
Market = Literal["spot", "futures"]
Security = Literal["public", "key", "signed"]

WEIGHT_HEADER: Final = "X-MBX-USED-WEIGHT-1M"
_API_KEY: Final = "X-MBX-APIKEY"  # the caller's API key, in a handler's params
LISTEN_KEY_TTL_S: Final = 3600.0
MAX_BACKLOG: Final = 10_000
"""Messages a socket may have queued and unsent before the server drops it."""
DEFAULT_RECV_WINDOW_MS: Final = 5000
_ZERO: Final = Decimal(0)
_INTERVALS: Final = {
    60: "1m",
    180: "3m",
    300: "5m",
    900: "15m",
    1800: "30m",
    3600: "1h",
    7200: "2h",
    14400: "4h",
    21600: "6h",
    28800: "8h",
    43200: "12h",
    86400: "1d",
    259200: "3d",
    604800: "1w",
}


@dataclass(eq=False)
class _Socket:
    """One WebSocket: what it is, what it subscribed, and its outgoing queue."""

    ws: web.WebSocketResponse
    request: web.Request
    kind: SocketKind
    streams: set[str] = field(default_factory=set)
    listen_key: str = ""
    user: bool = False  # ws-api: subscribed to the spot user data stream
    dropped: bool = False
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    faults: StreamFaults | None = None

    def send(self, payload: Any) -> None:
        self.send_text(_dumps(payload))

    def push(self, text: str) -> None:
        """Queue a stream message (not a reply), through the stream faults if any."""
        if self.faults is None:
            self.send_text(text)
        else:
            self.faults.push(self, text)

    def send_text(self, text: str) -> None:
        """Queue a message; a client that falls ``MAX_BACKLOG`` messages behind is dropped
        (Binance disconnects slow consumers too)."""
        if self.dropped:
            return
        if self.queue.qsize() >= MAX_BACKLOG:
            log.warning("loopback: dropping a %s socket %d messages behind", self.kind, MAX_BACKLOG)
            self.abort()
            return
        self.queue.put_nowait(text)

    def abort(self) -> None:
        self.dropped = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        self.queue.put_nowait(None)

    @property
    def public(self) -> bool:
        return self.kind in ("spot", "futures")


class LoopbackServer:
    """The loopback exchange's HTTP and WebSocket front; see the module docstring."""

    def __init__(
        self,
        core: LoopbackCore,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        keys: Mapping[str, str],
        weight_limit: int = 2400,
        spot_weight_limit: int = 6000,
        recv_window_ms_max: int = 60_000,
        ban_s: float = 120.0,
        faults: FaultPlan | None = None,
    ) -> None:
        self.core = core
        self.host = host
        self.port = port
        self.keys = dict(keys)
        self.weight_limit = weight_limit
        """Request weight per IP per minute on the futures API (Binance USDⓈ-M: 2400)."""
        self.spot_weight_limit = spot_weight_limit
        """... and on the spot API (Binance: 6000)."""
        self.recv_window_ms_max = recv_window_ms_max
        self.ban_s = ban_s
        """How long an IP that goes on past twice the weight limit in a minute is banned (HTTP
        418; Binance: from 2 minutes up to 3 days); 0: never."""
        self._banned_until: dict[tuple[str, Market], float] = {}
        self.symbols = wire.Symbols(core.instruments.values())
        self._controls: list[tuple[str, str, Handler]] = []
        self._runner: web.AppRunner | None = None
        self._sockets: set[_Socket] = set()
        self._weights: dict[tuple[str, Market, int], int] = {}
        self._listen_keys: dict[str, float] = {}  # key -> wall-clock expiry (s)
        self._listen_key_of: dict[str, str] = {}  # API key -> its active listenKey
        self.listen_key_ttl_s = LISTEN_KEY_TTL_S
        """How long a listenKey lives after its creation or last keep-alive (Binance: 60 min)."""
        self._unlisten: Callable[[], None] | None = None
        self._expiry_task: asyncio.Task[None] | None = None
        self.requests = 0
        self.ws_api_orders = 0
        """``order.place`` requests received over the WS-API (``GET /_loopback/state`` says)."""
        self.listen_key_posts = 0
        """``POST /fapi/v1/listenKey`` answered: each a client (re)authenticating its futures
        user stream (ccxt: at start, after a drop, and when its refresh comes due)."""
        self.stream_faults: StreamFaults | None = None
        """Stream-side faults (:mod:`~ballast.adapters.loopback.stream_faults`), if installed."""
        self._ws_orders: set[asyncio.Task[None]] = set()
        self.faults = faults if faults is not None else FaultPlan()
        """Injected faults (issue 14; :mod:`~ballast.adapters.loopback.faults`), off by default."""
        fault_plan.register(self)
        self.permissions = KeyPermissions()
        """What each key may do (``adapters/loopback/permissions.py``)."""

    # ------------------------------------------------------------------ lifecycle

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def add_control(self, method: str, path: str, handler: Handler) -> None:
        """Add a control route (before :meth:`start`); ``path`` is put under ``/_loopback/``."""
        if self._runner is not None:
            raise RuntimeError("add_control() after start()")
        if not path.startswith("/_loopback/"):
            path = "/_loopback/" + path.lstrip("/")
        self._controls.append((method, path, handler))

    async def start(self) -> None:
        app = web.Application(middlewares=[self._errors])
        self._routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server  # aiohttp keeps the bound socket here
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]
        self._unlisten = self.core.listen(self._on_update)
        self._expiry_task = asyncio.create_task(self._expire_listen_keys(), name="loopback:keys")

    async def stop(self) -> None:
        if self.stream_faults is not None:
            self.stream_faults.cancel_timers()
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self._expiry_task is not None:
            self._expiry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry_task
            self._expiry_task = None
        for task in list(self._ws_orders):
            task.cancel()
        for sock in list(self._sockets):
            sock.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await sock.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> LoopbackServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def ccxt_config(self, api_key: str, secret: str) -> dict[str, Any]:
        """The ccxt.pro ``binance`` constructor config that points every URL here (VENUE-NOTES),
        with ``enableRateLimit`` off and the error codes ccxt only maps for Binance's own hosts
        added (:data:`~ballast.adapters.loopback.errors.CCXT_EXTRA_CODES`)."""
        return loopback_ccxt_config(self.rest_url, self.ws_url, api_key, secret)

    # ------------------------------------------------------------------ routes

    def _routes(self, app: web.Application) -> None:
        r = app.router
        spot: list[tuple[str, str, Security, Callable[[dict[str, str]], int], Any]] = [
            ("GET", "/api/v3/ping", "public", _w(1), self._ping),
            ("GET", "/api/v3/time", "public", _w(1), self._time),
            ("GET", "/api/v3/exchangeInfo", "public", _w(20), self._spot_info),
            ("GET", "/api/v3/ticker/bookTicker", "public", _per_symbol(2, 4), self._book),
            ("GET", "/api/v3/account", "signed", _w(20), self._spot_account),
            ("POST", "/api/v3/order", "signed", _w(1), self._spot_create),
            ("DELETE", "/api/v3/order", "signed", _w(1), self._cancel),
            ("DELETE", "/api/v3/openOrders", "signed", _w(1), self._cancel_all),
            ("GET", "/api/v3/order", "signed", _w(4), self._get_order),
            ("GET", "/api/v3/openOrders", "signed", _per_symbol(6, 80), self._open_orders),
            ("GET", "/api/v3/allOrders", "signed", _w(20), self._all_orders),
            ("GET", "/api/v3/myTrades", "signed", _w(20), self._my_trades),
            ("GET", RESTRICTIONS_PATH, "signed", _w(1), self._api_restrictions),
        ]
        futures: list[tuple[str, str, Security, Callable[[dict[str, str]], int], Any]] = [
            ("GET", "/fapi/v1/ping", "public", _w(1), self._ping),
            ("GET", "/fapi/v1/time", "public", _w(1), self._time),
            ("GET", "/fapi/v1/exchangeInfo", "public", _w(1), self._futures_info),
            ("GET", "/fapi/v1/ticker/bookTicker", "public", _per_symbol(2, 5), self._book),
            ("GET", "/fapi/v1/premiumIndex", "public", _per_symbol(1, 10), self._premium),
            ("GET", "/fapi/v1/fundingRate", "public", _w(1), self._funding_rates),
            ("GET", "/fapi/v3/account", "signed", _w(5), self._futures_account),
            ("GET", "/fapi/v2/account", "signed", _w(5), self._futures_account),
            ("GET", "/fapi/v3/positionRisk", "signed", _w(5), self._position_risk),
            ("GET", "/fapi/v2/positionRisk", "signed", _w(5), self._position_risk),
            ("GET", "/fapi/v1/leverageBracket", "signed", _w(1), self._brackets),
            ("POST", "/fapi/v1/leverage", "signed", _w(1), self._leverage),
            ("POST", "/fapi/v1/marginType", "signed", _w(1), self._margin_type),
            ("GET", "/fapi/v1/positionSide/dual", "signed", _w(30), self._dual_get),
            ("POST", "/fapi/v1/positionSide/dual", "signed", _w(1), self._dual_post),
            ("POST", "/fapi/v1/order", "signed", _w(1), self._futures_create),
            ("DELETE", "/fapi/v1/order", "signed", _w(1), self._cancel),
            ("DELETE", "/fapi/v1/allOpenOrders", "signed", _w(1), self._cancel_all),
            ("GET", "/fapi/v1/order", "signed", _w(1), self._get_order),
            ("GET", "/fapi/v1/openOrders", "signed", _per_symbol(1, 40), self._open_orders),
            ("GET", "/fapi/v1/allOrders", "signed", _w(5), self._all_orders),
            ("GET", "/fapi/v1/userTrades", "signed", _w(5), self._my_trades),
            ("GET", "/fapi/v1/income", "signed", _w(30), self._income),
            ("POST", "/fapi/v1/listenKey", "key", _w(1), self._listen_key_new),
            ("PUT", "/fapi/v1/listenKey", "key", _w(1), self._listen_key_keep),
            ("DELETE", "/fapi/v1/listenKey", "key", _w(1), self._listen_key_close),
        ]
        tables: tuple[tuple[Market, list[Any]], ...] = (("spot", spot), ("futures", futures))
        for market, table in tables:
            for method, path, security, weight, handler in table:
                r.add_route(method, path, self._endpoint(market, security, weight, handler))
        for path in ("/stream/ws", "/stream/ws/{n}"):
            r.add_get(path, self._ws_handler("spot"))
        for path in ("/fws/public/ws", "/fws/public/ws/{n}", "/fws/market/ws",
                     "/fws/market/ws/{n}"):  # fmt: skip
            r.add_get(path, self._ws_handler("futures"))
        for path in ("/fws/private/ws", "/fws/private/ws/{n}"):
            r.add_get(path, self._ws_handler("futures_private"))
        r.add_get("/ws-api/v3", self._ws_handler("ws_api"))
        r.add_get("/ws-fapi/v1", self._ws_handler("ws_fapi"))
        r.add_post("/_loopback/drop", self._ctl_drop)
        r.add_get("/_loopback/state", self._ctl_state)
        r.add_post("/_loopback/price", self._ctl_price)
        r.add_post("/_loopback/funding", self._ctl_funding)
        r.add_post("/_loopback/keys", self.permissions.control)
        for method, path, handler in self._controls:
            r.add_route(method, path, handler)

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except BinanceError as exc:
            return web.json_response(exc.body(), status=exc.status)

    def _endpoint(
        self,
        market: Market,
        security: Security,
        weight: Callable[[dict[str, str]], int],
        handler: Callable[[dict[str, str], bool], Awaitable[Any]],
    ) -> Handler:
        futures = market == "futures"

        def limit() -> int:
            return self.weight_limit if futures else self.spot_weight_limit

        async def endpoint(request: web.Request) -> web.StreamResponse:
            self.requests += 1
            body = await request.text() if request.can_read_body else ""
            params = _params(request.query_string, body)
            ip = request.remote or ""
            banned = self._banned_until.get((ip, market), 0.0)
            used = self._count_weight(request, market, 0 if banned else weight(params))
            headers = {WEIGHT_HEADER: str(used)}
            try:
                now = time.time()
                if not banned and self.ban_s > 0 and used > 2 * limit():
                    banned = self._banned_until[(ip, market)] = now + self.ban_s
                if banned > now:
                    raise _Banned(ip, banned)
                if banned:
                    del self._banned_until[(ip, market)]
                if used > limit():
                    retry = str(60 - int(now) % 60)
                    raise _TooMuchWeight(limit(), ip, retry)
                if security != "public":
                    params[_API_KEY] = self._check_key(request)
                    if not self.permissions.may(params[_API_KEY], request.method, request.path):
                        raise invalid_key()
                if security == "signed":
                    self._check_signature(request, request.query_string, body, params)
                reduce_only = params.get("reduceOnly", "").lower() == "true"
                where = endpoint_of(request.method, request.path)
                fault = self.faults.rest_fault(where, futures=futures, reduce_only=reduce_only)
                if fault is None:
                    result = await handler(params, futures)
                else:
                    result = await self.faults.serve(fault, lambda: handler(params, futures))
            except InjectedError as exc:
                return exc.response(headers)
            except (_TooMuchWeight, _Banned) as exc:
                headers["Retry-After"] = exc.retry_after
                return web.json_response(exc.body(), status=exc.status, headers=headers)
            except BinanceError as exc:
                return web.json_response(exc.body(), status=exc.status, headers=headers)
            return web.json_response(result, headers=headers, dumps=_dumps)

        return endpoint

    def _count_weight(self, request: web.Request, market: Market, weight: int) -> int:
        minute = int(time.time() // 60)
        key = (request.remote or "", market, minute)
        self._weights[key] = used = self._weights.get(key, 0) + weight
        if len(self._weights) > 64:  # forget past minutes
            for old in [k for k in self._weights if k[2] < minute]:
                del self._weights[old]
        return used

    def used_weight(self, market: Market, ip: str = "127.0.0.1") -> int:
        return self._weights.get((ip, market, int(time.time() // 60)), 0)

    async def _api_restrictions(self, params: dict[str, str], futures: bool) -> Any:
        key = params[_API_KEY]
        if not self.permissions.answers(key):
            raise web.HTTPNotFound()
        return self.permissions.restrictions(key)

    # ------------------------------------------------------------------ auth

    def _check_key(self, request: web.Request) -> str:
        key = request.headers.get("X-MBX-APIKEY", "")
        if not key:
            raise bad_key_format()
        if key not in self.keys:
            raise invalid_key()
        return key

    def _check_signature(
        self, request: web.Request, query: str, body: str, params: Mapping[str, str]
    ) -> None:
        secret = self.keys[request.headers["X-MBX-APIKEY"]]
        payload, signature = _without_signature(query)
        body_payload, body_signature = _without_signature(body)
        signature = signature or body_signature
        if not signature:
            raise mandatory("signature")
        expected = hmac.new(
            secret.encode(), (payload + body_payload).encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise bad_signature()
        self._check_timestamp(params)

    def _check_timestamp(self, params: Mapping[str, str]) -> None:
        stamp = params.get("timestamp", "")
        if not stamp.isdigit():
            raise mandatory("timestamp")
        window = params.get("recvWindow", str(DEFAULT_RECV_WINDOW_MS))
        if not window.isdigit():
            raise illegal("recvWindow")
        if int(window) > self.recv_window_ms_max:
            raise BinanceError(-1131, f"recvWindow must be less than {self.recv_window_ms_max}.")
        now = self.faults.wall_ms(time.time())
        self.faults.judged_on_skew()
        if int(stamp) >= now + 1000:
            raise BinanceError(
                -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if now - int(stamp) > int(window):
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")

    def _check_ws_api_signature(self, params: Mapping[str, Any]) -> None:
        key = str(params.get("apiKey", ""))
        if not key:
            raise bad_key_format()
        if key not in self.keys:
            raise invalid_key()
        signature = str(params.get("signature", ""))
        if not signature:
            raise mandatory("signature")
        payload = "&".join(
            f"{k}={_ws_value(v)}" for k, v in sorted(params.items()) if k != "signature"
        )
        expected = hmac.new(self.keys[key].encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise bad_signature()
        self._check_timestamp({k: _ws_value(v) for k, v in params.items()})

    # ------------------------------------------------------------------ REST: general

    def _now_ms(self) -> int:
        return self.core.now_ms()

    async def _ping(self, params: dict[str, str], futures: bool) -> Any:
        return {}

    async def _time(self, params: dict[str, str], futures: bool) -> Any:
        return {"serverTime": self.faults.wall_ms(time.time())}

    async def _spot_info(self, params: dict[str, str], futures: bool) -> Any:
        return wire.exchange_info(self.core, False, self._now_ms(), self.spot_weight_limit)

    async def _futures_info(self, params: dict[str, str], futures: bool) -> Any:
        return wire.exchange_info(self.core, True, self._now_ms(), self.weight_limit)

    def _symbol(
        self, params: Mapping[str, str], futures: bool, *, required: bool = True
    ) -> Instrument | None:
        wire_name = params.get("symbol", "")
        if not wire_name:
            if required:
                raise mandatory("symbol")
            return None
        inst = self.symbols.get(wire_name, futures)
        if inst is None:
            raise invalid_symbol()
        return inst

    async def _book(self, params: dict[str, str], futures: bool) -> Any:
        inst = self._symbol(params, futures, required=False)
        table = self.symbols.perp if futures else self.symbols.spot
        chosen = [inst] if inst is not None else list(table.values())
        out = []
        for i in chosen:
            q = self.core.quotes.get(i.symbol)
            if q is None:
                continue
            out.append(
                {
                    "symbol": wire.wire_symbol(i),
                    "bidPrice": wire.num(q.bid),
                    "bidQty": wire.num(q.bid_size),
                    "askPrice": wire.num(q.ask),
                    "askQty": wire.num(q.ask_size),
                    "time": q.ts_event // NS_PER_MILLISECOND,
                }
            )
        if inst is not None:
            return out[0] if out else {"symbol": wire.wire_symbol(inst)}
        return out

    async def _premium(self, params: dict[str, str], futures: bool) -> Any:
        inst = self._symbol(params, True, required=False)
        now = self._now_ms()
        if inst is not None:
            return wire.premium_index(self.core, inst, now)
        return [wire.premium_index(self.core, i, now) for i in self.symbols.perp.values()]

    async def _funding_rates(self, params: dict[str, str], futures: bool) -> Any:
        inst = self._symbol(params, True, required=False)
        rows = [
            r
            for r in self.core.funding_rates
            if (inst is None or r.symbol == inst.symbol) and _in_time(params, r.time_ms)
        ]
        rows = rows[: _limit(params, 100, 1000)]
        return [
            {
                "symbol": wire.wire_symbol(self.core.instruments[r.symbol]),
                "fundingRate": wire.num(r.rate),
                "fundingTime": r.time_ms,
                "markPrice": wire.num(r.mark),
            }
            for r in rows
        ]

    # ------------------------------------------------------------------ REST: account

    async def _spot_account(self, params: dict[str, str], futures: bool) -> Any:
        return wire.spot_account(self.core, self._now_ms())

    async def _futures_account(self, params: dict[str, str], futures: bool) -> Any:
        return wire.futures_account(self.core, self._now_ms())

    async def _position_risk(self, params: dict[str, str], futures: bool) -> Any:
        inst = self._symbol(params, True, required=False)
        return wire.position_risk(self.core, inst, self._now_ms())

    async def _brackets(self, params: dict[str, str], futures: bool) -> Any:
        inst = self._symbol(params, True, required=False)
        rows = wire.leverage_brackets(self.core)
        if inst is not None:
            return [r for r in rows if r["symbol"] == wire.wire_symbol(inst)]
        return rows

    async def _leverage(self, params: dict[str, str], futures: bool) -> Any:
        inst = self._symbol(params, True)
        assert inst is not None
        raw = params.get("leverage", "")
        if not raw.isdigit():
            raise mandatory("leverage")
        leverage = int(raw)
        if not 1 <= leverage <= 125:
            raise BinanceError(-4028, f"Leverage {leverage} is not valid")
        await self.core.set_leverage(inst.symbol, Decimal(leverage))
        return {
            "leverage": leverage,
            "maxNotionalValue": "1000000000",
            "symbol": wire.wire_symbol(inst),
        }

    async def _margin_type(self, params: dict[str, str], futures: bool) -> Any:
        self._symbol(params, True)
        if params.get("marginType", "").upper() == "CROSSED":
            raise BinanceError(-4046, "No need to change margin type.")
        raise BinanceError(-4047, "Margin type cannot be changed if there exists open orders.")

    async def _dual_get(self, params: dict[str, str], futures: bool) -> Any:
        return {"dualSidePosition": False}

    async def _dual_post(self, params: dict[str, str], futures: bool) -> Any:
        if params.get("dualSidePosition", "").lower() == "false":
            raise BinanceError(-4059, "No need to change position side.")
        raise BinanceError(-4068, "Position side cannot be changed if there exists position.")

    async def _income(self, params: dict[str, str], futures: bool) -> Any:
        inst = self._symbol(params, True, required=False)
        kind = params.get("incomeType", "")
        rows = [
            r
            for r in self.core.income
            if (inst is None or r.symbol == inst.symbol)
            and (not kind or r.income_type == kind)
            and _in_time(params, r.time_ms)
        ]
        limit = _limit(params, 100, 1000)
        rows = rows[:limit] if "startTime" in params else rows[-limit:]
        return [wire.income(r, self.core.instruments.get(r.symbol)) for r in rows]

    # ------------------------------------------------------------------ REST: orders

    async def _spot_create(self, params: dict[str, str], futures: bool) -> Any:
        inst = self._symbol(params, False)
        assert inst is not None
        side = _side(params)
        kind = params.get("type", "").upper()
        if kind not in ("LIMIT", "MARKET", "LIMIT_MAKER"):
            raise BinanceError(-1116, "Invalid orderType.")
        qty = _decimal(params, "quantity", required=False)
        if kind == "MARKET" and qty is None:
            quote_qty = _decimal(params, "quoteOrderQty", required=False)
            if quote_qty is None:
                raise BinanceError(
                    -1102,
                    "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
                )
            last = self.core.last_price(inst.symbol)
            if last is None:
                raise BinanceError(-1013, "Market is closed.")
            qty = inst.round_qty(quote_qty / last)
        if qty is None:
            raise mandatory("quantity")
        price = _decimal(params, "price", required=kind != "MARKET") if kind != "MARKET" else None
        tif = params.get("timeInForce", "GTC").upper()
        if tif not in ("GTC", "IOC", "FOK"):
            raise BinanceError(-1115, "Invalid timeInForce.")
        cmd = self._command(
            params, inst, side, "market" if kind == "MARKET" else "limit", qty, price,
            reduce_only=False, post_only=kind == "LIMIT_MAKER",
            tif="GTC" if kind != "LIMIT" else _tif(tif),
        )  # fmt: skip
        record = await self._place(cmd, futures=False, inst=inst)
        if self.stream_faults is not None:
            await self.stream_faults.before_reply(record)
        default = "FULL" if kind in ("MARKET", "LIMIT") else "ACK"
        resp = params.get("newOrderRespType", default).upper()
        return wire.spot_order_reply(record, inst, self.core, resp)

    async def _futures_create(self, params: dict[str, str], futures: bool) -> Any:
        inst = self._symbol(params, True)
        assert inst is not None
        side = _side(params)
        kind = params.get("type", "").upper()
        if kind not in ("LIMIT", "MARKET"):
            raise BinanceError(-1116, "Invalid orderType.")
        if params.get("positionSide", "BOTH").upper() != "BOTH":
            raise BinanceError(-4061, "Order's position side does not match user's setting.")
        qty = _decimal(params, "quantity", required=True)
        assert qty is not None
        price = _decimal(params, "price", required=True) if kind == "LIMIT" else None
        tif = params.get("timeInForce", "GTC").upper()
        if tif not in ("GTC", "IOC", "FOK", "GTX"):
            raise BinanceError(-1115, "Invalid timeInForce.")
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        cmd = self._command(
            params, inst, side, "market" if kind == "MARKET" else "limit", qty, price,
            reduce_only=reduce_only, post_only=tif == "GTX" and kind == "LIMIT",
            tif=_tif(tif) if kind == "LIMIT" else "GTC",
        )  # fmt: skip
        record = await self._place(cmd, futures=True, inst=inst)
        if self.stream_faults is not None:
            await self.stream_faults.before_reply(record)
        return wire.futures_order(record, inst)

    def _command(
        self,
        params: Mapping[str, str],
        inst: Instrument,
        side: Side,
        order_type: Literal["market", "limit"],
        qty: Decimal,
        price: Decimal | None,
        *,
        reduce_only: bool,
        post_only: bool,
        tif: TimeInForce,
    ) -> SubmitOrder:
        client_id = params.get("newClientOrderId") or f"loopback-{uuid.uuid4().hex[:20]}"
        now = self.core.clock.now_ns()
        return SubmitOrder(
            ts_event=now,
            ts_init=now,
            intent_id=client_id,
            client_order_id=client_id,
            symbol=inst.symbol,
            side=side,
            order_type=order_type,
            qty=qty,
            price=price,
            reduce_only=reduce_only,
            post_only=post_only,
            time_in_force=tif,
        )

    async def _place(self, cmd: SubmitOrder, *, futures: bool, inst: Instrument) -> OrderRecord:
        try:
            return await self.core.submit(cmd)
        except LoopbackError as exc:
            if exc.kind == "duplicate":
                raise duplicate(futures) from None
            raise refusal(exc.detail, futures, wire.num(inst.min_notional)) from None

    def _find(self, params: Mapping[str, str], inst: Instrument) -> OrderRecord | None:
        order_id = params.get("orderId", "")
        client_id = params.get("origClientOrderId", "")
        if order_id:
            if not order_id.isdigit():
                raise illegal("orderId")
            return self.core.order(inst.symbol, order_id=int(order_id))
        if client_id:
            return self.core.order(inst.symbol, client_id=client_id)
        raise BinanceError(
            -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
        )

    async def _cancel(self, params: dict[str, str], futures: bool) -> Any:
        inst = self._symbol(params, futures)
        assert inst is not None
        record = self._find(params, inst)
        if record is None or not record.is_open:
            raise unknown_order()
        try:
            await self.core.cancel(inst.symbol, record.client_order_id)
        except LoopbackError:
            raise unknown_order() from None
        if futures:
            return wire.futures_order(record, inst)
        return self._spot_canceled(record, inst, params.get("newClientOrderId", ""))

    def _spot_canceled(self, record: OrderRecord, inst: Instrument, cancel_id: str) -> Any:
        body = wire.spot_order(record, inst)
        body["origClientOrderId"] = record.client_order_id
        body["clientOrderId"] = cancel_id or f"cancel-{record.order_id}"
        body["transactTime"] = self._now_ms()
        return body

    async def _cancel_all(self, params: dict[str, str], futures: bool) -> Any:
        """``DELETE /api/v3/openOrders`` (the canceled orders) and ``DELETE
        /fapi/v1/allOpenOrders`` (Binance's code-200 message)."""
        inst = self._symbol(params, futures)
        assert inst is not None
        canceled = []
        for record in self.core.open_orders(inst.symbol):
            await self.core.cancel(inst.symbol, record.client_order_id)
            canceled.append(self._spot_canceled(record, inst, ""))
        if futures:
            return {"code": 200, "msg": "The operation of cancel all open order is done."}
        if not canceled:
            raise unknown_order()
        return canceled

    async def _get_order(self, params: dict[str, str], futures: bool) -> Any:
        inst = self._symbol(params, futures)
        assert inst is not None
        record = self._find(params, inst)
        if record is None:
            raise no_such_order()
        return wire.futures_order(record, inst) if futures else wire.spot_order(record, inst)

    def _format_order(self, record: OrderRecord, futures: bool) -> Any:
        inst = self.core.instruments[record.symbol]
        return wire.futures_order(record, inst) if futures else wire.spot_order(record, inst)

    async def _open_orders(self, params: dict[str, str], futures: bool) -> Any:
        inst = self._symbol(params, futures, required=False)
        return [
            self._format_order(r, futures)
            for r in self.core.open_orders(None if inst is None else inst.symbol)
            if self.core.instruments[r.symbol].is_perp == futures
        ]

    async def _all_orders(self, params: dict[str, str], futures: bool) -> Any:
        inst = self._symbol(params, futures)
        assert inst is not None
        from_id = int(params["orderId"]) if params.get("orderId", "").isdigit() else 0
        rows = [
            r
            for r in self.core.orders.values()
            if r.symbol == inst.symbol
            and r.status != "REJECTED"
            and r.order_id >= from_id
            and _in_time(params, r.time_ms)
        ]
        return [self._format_order(r, futures) for r in rows[: _limit(params, 500, 1000)]]

    async def _my_trades(self, params: dict[str, str], futures: bool) -> Any:
        inst = self._symbol(params, futures, required=not futures)
        from_id = params.get("fromId", "")
        order_id = params.get("orderId", "")
        rows = [
            t
            for t in self.core.trades
            if (
                self.core.instruments[t.symbol].is_perp == futures
                and (inst is None or t.symbol == inst.symbol)
                and (not from_id or t.trade_id >= int(from_id))
                and (not order_id or t.order_id == int(order_id))
                and _in_time(params, t.time_ms)
            )
        ]
        limit = _limit(params, 500, 1000)
        rows = rows[:limit] if (from_id or "startTime" in params) else rows[-limit:]
        fmt = wire.futures_trade if futures else wire.spot_trade
        return [fmt(t, self.core.instruments[t.symbol]) for t in rows]

    # ------------------------------------------------------------------ REST: listenKey

    async def _listen_key_new(self, params: dict[str, str], futures: bool) -> Any:
        """Binance: an API key with an active listenKey gets that key back, extended."""
        api_key = params[_API_KEY]
        self.listen_key_posts += 1
        key = self._listen_key_of[api_key] = self._derived_listen_key(api_key)
        self._listen_keys[key] = time.time() + self.listen_key_ttl_s
        return {"listenKey": key}

    def _derived_listen_key(self, api_key: str) -> str:
        """An API key's listenKey: derived from the key and its secret, so that a restarted
        exchange still knows the key its clients hold (Binance's are random; its service does
        not restart under its clients)."""
        material = f"listenKey:{api_key}".encode()
        return hmac.new(self.keys[api_key].encode(), material, hashlib.sha256).hexdigest()

    def _listen_key_valid(self, key: str) -> bool:
        """Active, or the derived key of an API key that did not delete or let it expire since
        this server started (a client of the exchange before its restart)."""
        if key in self._listen_keys:
            return True
        for api_key in self.keys:
            if api_key not in self._listen_key_of and key == self._derived_listen_key(api_key):
                self._listen_key_of[api_key] = key
                self._listen_keys[key] = time.time() + self.listen_key_ttl_s
                return True
        return False

    async def _listen_key_keep(self, params: dict[str, str], futures: bool) -> Any:
        api_key = params[_API_KEY]
        key = self._listen_key_of.get(api_key) or self._derived_listen_key(api_key)
        if not self._listen_key_valid(key):
            raise BinanceError(-1125, "This listenKey does not exist.")
        self._listen_keys[key] = time.time() + self.listen_key_ttl_s
        return {"listenKey": key}

    async def _listen_key_close(self, params: dict[str, str], futures: bool) -> Any:
        key = self._listen_key_of.get(params[_API_KEY], "")
        if self._listen_keys.pop(key, None) is not None:
            self._close_listen_key(key, expired=False)
        return {}

    def _close_listen_key(self, key: str, *, expired: bool) -> None:
        for sock in [s for s in self._sockets if s.listen_key == key]:
            if expired:
                sock.send({"e": "listenKeyExpired", "E": self._now_ms(), "listenKey": key})
            sock.queue.put_nowait(None)

    def expire_listen_key(self, key: str) -> None:
        """Expire ``key`` now (refused until the next ``POST``; its sockets told and closed)."""
        self._listen_keys.pop(key, None)
        self._close_listen_key(key, expired=True)
        self._sockets -= {s for s in self._sockets if s.listen_key == key}  # closing: no more

    async def _expire_listen_keys(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.listen_key_ttl_s / 4))
            now = time.time()
            for key in [k for k, t in self._listen_keys.items() if t <= now]:
                del self._listen_keys[key]
                self._close_listen_key(key, expired=True)

    # ------------------------------------------------------------------ WebSockets

    def _ws_handler(self, kind: SocketKind) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            listen_key = ""
            if kind == "futures_private":
                listen_key = request.query.get("listenKey", "")
                if not self._listen_key_valid(listen_key):
                    raise web.HTTPBadRequest(text='{"code":-1125,"msg":"Invalid listenKey."}')
            ws = web.WebSocketResponse(autoping=True)
            await ws.prepare(request)
            sock = _Socket(ws, request, kind, listen_key=listen_key, faults=self.stream_faults)
            self._sockets.add(sock)
            writer = asyncio.create_task(self._writer(sock), name=f"loopback:ws:{kind}")
            try:
                async for msg in ws:
                    if msg.type == WSMsgType.TEXT:
                        self._on_ws_message(sock, msg.data)
                    elif msg.type == WSMsgType.ERROR:
                        break
            finally:
                self._sockets.discard(sock)
                if sock.dropped:
                    writer.cancel()  # it may be stuck sending to a client that stopped reading
                sock.queue.put_nowait(None)
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
                if not ws.closed:
                    with contextlib.suppress(Exception):
                        await ws.close()
            return ws

        return handler

    async def _writer(self, sock: _Socket) -> None:
        while True:
            text = await sock.queue.get()
            if text is None or sock.ws.closed:
                if not sock.ws.closed:
                    with contextlib.suppress(Exception):
                        await sock.ws.close()
                return
            try:
                await sock.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    def _on_ws_message(self, sock: _Socket, data: str) -> None:
        try:
            msg = json.loads(data)
        except ValueError:
            sock.send({"error": {"code": -1100, "msg": "Malformed request."}, "id": None})
            return
        if sock.kind in ("ws_api", "ws_fapi"):
            self._on_ws_api(sock, msg)
            return
        method = str(msg.get("method", "")).upper()
        req_id = msg.get("id")
        streams = [str(p).lower() for p in msg.get("params") or []]
        if method == "SUBSCRIBE":
            sock.streams.update(streams)
            sock.send({"result": None, "id": req_id})
        elif method == "UNSUBSCRIBE":
            sock.streams.difference_update(streams)
            sock.send({"result": None, "id": req_id})
        elif method == "LIST_SUBSCRIPTIONS":
            sock.send({"result": sorted(sock.streams), "id": req_id})
        else:
            sock.send({"error": {"code": 2, "msg": f"Invalid request: unknown method {method}"},
                       "id": req_id})  # fmt: skip

    def _on_ws_api(self, sock: _Socket, msg: Mapping[str, Any]) -> None:
        req_id = msg.get("id")
        method = str(msg.get("method", ""))
        params = msg.get("params") or {}
        if method == "order.place":
            task = asyncio.create_task(self._ws_order_place(sock, req_id, params))
            self._ws_orders.add(task)
            task.add_done_callback(self._ws_orders.discard)
            return
        try:
            if not isinstance(params, Mapping):
                raise BinanceError(-1130, "Invalid data sent for a parameter.")
            if method == "userDataStream.subscribe.signature" and sock.kind == "ws_api":
                self._check_ws_api_signature(params)
                sock.user = True
                result: Any = {"subscriptionId": 0}
            elif method == "userDataStream.unsubscribe":
                sock.user = False
                result = {}
            elif method == "ping":
                result = {}
            elif method == "time":
                result = {"serverTime": self.faults.wall_ms(time.time())}
            else:
                raise BinanceError(-1020, "This operation is not supported.")
        except BinanceError as exc:
            sock.send({"id": req_id, "status": exc.status, "error": exc.body()})
            return
        sock.send({"id": req_id, "status": 200, "result": result})

    async def _ws_order_place(self, sock: _Socket, req_id: Any, params: Any) -> None:
        """WS-API ``order.place``: the parameters of ``POST /api/v3/order`` (spot, on
        ``/ws-api/v3``) or ``POST /fapi/v1/order`` (USDⓈ-M, on ``/ws-fapi/v1``) with ``apiKey``,
        ``timestamp`` and ``signature`` among them; the same checks, weight (1, on the same IP
        budget as REST) and answer as the REST endpoint, as ``{"id", "status", "result"}``."""
        futures = sock.kind == "ws_fapi"
        market: Market = "futures" if futures else "spot"
        self.requests += 1
        self.ws_api_orders += 1
        limit = self.weight_limit if futures else self.spot_weight_limit
        used = self._count_weight(sock.request, market, 1)
        try:
            if not isinstance(params, Mapping):
                raise BinanceError(-1130, "Invalid data sent for a parameter.")
            if used > limit:
                raise _TooMuchWeight(
                    limit, sock.request.remote or "", str(60 - int(time.time()) % 60)
                )
            self._check_ws_api_signature(params)
            key = str(params["apiKey"])
            if not self.permissions.may(
                key, "POST", "/fapi/v1/order" if futures else "/api/v3/order"
            ):
                raise invalid_key()  # a read-only key, as on REST
            flat = {k: _ws_value(v) for k, v in params.items() if k not in ("apiKey", "signature")}
            flat[_API_KEY] = key
            create = self._futures_create if futures else self._spot_create
            reduce_only = flat.get("reduceOnly", "").lower() == "true"
            fault = self.faults.rest_fault(
                "order", futures=futures, reduce_only=reduce_only, transport=fault_plan.WS_API
            )
            if fault is None:
                result = await create(flat, futures)
            else:
                result = await self.faults.serve(fault, lambda: create(flat, futures))
        except InjectedError as exc:
            now_ms = self.faults.wall_ms(time.time())
            sock.send({"id": req_id, "status": exc.status, "error": exc.ws_error(now_ms)})
            return
        except _TooMuchWeight as exc:
            now_ms = self.faults.wall_ms(time.time())
            until_ms = now_ms + int(exc.retry_after) * 1000
            error = {**exc.body(), "data": {"serverTime": now_ms, "retryAfter": until_ms}}
            sock.send({"id": req_id, "status": exc.status, "error": error})
            return
        except BinanceError as exc:
            sock.send({"id": req_id, "status": exc.status, "error": exc.body()})
            return
        limits = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                   "limit": limit, "count": used}]  # fmt: skip
        sock.send({"id": req_id, "status": 200, "result": result, "rateLimits": limits})

    # ------------------------------------------------------------------ stream fan-out

    def _on_update(self, update: Update) -> None:
        if isinstance(update, MarketUpdate):
            self._on_market(update)
            return
        if isinstance(update, OrderUpdate):
            inst = self.core.instruments[update.record.symbol]
            if inst.is_perp:
                self._to_futures_user(wire.order_trade_update(update, inst))
            else:
                self._to_spot_user(wire.execution_report(update, inst))
        elif isinstance(update, BalanceUpdate):
            self._to_spot_user(wire.outbound_account_position(update))
        elif isinstance(update, PositionUpdate):
            inst = self.core.instruments[update.position.symbol]
            self._to_futures_user(wire.account_update(update, inst))

    def _to_spot_user(self, event: Any) -> None:
        chosen = [s for s in self._sockets if s.kind == "ws_api" and s.user]
        _broadcast(chosen, {"subscriptionId": 0, "event": event})

    def _to_futures_user(self, event: Any) -> None:
        _broadcast([s for s in self._sockets if s.kind == "futures_private"], event)

    def _on_market(self, update: MarketUpdate) -> None:
        event = update.event
        inst = self.core.instruments.get(event.symbol)
        if inst is None:
            return
        kind = "futures" if inst.is_perp else "spot"
        name = wire.wire_symbol(inst).lower()
        now = event.ts_event // NS_PER_MILLISECOND
        payload: Any
        wanted: tuple[str, ...]
        if isinstance(event, QuoteTick):
            payload = wire.book_ticker(event, inst, update.update_id, now)
            wanted = (f"{name}@bookticker", "!bookticker")
        elif isinstance(event, MarkPriceUpdated):
            payload = wire.mark_price_update(event, inst, now)
            wanted = (f"{name}@markprice", f"{name}@markprice@1s")
            self._send_all_marks(kind, payload)
        elif isinstance(event, TradeTick):
            payload = wire.trade_event(event, inst, update.update_id, now)
            wanted = (f"{name}@trade",)
        elif isinstance(event, Bar):
            interval = _INTERVALS.get(event.interval_s, "1m")
            payload = wire.kline_event(event, inst, now, interval)
            wanted = (f"{name}@kline_{interval}",)
        chosen = [
            s for s in self._sockets if s.kind == kind and any(w in s.streams for w in wanted)
        ]
        _broadcast(chosen, payload)

    def _send_all_marks(self, kind: str, payload: Any) -> None:
        every = {"!markprice@arr", "!markprice@arr@1s"}
        _broadcast([s for s in self._sockets if s.kind == kind and s.streams & every], [payload])

    def subscriptions(self) -> set[str]:
        """What the open sockets listen to: stream names (lower case, ``btcusdt@bookticker``),
        ``user:spot`` (a WS-API user data subscription), ``user:futures`` (a listenKey socket)."""
        out: set[str] = set()
        for sock in self._sockets:
            out |= sock.streams
            if sock.kind == "ws_api" and sock.user:
                out.add("user:spot")
            elif sock.kind == "futures_private":
                out.add("user:futures")
        return out

    def discard_socket(self, sock: _Socket) -> None:
        """Forget ``sock`` (no more messages are chosen for it); the caller closes it."""
        self._sockets.discard(sock)

    def user_streams_flushed(self) -> bool:
        """Every user-data socket has sent all it was given."""
        return all(s.queue.empty() for s in self._sockets if s.kind == "futures_private" or s.user)

    @property
    def connections(self) -> int:
        return len(self._sockets)

    def open_sockets(self) -> list[_Socket]:
        """The open WebSockets (their queues feed their writers in order: see
        :mod:`ballast.adapters.loopback.inject`)."""
        return [s for s in self._sockets if not s.dropped]

    async def drop_connections(self, which: Literal["all", "public", "user"] = "all") -> int:
        """Close WebSockets abruptly (no close frame, like a network drop); returns how many."""
        chosen = [s for s in self._sockets if which == "all" or (which == "public") == s.public]
        for sock in chosen:
            self._sockets.discard(sock)
            sock.abort()
        await asyncio.sleep(0)
        return len(chosen)

    # ------------------------------------------------------------------ control routes

    async def _ctl_drop(self, request: web.Request) -> web.StreamResponse:
        which = request.query.get("which", "all")
        if which not in ("all", "public", "user"):
            raise web.HTTPBadRequest(text="which must be all, public or user")
        dropped = await self.drop_connections(which)  # type: ignore[arg-type]
        return web.json_response({"dropped": dropped})

    async def _ctl_state(self, request: web.Request) -> web.StreamResponse:
        state = wire.state(self.core, self._now_ms())
        return web.json_response(
            {**state, "ws_api_orders": self.ws_api_orders, "sockets": self.socket_counts()}
        )

    def socket_counts(self) -> dict[str, int]:
        """Open WebSockets by kind (``ws_api``, ``ws_fapi``, ``futures_private``, ...)."""
        counts: dict[str, int] = {}
        for sock in self._sockets:
            if not sock.ws.closed:
                counts[sock.kind] = counts.get(sock.kind, 0) + 1
        return dict(sorted(counts.items()))

    async def _ctl_price(self, request: web.Request) -> web.StreamResponse:
        """A quote (``bid`` + ``ask``, or ``price`` for both) and/or a mark price update
        (``mark``, optional ``index``, ``funding_rate``, ``next_funding_ms``): quote first."""
        try:
            body = await request.json()
            symbol = str(body["symbol"])
            events = _control_prices(body, symbol, self.core.clock.now_ns())
        except (KeyError, ValueError, TypeError, InvalidOperation) as exc:
            raise web.HTTPBadRequest(text=f"bad price request: {exc!r}") from None
        if symbol not in self.core.instruments:
            raise web.HTTPBadRequest(text=f"unknown symbol {symbol}")
        if not events:
            raise web.HTTPBadRequest(text="give bid and ask, price, or mark")
        for event in events:
            await self.core.on_market(event)
        return web.json_response({"ok": True})

    async def _ctl_funding(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        symbol = str(body["symbol"])
        if symbol not in self.core.instruments:
            raise web.HTTPBadRequest(text=f"unknown symbol {symbol}")
        mark = body.get("mark")
        price = Decimal(str(mark)) if mark is not None else self.core.exchange.mark_price(symbol)
        if price is None:
            raise web.HTTPBadRequest(text=f"no mark price for {symbol}")
        rate = Decimal(str(body["rate"]))
        await self.core.settle_funding(symbol, rate, price, self.core.clock.now_ns())
        return web.json_response({"ok": True})


class _Banned(BinanceError):
    def __init__(self, ip: str, until_s: float) -> None:
        until_ms = int(until_s * 1000)
        super().__init__(
            -1003,
            f"Way too much request weight used; IP({ip}) banned until {until_ms}. "
            "Please use WebSocket Streams for live updates to avoid bans.",
            418,
        )
        self.retry_after = str(max(1, int(until_s - time.time() + 0.999)))


class _TooMuchWeight(BinanceError):
    def __init__(self, limit: int, ip: str, retry_after: str) -> None:
        super().__init__(
            -1003,
            f"Too much request weight used; current limit of IP({ip}) request weight is {limit} "
            "per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
            429,
        )
        self.retry_after = retry_after


# ------------------------------------------------------------------ helpers


def _w(weight: int) -> Callable[[dict[str, str]], int]:
    return lambda _params: weight


def _per_symbol(with_symbol: int, without: int) -> Callable[[dict[str, str]], int]:
    return lambda params: with_symbol if params.get("symbol") else without


def _params(query: str, body: str) -> dict[str, str]:
    out = dict(parse_qsl(query, keep_blank_values=True))
    out.update(parse_qsl(body, keep_blank_values=True))
    return out


def _without_signature(raw: str) -> tuple[str, str]:
    """``a=1&b=2&signature=ff`` → (``a=1&b=2``, ``ff``)."""
    if not raw:
        return "", ""
    kept, signature = [], ""
    for part in raw.split("&"):
        if part.startswith("signature="):
            signature = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept), signature


def _ws_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _broadcast(sockets: list[_Socket], payload: Any) -> None:
    """Send ``payload`` to ``sockets``, encoded once."""
    if sockets:
        text = _dumps(payload)
        for sock in sockets:
            sock.push(text)


def _control_prices(
    body: Mapping[str, Any], symbol: str, now: int
) -> list[QuoteTick | MarkPriceUpdated]:
    def dec(name: str, default: Any = None) -> Decimal:
        return Decimal(str(body.get(name, default)))

    events: list[QuoteTick | MarkPriceUpdated] = []
    if "price" in body or "bid" in body:
        bid, ask = (dec("price"), dec("price")) if "price" in body else (dec("bid"), dec("ask"))
        size_b, size_a = dec("bid_size", "1"), dec("ask_size", "1")
        events.append(QuoteTick(now, now, symbol, bid, ask, size_b, size_a))
    if "mark" in body:
        mark = dec("mark")
        next_ns = int(body.get("next_funding_ms", 0)) * NS_PER_MILLISECOND
        rate = dec("funding_rate", "0")
        events.append(MarkPriceUpdated(now, now, symbol, mark, dec("index", mark), rate, next_ns))
    return events


def _side(params: Mapping[str, str]) -> Side:
    side = params.get("side", "").upper()
    if side == "BUY":
        return "buy"
    if side == "SELL":
        return "sell"
    raise BinanceError(-1117, "Invalid side.")


def _tif(value: str) -> TimeInForce:
    if value == "IOC":
        return "IOC"
    if value == "FOK":
        return "FOK"
    if value == "GTX":
        return "GTX"
    return "GTC"


def _decimal(params: Mapping[str, str], name: str, *, required: bool) -> Decimal | None:
    raw = params.get(name, "")
    if not raw:
        if required:
            raise mandatory(name)
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise illegal(name) from None
    if not value.is_finite():
        raise illegal(name)
    return value


def _limit(params: Mapping[str, str], default: int, maximum: int) -> int:
    raw = params.get("limit", "")
    return min(int(raw), maximum) if raw.isdigit() and int(raw) > 0 else default


def _in_time(params: Mapping[str, str], time_ms: int) -> bool:
    start, end = params.get("startTime", ""), params.get("endTime", "")
    if start.isdigit() and time_ms < int(start):
        return False
    return not (end.isdigit() and time_ms > int(end))
