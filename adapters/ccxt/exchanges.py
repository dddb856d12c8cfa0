"""What is exchange-specific about a ccxt.pro venue, small and declared.

:class:`~ballast.adapters.ccxt.venue.CcxtVenue` speaks ccxt's unified API (``create_order``,
``watch_orders``, ...). What differs per exchange is here, in one :class:`ExchangeSpec`: the ccxt
id and options, the URL override block that points the client at any host (a loopback exchange,
a ``ballast venue serve``), the request weight of each call we make and the exchange's limit, and
the few parsing hooks the unified structures do not cover (the client order id of a streamed
trade, a funding settlement announced on the user stream, the codes that mean "duplicate client
order id" and "unknown order"). Bybit and OKX follow by adding one spec to :data:`EXCHANGES`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ccxt.base import errors as ccxt_errors

from ballast.adapters.ccxt.sockets import handshake_done

log = logging.getLogger(__name__)

AccountApi = str
"""``"spot"`` or ``"futures"``: which of the exchange's APIs (and weight budgets) a call uses."""


class MarkFields(NamedTuple):
    """What a mark price update says, as the exchange's strings/numbers."""

    mark: Any
    index: Any
    funding_rate: Any
    next_funding_ms: Any


def _no_code(error: BaseException) -> str | None:
    return None


@dataclass(frozen=True)
class ExchangeSpec:
    """One exchange, as a ccxt.pro venue needs to know it."""

    id: str
    """ccxt's id (``ccxt.pro.<id>``)."""
    options: Mapping[str, Any]
    """ccxt ``options`` (which markets to load, what not to fetch)."""
    url_builder: Callable[[str, str], dict[str, Any]]
    """``(rest_url, ws_url)`` → the ``urls`` override block (every API at that host)."""
    weights: Mapping[str, int]
    """Request weight of each call we make, by ``"<api>:<call>"`` (``"futures:order"``)."""
    weight_limit_per_minute: int
    """The futures API's limit per minute (Binance USD-M: 2400), until the exchange advertised
    its own (:attr:`advertised_limit`)."""
    spot_weight_limit_per_minute: int = 6000
    """The spot API's limit per minute (Binance spot: 6000)."""
    weight_safety: float = 0.8
    """Our budget is the limit × this: room for what we cannot count (other clients of the key)."""
    weight_header: str = "x-mbx-used-weight-1m"
    """Response header carrying the weight the exchange counted in its current window."""
    error_code: Callable[[BaseException], str | None] = _no_code
    """The exchange's error code inside a ccxt exception's message, if any."""
    duplicate_codes: frozenset[str] = frozenset()
    """Codes meaning "that client order id is already used": we already have that order."""
    unknown_order_codes: frozenset[str] = frozenset()
    """Codes meaning "no such order" (a status lookup answers None)."""
    trade_client_order_id: Callable[[Mapping[str, Any]], str | None] = field(
        default=lambda trade: None
    )
    """The client order id of a unified trade (from its raw ``info``), if the exchange says it."""
    is_funding_update: Callable[[Mapping[str, Any]], bool] = field(default=lambda info: False)
    """Whether a raw user-stream balance message announces a funding settlement."""
    mark_fields: Callable[[Mapping[str, Any]], MarkFields | None] = field(
        default=lambda ticker: None
    )
    """Mark, index, funding rate and next funding time (ms) of a ``watch_mark_prices`` ticker."""
    futures_wallet: Callable[[Mapping[str, Any]], dict[str, str] | None] = field(
        default=lambda balance: None
    )
    """Wallet balance per asset of a REST futures ``fetch_balance`` (the unified ``total`` is the
    margin balance, unrealised PnL included), or None to use the unified ``total``."""
    user_stream_ready: Callable[[Any, AccountApi], bool] = field(default=lambda client, api: False)
    """Whether the ccxt client's user-data stream of ``api`` is subscribed (ccxt's watch calls
    only return on a message; a quiet account never sends one)."""
    rejection_reason: Callable[[BaseException], str] = field(default=lambda error: str(error))
    """A readable reason for an order the exchange refused."""
    auth_codes: frozenset[str] = frozenset()
    """Codes meaning the API key was refused (invalid, not allowed from this IP, no permission
    for the call, bad signature): an authentication rejection whatever ccxt made of it (Binance's
    -2015 becomes ccxt's DDoSProtection once a key has worked, as if it were a ban)."""
    exceptions: Mapping[str, type[Exception]] = field(default_factory=dict)
    """Error code → ccxt exception class, for an exchange reached at another host (ccxt picks
    some of its tables by the exchange's own host names)."""
    tap: Callable[[Any, Callable[[str, Any], None]], None] = field(
        default=lambda client, push: None
    )
    """Install hooks in the ccxt client that ``push(kind, item)`` every stream update as ccxt
    handles it: ``order`` (a unified order), ``trade`` (a unified trade), ``balance`` (``(api,
    unified balance, raw message)``), ``positions`` (unified positions), ``quote`` / ``mark`` (a
    unified ticker). ccxt's ``watch_*`` calls only wake on the next message
    and hand over its cache, so an update that arrives while the venue is busy would wait for
    the next one (the last balance of a burst: forever); the hooks see every message."""
    ws_orders: bool = False
    """The exchange takes orders over its WebSocket API (ccxt.pro's ``create_order_ws``) on the
    spot and perp markets we trade."""
    reset_user_stream: Callable[[Any, AccountApi], None] = field(default=lambda client, api: None)
    """Forget the ccxt client's user-stream credential of ``api`` after a drop, so the
    reconnect asks for a fresh one (an expired listenKey would be refused forever), and a
    request for one that the channel's cancelled calls left unsettled (the reconnect would wait
    on it)."""
    channel_of_url: Callable[[Any, str], str] = field(default=lambda client, url: "market")
    """The channel a ccxt WebSocket client's URL carries: ``"market"``, ``"user:spot"`` or
    ``"user:futures"`` (where an unreadable message came from)."""
    funding_mark: Callable[[Mapping[str, Any]], Any] = field(default=lambda row: None)
    """The mark price of a ``fetch_funding_rate_history`` row (the settlement's), if given."""
    futures_paths: tuple[str, ...] = ()
    """URL path fragments of the futures API (which budget a response header resyncs)."""
    advertised_limit: Callable[[str, Any], int | None] = field(default=lambda url, body: None)
    """The request-weight limit per minute a REST answer advertises (``(url, body text)`` →
    limit; Binance: ``exchangeInfo.rateLimits``), or None."""

    def urls(self, rest_url: str, ws_url: str) -> dict[str, Any]:
        """The ccxt ``urls`` override block pointing every API at ``rest_url``/``ws_url``."""
        return self.url_builder(rest_url.rstrip("/"), ws_url.rstrip("/"))

    def weight(self, api: AccountApi, call: str) -> int:
        """The weight of one call (1 for a call the table does not name)."""
        return self.weights.get(f"{api}:{call}", 1)

    def limit(self, api: AccountApi) -> int:
        """The exchange's weight limit per minute of one API."""
        return self.spot_weight_limit_per_minute if api == "spot" else self.weight_limit_per_minute


# ----------------------------------------------------------------------------------- Binance


def _binance_urls(h: str, w: str) -> dict[str, Any]:
    """Every REST API of ccxt's binance at ``h`` (so nothing can leak out), and the WebSocket
    bases ccxt derives its paths from: the spot base must contain ``/stream``, the linear one end
    in ``/ws`` (VENUE-NOTES)."""
    rest = {
        "public": "/api/v3",
        "private": "/api/v3",
        "v1": "/api/v1",
        "fapiPublic": "/fapi/v1",
        "fapiPrivate": "/fapi/v1",
        "fapiData": "/futures/data",
        "fapiPublicV2": "/fapi/v2",
        "fapiPrivateV2": "/fapi/v2",
        "fapiPublicV3": "/fapi/v3",
        "fapiPrivateV3": "/fapi/v3",
        "dapiPublic": "/dapi/v1",
        "dapiPrivate": "/dapi/v1",
        "dapiPrivateV2": "/dapi/v2",
        "dapiData": "/futures/data",
        "eapiPublic": "/eapi/v1",
        "eapiPrivate": "/eapi/v1",
        "papi": "/papi/v1",
        "papiV2": "/papi/v2",
        "sapi": "/sapi/v1",
        "sapiV2": "/sapi/v2",
        "sapiV3": "/sapi/v3",
        "sapiV4": "/sapi/v4",
    }
    api: dict[str, Any] = {name: h + path for name, path in rest.items()}
    api["ws"] = {
        "spot": w + "/stream/ws",
        "margin": w + "/stream/ws",
        "future": w + "/fws/ws",
        "linear": w + "/fws/ws",
        "delivery": w + "/dws/ws",
        "inverse": w + "/dws/ws",
        "option": w + "/ews/ws",
        "papi": w + "/pws/ws",
        "ws-api": {
            "spot": w + "/ws-api/v3",
            "margin": w + "/ws-api/v3",
            "future": w + "/ws-fapi/v1",
            "linear": w + "/ws-fapi/v1",
            "delivery": w + "/ws-dapi/v1",
        },
    }
    return {"api": api}


_BINANCE_CODE = re.compile(r'"code"\s*:\s*(-?\d+)')


def _binance_code(error: BaseException) -> str | None:
    """Binance answers ``{"code": -2013, "msg": ...}``; ccxt puts the body in the message."""
    found = _BINANCE_CODE.search(str(error))
    return found.group(1) if found else None


def _binance_trade_client_order_id(trade: Mapping[str, Any]) -> str | None:
    """A streamed trade's raw message is the order update: spot ``executionReport`` and futures
    ``ORDER_TRADE_UPDATE.o`` both carry the client order id as ``c``. REST trades carry none."""
    info = trade.get("info") or {}
    coid = info.get("c") if isinstance(info, Mapping) else None
    return coid if isinstance(coid, str) and coid else None


def _binance_is_funding_update(info: Mapping[str, Any]) -> bool:
    """USD-M ``ACCOUNT_UPDATE`` with reason ``FUNDING_FEE`` (the amount comes from the income
    endpoint, which has the settlement's id: the stream only says it happened)."""
    update = info.get("a")
    return isinstance(update, Mapping) and update.get("m") == "FUNDING_FEE"


def _binance_mark_fields(ticker: Mapping[str, Any]) -> MarkFields | None:
    """``markPriceUpdate``: ``p`` mark, ``i`` index, ``r`` funding rate, ``T`` next funding."""
    info = ticker.get("info") or {}
    if not isinstance(info, Mapping) or info.get("p") is None:
        return None
    return MarkFields(info.get("p"), info.get("i"), info.get("r"), info.get("T"))


def _binance_futures_wallet(balance: Mapping[str, Any]) -> dict[str, str] | None:
    """``GET /fapi/v3/account`` assets' ``walletBalance`` (rows never updated, ``updateTime``
    0, are skipped as ccxt does)."""
    info = balance.get("info") or {}
    assets = info.get("assets") if isinstance(info, Mapping) else None
    if not isinstance(assets, list):
        return None
    wallet: dict[str, str] = {}
    for row in assets:
        if isinstance(row, Mapping) and str(row.get("updateTime", "0")) != "0":
            wallet[str(row.get("asset"))] = str(row.get("walletBalance", "0"))
    return wallet


def _binance_user_stream_ready(client: Any, api: AccountApi) -> bool:
    """Spot: the WS-API connection's ``userDataStream.subscribe.signature`` was confirmed.
    Futures: the ``listenKey`` socket is open (it streams without a subscription)."""
    try:
        if api == "spot":
            url = client.urls["api"]["ws"]["ws-api"]["spot"]
            ws = client.clients.get(url)
            return bool(
                ws is not None
                and handshake_done(ws)
                and "spot" in ws.subscriptions
                and "authenticate:signature:spot" not in ws.futures
            )
        key = (client.options.get("linear") or {}).get("listenKey")
        if key is None:
            return False
        ws = client.clients.get(client.get_private_ws_url("linear", key))
        return ws is not None and handshake_done(ws)
    except (AttributeError, KeyError, TypeError):
        return False


def _binance_tap(client: Any, push: Callable[[str, Any], None]) -> None:
    """Wrap ccxt.pro binance's per-message handlers (instance attributes shadow its methods:
    ``handle_message`` looks them up on the instance for every message)."""

    def after(name: str, then: Callable[[Any, Any], None]) -> None:
        handled = getattr(client, name)

        def hooked(ws: Any, message: Any) -> Any:
            result = handled(ws, message)
            try:
                then(ws, message)
            except Exception as e:  # a tap must never break ccxt's own handling
                push("unreadable", (str(getattr(ws, "url", "")), message, e))
            return result

        setattr(client, name, hooked)

    def trade(ws: Any, message: Any) -> None:
        if isinstance(message, Mapping) and message.get("x") == "TRADE":
            push("trade", client.parse_ws_trade(message))

    def order(ws: Any, message: Any) -> None:
        push("order", client.parse_ws_order(message))

    def balance(ws: Any, message: Any) -> None:
        kind = client.get_account_type_from_subscriptions(list(ws.subscriptions.keys()))
        cached = (client.balance or {}).get(kind)
        if cached is not None:
            # ccxt keeps one balance per account and updates it in place with every message:
            # the venue reports this one later (in arrival order, behind other updates), when
            # ccxt may have applied the next already (a second order's fill booked as a
            # transfer before that order's own fill), so it gets this message's balance
            account = "spot" if kind in ("spot", "margin") else "futures"
            stated = _binance_stated_assets(client, message)
            push("balance", (account, _balance_as_of_now(cached, stated), message))

    def positions(ws: Any, message: Any) -> None:
        data = message.get("a") if isinstance(message, Mapping) else None
        rows = data.get("P") if isinstance(data, Mapping) else None
        parsed = []
        for row in rows or ():
            position = client.parse_ws_position(row)
            position["timestamp"] = message.get("E")
            parsed.append(position)
        if parsed:
            push("positions", parsed)

    ws_error = client.handle_ws_error

    def ws_api_error(ws: Any, message: Any) -> Any:
        """A WS-API reply with status 5xx: Binance says the execution status is unknown (ccxt
        reads only the error code, and takes -1008 for a refusal): its request fails as a
        transport failure, ``ExchangeNotAvailable``, whatever the code."""
        status = message.get("status") if isinstance(message, Mapping) else None
        request = message.get("id") if isinstance(message, Mapping) else None
        if isinstance(status, int) and status >= 500 and request is not None:
            error = json.dumps(message.get("error"), separators=(",", ":"))
            text = f"{client.id} WS-API status {status}, outcome unknown: {error}"
            ws.reject(ccxt_errors.ExchangeNotAvailable(text), str(request))
            return None
        return ws_error(ws, message)

    client.handle_ws_error = ws_api_error
    after("handle_my_trade", trade)
    after("handle_order", order)
    after("handle_balance", balance)
    after("handle_positions", positions)

    def tickers(kind: str) -> Callable[[Any, Any], None]:
        def then(ws: Any, message: Any) -> None:
            market_type = "spot" if client.is_spot_url(ws) else "contract"
            for raw in message if isinstance(message, list) else [message]:
                push(kind, client.parse_ws_ticker(raw, market_type))

        return then

    symbols: dict[tuple[bool, str], str] = {}

    def symbol_of(spot: bool, market_id: Any) -> str | None:
        """The unified symbol of a stream's market id (``BTCUSDT`` is both the spot and the
        perp market: the socket says which)."""
        found = symbols.get((spot, market_id))
        if found is None:
            for market in (client.markets or {}).values():
                symbols[(bool(market.get("spot")), market.get("id"))] = market["symbol"]
            found = symbols.get((spot, market_id))
        return found

    def quotes(ws: Any, message: Any) -> None:
        """``bookTicker`` → the fields the venue reads, straight from the message (ccxt just
        parsed it for its own cache; parsing it again cost as much as the rest of the hop)."""
        spot = client.is_spot_url(ws)
        for raw in message if isinstance(message, list) else [message]:
            if not isinstance(raw, Mapping):
                continue
            push(
                "quote",
                {
                    "symbol": symbol_of(spot, raw.get("s")),
                    "timestamp": raw.get("E"),
                    "bid": raw.get("b"),
                    "ask": raw.get("a"),
                    "bidVolume": raw.get("B"),
                    "askVolume": raw.get("A"),
                },
            )

    after("handle_bids_asks", quotes)
    after("handle_mark_prices", tickers("mark"))

    handle_message = client.handle_message

    def recognised(ws: Any, message: Any) -> Any:
        # ccxt drops what it does not recognise without a word: say so (the frame guard of
        # ballast.adapters.ccxt.frames reports what it fails on)
        if _binance_unrecognised(message):
            error = ValueError("a message without an event type")
            push("unreadable", (str(getattr(ws, "url", "")), message, error))
            return None
        return handle_message(ws, message)

    client.handle_message = recognised


def _balance_as_of_now(balance: Mapping[str, Any], assets: set[str] | None) -> dict[str, Any]:
    """A copy of a ccxt balance structure that its later updates leave as it is (ccxt replaces
    or rewrites the per-asset rows in place), with the rows of ``assets`` only (None: every row;
    ccxt's ``info`` and ``free``/``used``/``total`` maps are no rows, and the venue reads none of
    them). ccxt's cache keeps every asset it was ever told of, as it was last told: after a
    statement reordered behind a newer one, or one pushed while no socket was open, it holds an
    old amount that the venue's REST statement corrects for the engine but not for ccxt; so a
    statement says what its own message says, nothing more."""
    return {
        k: dict(v) if isinstance(v, dict) else v
        for k, v in balance.items()
        if assets is None or k in assets or not isinstance(v, dict)
    }


def _binance_stated_assets(client: Any, message: Any) -> set[str] | None:
    """The assets a balance message states, as ccxt names them: ``outboundAccountPosition``'s
    ``B``, ``ACCOUNT_UPDATE``'s ``a.B``, ``balanceUpdate``'s ``a``; None when the message has
    none of these (then the statement has every row)."""
    if not isinstance(message, Mapping):
        return None
    if message.get("e") == "balanceUpdate":
        ids: list[Any] = [message.get("a")]
    else:
        body = message.get("a") if isinstance(message.get("a"), Mapping) else message
        rows = body.get("B") if isinstance(body, Mapping) else None
        if not isinstance(rows, list):
            return None
        ids = [row.get("a") for row in rows if isinstance(row, Mapping)]
    return {str(client.safe_currency_code(i)) for i in ids if i is not None}


def _binance_unrecognised(message: Any) -> bool:
    """A stream message ccxt would drop silently: not an object (a list is an array of events,
    handled or failed on), or an object without an event type (``e``) that is neither a reply
    (``id``, ``result``, ``error``, ``status``) nor a spot bookTicker (``a`` and ``b``)."""
    if isinstance(message, list):
        return False
    if not isinstance(message, Mapping):
        return True
    value: Any = message
    if message.get("stream") is not None and isinstance(message.get("data"), Mapping):
        value = message["data"]
    if isinstance(value.get("event"), Mapping):
        value = value["event"]
    if any(key in value for key in ("id", "result", "error", "status")):
        return False
    if value.get("e") is not None:
        return False
    return not ("a" in value and "b" in value)


def _binance_channel_of_url(client: Any, url: str) -> str:
    """The spot user stream comes over the WS-API socket, the futures one over the listenKey
    socket (``...?listenKey=``); every other socket carries market data."""
    try:
        if url == client.urls["api"]["ws"]["ws-api"]["spot"]:
            return "user:spot"
    except (AttributeError, KeyError, TypeError):
        pass
    return "user:futures" if "listenKey" in url or "/private" in url else "market"


def _binance_advertised_limit(url: str, body: Any) -> int | None:
    """``exchangeInfo``'s ``rateLimits`` entry ``REQUEST_WEIGHT`` per ``intervalNum`` minutes,
    as a limit per minute."""
    if "exchangeInfo" not in url or not isinstance(body, str | bytes):
        return None
    try:
        info = json.loads(body)
    except ValueError:
        return None
    limits = info.get("rateLimits") if isinstance(info, Mapping) else None
    for row in limits if isinstance(limits, list) else ():
        if not isinstance(row, Mapping) or row.get("rateLimitType") != "REQUEST_WEIGHT":
            continue
        if row.get("interval") != "MINUTE":
            continue
        try:
            per_minute = int(row.get("limit", 0)) // max(1, int(row.get("intervalNum", 1)))
        except (TypeError, ValueError):
            continue
        if per_minute > 0:
            return per_minute
    return None


def _binance_reset_user_stream(client: Any, api: AccountApi) -> None:
    """ccxt reuses a listenKey for 20 min after it got it; Binance answers a new POST with the
    account's active key (extended), or a new one if it expired.

    A refresh of it that was in flight when the channel's watch calls were cancelled is
    dropped too: ccxt runs one ``POST`` for all callers (the first leads, the others wait on
    the flight's future, ``authenticate:linear`` of its ``authenticationFlights`` client), and
    a cancelled leader never settles it: every later call would wait on it for ever (the
    reconnect with them). The channel's calls are all ended when this runs: no leader is left."""
    if api == "futures":
        options = client.options.get("linear")
        if isinstance(options, dict):
            options["lastAuthenticatedTime"] = 0
        flights = (getattr(client, "clients", None) or {}).get("authenticationFlights")
        flight = None if flights is None else flights.futures.pop("authenticate:linear", None)
        if flight is not None and not flight.done():
            flight.cancel()


_BINANCE_REASONS = {
    "-2010": "insufficient balance",
    "-2019": "insufficient margin",
    "-2018": "insufficient balance",
    "-4164": "notional below the minimum notional",
    "-2022": "reduce-only order would increase the position",
    "-5022": "post-only order would take liquidity",
    "-1121": "unknown symbol",
    "-4116": "duplicate client order id",
    "-1111": "precision beyond the market's",
    "-4003": "quantity not positive",
    "-2015": "API key refused: invalid, not allowed from this IP, or without permission",
    "-2014": "API key refused: its format is invalid",
    "-1022": "API key refused: the signature is not valid",
}
_BINANCE_FILTERS = {
    "NOTIONAL": "notional below the minimum notional",
    "MIN_NOTIONAL": "notional below the minimum notional",
    "LOT_SIZE": "quantity not a multiple of the lot size or below the minimum",
    "PRICE_FILTER": "price not a multiple of the tick size",
    "MARKET_LOT_SIZE": "quantity beyond the market lot size",
}
_BINANCE_MSG = re.compile(r'"msg"\s*:\s*"([^"]*)"')


def _binance_rejection_reason(error: BaseException) -> str:
    """``{"code": -1013, "msg": "Filter failure: NOTIONAL"}`` → ``notional below the minimum
    notional (-1013 Filter failure: NOTIONAL)``."""
    code = _binance_code(error)
    found = _BINANCE_MSG.search(str(error))
    msg = found.group(1) if found else str(error)
    readable = _BINANCE_REASONS.get(code or "")
    if code == "-2010":
        lowered = msg.lower()
        if "immediately match" in lowered:
            readable = "post-only order would take liquidity"
        elif "duplicate" in lowered:
            readable = "duplicate client order id"
        elif "insufficient" not in lowered:
            readable = "order refused"
    if readable is None and "Filter failure:" in msg:
        readable = _BINANCE_FILTERS.get(msg.rpartition(":")[2].strip(), "filter failure")
    if readable is None:
        readable = "order refused"
    return f"{readable} ({code} {msg})" if code else f"{readable} ({msg})"


BINANCE = ExchangeSpec(
    id="binance",
    options={
        "defaultType": "spot",
        "fetchMarkets": {"types": ["spot", "linear"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
        # the venue takes its own REST snapshot of the account (start, every catch-up); ccxt's
        # (a task of its own, per user-stream connection) costs request weight and compares the
        # venue's decimal strings with 0 (a TypeError nobody awaits)
        "watchPositions": {"fetchPositionsSnapshot": False},
        # signed requests carry our clock; Binance refuses one 1 s ahead of its own (-1021):
        # ccxt measures the difference when it loads the markets (one GET /api/v3/time) and
        # signs with the exchange's time (the venue measures again on a -1021)
        "adjustForTimeDifference": True,
    },
    url_builder=_binance_urls,
    # Binance's published request weights of the calls the venue makes.
    weights={
        "spot:exchangeInfo": 20,
        "futures:exchangeInfo": 1,
        "spot:account": 20,
        "futures:account": 5,
        "futures:positions": 5,
        "futures:leverageBracket": 1,
        "spot:order": 1,
        "futures:order": 1,
        "spot:cancel": 1,
        "futures:cancel": 1,
        "spot:fetchOrder": 4,
        "futures:fetchOrder": 1,
        "spot:openOrders": 6,
        "futures:openOrders": 1,
        "spot:myTrades": 20,
        "futures:myTrades": 5,
        "futures:income": 30,
        "futures:fundingRate": 1,
        "futures:listenKey": 1,
    },
    weight_limit_per_minute=2400,
    spot_weight_limit_per_minute=6000,
    error_code=_binance_code,
    duplicate_codes=frozenset({"-4116", "-2010:duplicate"}),
    unknown_order_codes=frozenset({"-2013", "-2011"}),
    trade_client_order_id=_binance_trade_client_order_id,
    is_funding_update=_binance_is_funding_update,
    mark_fields=_binance_mark_fields,
    futures_wallet=_binance_futures_wallet,
    user_stream_ready=_binance_user_stream_ready,
    rejection_reason=_binance_rejection_reason,
    auth_codes=frozenset({"-2015", "-2014", "-1022"}),
    futures_paths=("/fapi/",),
    advertised_limit=_binance_advertised_limit,
    tap=_binance_tap,
    channel_of_url=_binance_channel_of_url,
    reset_user_stream=_binance_reset_user_stream,
    ws_orders=True,
    funding_mark=lambda row: (row.get("info") or {}).get("markPrice"),
    exceptions={
        "-1013": ccxt_errors.InvalidOrder,
        "-1111": ccxt_errors.InvalidOrder,
        "-2019": ccxt_errors.InsufficientFunds,
        "-2022": ccxt_errors.InvalidOrder,
        "-4001": ccxt_errors.InvalidOrder,
        "-4003": ccxt_errors.InvalidOrder,
        "-4004": ccxt_errors.InvalidOrder,
        "-4014": ccxt_errors.InvalidOrder,
        "-4116": ccxt_errors.InvalidOrder,
        "-4164": ccxt_errors.InvalidOrder,
        "-5022": ccxt_errors.OrderNotFillable,
    },
)

EXCHANGES: dict[str, ExchangeSpec] = {"binance": BINANCE}
"""The exchanges a ccxt venue can trade on, by name."""


def is_duplicate(spec: ExchangeSpec, error: BaseException) -> bool:
    """Whether ``error`` says the client order id was already used (the order exists)."""
    code = spec.error_code(error)
    if code is None:
        return False
    if code in spec.duplicate_codes:
        return True
    # Binance spot answers -2010 for any refused new order; only "Duplicate order sent." is ours.
    return f"{code}:duplicate" in spec.duplicate_codes and "duplicate" in str(error).lower()


def is_unknown_order(spec: ExchangeSpec, error: BaseException) -> bool:
    """Whether ``error`` says the exchange has no such order."""
    return spec.error_code(error) in spec.unknown_order_codes
