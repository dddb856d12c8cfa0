"""CcxtVenue: the Venue contract over the real ccxt.pro client (Binance spot + USD-M first).

**Lifecycle.** ``connect()`` builds the ccxt.pro client (its own rate limiter off: the venue
budgets the exchange's request weight itself, :mod:`~ballast.adapters.ccxt.weight`), loads the
markets (only the configured symbols are kept) and checks the credentials with one signed call;
a failure is a :class:`VenueError` whose text never holds a secret. ``start()`` (after the session
attached the sink and published instruments and account) starts one task per channel, then
catches up over REST and emits ``VenueConnectionChanged(state="caught_up")``. ``close()`` cancels
every task and closes the client.

**Channels.** One task per subscription, each with its own reconnect loop (exponential backoff
with jitter, capped):

- ``quotes:spot`` / ``quotes:perp``: ``watch_bids_asks`` (spot and perp in separate calls) →
  ``QuoteTick``;
- ``marks``: ``watch_mark_prices`` → ``MarkPriceUpdated`` (funding rate, next funding time);
- ``user:spot`` / ``user:futures``: ``watch_orders``, ``watch_my_trades``, ``watch_balance`` (and
  ``watch_positions`` for futures) on the account's user-data stream → order events,
  ``OrderFilled``, ``BalanceUpdated``, ``PositionUpdated``; a funding settlement announced there
  makes the venue read the income endpoint (``FundingPaid``).

A channel reports ``connected`` once subscribed (public: its socket is open or its first message
came; user: the exchange confirmed the subscription), ``disconnected`` with the error and the
attempt it waits for when a watch fails or one of its sockets closes (heard from ccxt's socket
callbacks, so a socket that closes while no watch call is pending on it is not reopened
unseen: :meth:`CcxtVenue._socket_ended`), and after a reconnect of a user channel the venue asks
for a fresh user-stream credential (an expired listenKey) and runs the same REST catch-up as at
start, for the gap.

**Every update, in order.** ccxt's ``watch_*`` calls wake on the next message and hand over
ccxt's cache: an update that arrives while the venue is busy reporting the previous one would
wait for the message after it (the last balance of a burst: forever). So the ``watch_*`` calls
only keep the subscriptions alive and surface drops; hooks in ccxt's per-message handlers
(:attr:`ExchangeSpec.tap`) queue every update as ccxt parses it (quotes and marks included), and
one task reports the queue in the order the exchange sent it. Amounts are the exchange's decimal
strings (``client.number = str`` once the markets are loaded): exact.

**Exactly once.** A fill is emitted once whatever path brings it (the REST reply of
``create_order``, the user stream, a catch-up): trades are deduplicated by the exchange's trade id
(``seen_trade_ids`` seeds the set on a restart; ids are kept only as long as a catch-up can read
their trades again: :mod:`~ballast.adapters.ccxt.seen_trades`), funding by the settlement's id. The
``OrderAccepted`` of an order this process sent is emitted once and always before its first
fill; ``OrderCanceled`` / ``OrderRejected`` once. An order this process did not send (the last
session's, found by a catch-up or the stream) gets no ``OrderAccepted`` (the journal has it, or
the router's resume lookup reports it); its fills and its end are reported. Order and account
events are emitted under one lock, so what a stream and a REST reply report about one order
cannot interleave.

**Catch-up** (start, and after every reconnect of a user channel): each symbol's own trades
since a minute before the last fill of that symbol this process emitted (never before
``fills_after_ns``; at start: from it), oldest first, those already emitted dropped; funding
income since then; the open orders and every order the venue still holds as working (what
changed in the gap); the account afresh (every balance and position); then ``caught_up`` with
what it found.

**Statements after fills.** A fill and the balance it moved come on different sockets (Binance's
unified account: a perp fill's USDT on the spot socket), in any order; once fills have been quiet
for 250 ms the venue reads the account over REST and states every balance and position afresh, so
a statement that predates a booked fill is corrected without waiting for the next one; one the
streams overtook while it was read (a slow answer) is read again rather than emitted.

**Funding.** A settlement (announced on the user stream, or a next funding time that moved on)
makes the venue read the income endpoint (one call for every perp, paged by ``startTime``) and
the settlements' funding rates. At an accelerated pace (a replay settling every few milliseconds)
the polls are spaced so that they take at most three quarters of the futures weight budget (at
Binance's 2400 per minute: one every 1.3 s); each reads every settlement since the last.

**Request weight.** The budget of each API is the limit the exchange advertises
(``exchangeInfo.rateLimits``, read with the markets), × ``weight_safety``; the spec's constant
until then.

**Decimal context.** ccxt sets ROUND_HALF_UP and an Underflow trap on the decimal context it finds
(``decimal_to_precision``). Every REST call runs under ``decimal.localcontext()`` and every task
the venue starts (ccxt's socket tasks inherit from them) on a Context of its own: the caller's
context is never changed.

**Silent orders.** An order open longer than ``silent_order_s`` without news is looked up and its
status emitted as ``OrderStatusReported`` (and again every ``silent_order_s`` while it stays
silent).

**Order transport.** ``order_transport="rest"`` sends each order as a REST request;
``"websocket"`` (the default, as ``venue.order_transport``'s; an exchange whose spec says
``ws_orders``) over its WebSocket API
(``create_order_ws``, Binance ``order.place``) on a connection kept open, which saves the HTTP
round trip. Either way an order is one weighted call, a duplicate client order id is looked up, and
an answer that does not come within the client's ``timeout`` is a transport failure (outcome
unknown: the router's resend with the same client order id resolves it).

**Errors.** An exchange rejection (ccxt ``InvalidOrder``, ``InsufficientFunds``, ...) is an
``OrderRejected`` with a readable reason; a transport failure (``NetworkError``, timeout, a 429
still refused after waiting its ``Retry-After``, any HTTP 5xx whatever its code: Binance says the
execution status is then unknown) raises :class:`VenueError` (outcome unknown). Signed calls
carry the exchange's time (ccxt measures the clocks' difference with the markets, and again
when the exchange refuses a timestamp, -1021).
A resend of a client order id the exchange already has ("duplicate") is looked up, never
placed twice.

**Accounts.** Spot balances are account ``"spot"``; the USD-M wallet (``walletBalance``, not
the margin balance, which holds unrealised PnL) account ``"futures"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import decimal
import json
import logging
import math
import random
import re
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, TypeVar

import aiohttp
import ccxt.pro as ccxtpro
from ccxt.base.errors import (
    AuthenticationError,
    BadResponse,
    BaseError,
    DDoSProtection,
    ExchangeError,
    InvalidNonce,
    NetworkError,
    OperationFailed,
    RateLimitExceeded,
    RequestTimeout,
)

from ballast.adapters.ccxt.convert import (
    ZERO,
    amount,
    dec,
    market_price,
    ms_to_ns,
    order_state,
    strict_ms_to_ns,
)
from ballast.adapters.ccxt.exchanges import (
    AccountApi,
    ExchangeSpec,
    is_duplicate,
    is_unknown_order,
)
from ballast.adapters.ccxt.frames import guard_frames
from ballast.adapters.ccxt.inline_requests import send_requests_inline
from ballast.adapters.ccxt.seen_trades import SeenTrades
from ballast.adapters.ccxt.sockets import handshake_done
from ballast.adapters.ccxt.weight import WeightBudget
from ballast.engine.kernel.clock import NS_PER_MILLISECOND, NS_PER_SECOND, Clock
from ballast.engine.kernel.commands import CancelOrder, SubmitOrder
from ballast.engine.kernel.config import DEFAULT_ORDER_TRANSPORT, OrderTransport
from ballast.engine.kernel.events import (
    KEY_REFUSED,
    AccountKind,
    BalanceUpdated,
    FundingPaid,
    Liquidity,
    MarkPriceUpdated,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatusReported,
    OrderSubmitted,
    PositionUpdated,
    QuoteTick,
    Side,
    VenueConnectionChanged,
    VenueMessageRejected,
)
from ballast.engine.kernel.instruments import Instrument, is_perp, plain, quote_of
from ballast.engine.kernel.redaction import redact
from ballast.engine.trading.venue import OrderStatus, Venue, VenueError, VenueStats

log = logging.getLogger(__name__)

T = TypeVar("T")

_BACKOFF_FIRST_S = 0.05
_BACKOFF_CAP_S = 10.0
_READY_POLL_S = 0.002
_HOUSEKEEPING_S = 0.05
_RATE_LIMIT_RETRIES = 2
_READ_RETRIES = 2
"""A read (it changes nothing at the exchange) that failed in transport (timeout, connection,
5xx) is sent again this many times, after ``_READ_RETRY_S`` × its attempt, before the failure is
the caller's: a catch-up makes ~15 reads and gave up at the first lost answer, so with a quarter
of the answers lost it almost never completed (each try dropped the stream and began again)."""
_READ_RETRY_S = 0.1
_READS: Final = frozenset(
    {
        "exchangeInfo",
        "account",
        "apiRestrictions",
        "positions",
        "openOrders",
        "fetchOrder",
        "myTrades",
        "income",
        "fundingRate",
    }
)
"""The REST calls that only read (every one of this module's but ``order`` and ``cancel``)."""
_TRADES_PAGE = 1000
_CATCH_UP_MARGIN_MS = 60_000
_SEEN_TRADES_KEEP_MS = 15 * 60_000
"""How long after its symbol's latest fill a trade id is remembered (far more than the
catch-up margin: :mod:`~ballast.adapters.ccxt.seen_trades`)."""
_FUNDING_GRACE_NS = NS_PER_SECOND
_ENDED_KEPT = 10_000
"""Ended orders remembered (a resend of one of them is ignored without asking the exchange)."""
_INCOME_PAGE = 1000
"""Income records per page (Binance's maximum)."""
_FUNDING_RATE_PAGE = 1000
_FUNDING_SHARE = 0.75
"""At most this share of the futures weight budget goes to funding polls: at an accelerated pace
(a settlement every few ms) polls are spaced so orders keep a quarter of the weight (a funding
poll costs 30 + 1 per perp: at 2400 per minute, one every 1.3 s with two perps)."""
_REFRESH_QUIET_S = 0.25
"""After a burst of fills: the account is read once fills have been quiet this long."""
_STATEMENT_TRIES = 5
"""Statements after fills read in a row when each fails or is overtaken by the streams."""
_STATEMENT_RETRY_S = 1.0
"""Wait before reading a failed statement after fills again."""
_STATEMENT_REUSE_NS = 5 * NS_PER_SECOND
"""connect()'s spot statement stands for an account() called this soon after it (one request of
weight 20 less per start)."""
_FUNDING_MATCH_MS = 60_000
_SHOWN_CHARS = 200
"""An unreadable message is shown in its VenueMessageRejected up to this many characters."""
_UNREADABLE_RETRY_S = 1.0
"""A settlement's income record and its funding-rate record are at most this far apart."""


def _trade_ms(trade: Mapping[str, Any], order: Mapping[str, Any] | None) -> int | None:
    """A trade's exchange time in ms (its order's last trade time if it has none), if any."""
    ts_ms = trade.get("timestamp")
    if ts_ms is None and order is not None:
        ts_ms = order.get("lastTradeTimestamp") or order.get("timestamp")
    try:
        return None if ts_ms is None else int(ts_ms)
    except (TypeError, ValueError):
        return None


def _nearest(
    history: Mapping[int, tuple[Decimal, Decimal]], ts_ms: int
) -> tuple[Decimal, Decimal] | None:
    """The funding-rate record of the settlement at ``ts_ms`` (the closest, within a minute)."""
    near = [t for t in history if abs(t - ts_ms) <= _FUNDING_MATCH_MS]
    return history[min(near, key=lambda t: abs(t - ts_ms))] if near else None


def backoff_s(attempt: int, rng: random.Random) -> float:
    """Exponential backoff with full jitter, capped: attempt 1 → up to 50 ms, 2 → 100 ms, ..."""
    ceiling = min(_BACKOFF_CAP_S, math.ldexp(_BACKOFF_FIRST_S, min(max(attempt - 1, 0), 30)))
    return ceiling / 2 + rng.random() * ceiling / 2


_Watch = Callable[[], Awaitable[Any]]

_RETRY_AFTER = re.compile(r'"serverTime":\s*(\d+),\s*"retryAfter":\s*(\d+)')


def _ws_retry_after_s(text: str) -> float | None:
    """The wait a WS-API 429/418 names (``"data": {"serverTime", "retryAfter"}``, both the
    exchange's ms), in seconds; None if it names none."""
    found = _RETRY_AFTER.search(text)
    if found is None:
        return None
    return max(0, int(found[2]) - int(found[1])) / 1000


_HTTP_STATUS: contextvars.ContextVar[int] = contextvars.ContextVar("ccxt_http_status", default=0)
"""The HTTP status of the last REST answer of the current task (ccxt's exceptions lack it)."""


@dataclass
class _Order:
    """What the venue knows of one of its orders."""

    symbol: str
    side: Side
    qty: Decimal
    venue_order_id: str = ""
    answered: bool = False
    """The exchange answered (accepted or refused): a resend is ignored."""
    accepted: bool = False
    terminal: bool = False
    cancel_reason: str | None = None
    last_news_ns: int = 0
    ours: bool = False
    """Sent by this process (its silence is looked into, a catch-up checks it)."""
    streamed_only: bool = False
    """Known only from the user stream (not sent by this process, never seen over REST): its
    streamed fills are not booked from the stream (:meth:`CcxtVenue._order_known`)."""


@dataclass
class _Channel:
    name: str
    api: AccountApi | None
    """The account of a user channel (None: public market data)."""
    watches: list[_Watch] = field(default_factory=list)
    """The channel's subscriptions (ccxt ``watch_*`` calls)."""
    connected: bool = False
    message: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at the first message of the current attempt."""
    broken: asyncio.Future[BaseException] | None = None
    """The current attempt's end: the error of a socket of the channel that the exchange closed
    (or that failed), set by :meth:`CcxtVenue._socket_ended` whether or not a watch call was
    pending on it; None between attempts."""


_DECIMAL: Final = decimal.Context()
"""The decimal context the engine's handlers run in when a stream handler delivers market data
synchronously (a copy each time: ccxt's callbacks run in whatever context ccxt left set)."""


async def _own_decimal_context(coro: Awaitable[None]) -> None:
    """Run ``coro`` with a decimal context of its own. A task inherits its creator's context
    object (contextvars copy the reference), and ccxt changes the rounding and traps of the one it
    finds; the venue's tasks, and ccxt's socket tasks they start, must not touch the engine's."""
    decimal.setcontext(decimal.Context())
    await coro


def _order_socket_url(client: Any, perp: bool) -> str:
    """The WebSocket API connection ``create_order_ws`` sends a spot or a perp order on."""
    return str(client.urls["api"]["ws"]["ws-api"]["linear" if perp else "spot"])


def _bind(fn: Callable[..., Awaitable[Any]], *args: Any) -> _Watch:
    return lambda: fn(*args)


class CcxtVenue(Venue):
    """A live venue through ccxt.pro; see the module docstring."""

    def __init__(
        self,
        spec: ExchangeSpec,
        *,
        spot: Sequence[str],
        perp: Sequence[str],
        api_key: str,
        api_secret: str,
        clock: Clock,
        name: str = "binance",
        rest_url: str | None = None,
        ws_url: str | None = None,
        testnet: bool = False,
        fills_after_ns: int = 0,
        seen_trade_ids: Collection[str] = (),
        silent_order_s: float = 10.0,
        funding_after_ns: int | None = None,
        seen_funding: Collection[tuple[str, int]] = (),
        ws_keepalive_s: float = 0.0,
        order_transport: OrderTransport = DEFAULT_ORDER_TRANSPORT,
        request_timeout_s: float = 10.0,
    ) -> None:
        super().__init__()
        if (rest_url is None) != (ws_url is None):
            raise ValueError("rest_url and ws_url go together")
        if order_transport == "websocket" and not spec.ws_orders:
            raise ValueError(f"{spec.id} takes no orders over WebSocket: order_transport 'rest'")
        self.order_transport: OrderTransport = order_transport
        self._timeout_ms = max(1, round(request_timeout_s * 1000))
        self.spec = spec
        self.name = name
        self.clock = clock
        self.spot = tuple(spot)
        self.perp = tuple(perp)
        self._api_key = api_key
        self._api_secret = api_secret
        self._rest_url = rest_url
        self._ws_url = ws_url
        self._testnet = testnet
        self._silent_ns = int(silent_order_s * NS_PER_SECOND)
        self._keepalive_ms = int(ws_keepalive_s * 1000)
        # nothing journaled (0): the account statement holds the past, fills before now are
        # not this engine's to book
        self._fills_start_ms = (fills_after_ns or clock.now_ns()) // NS_PER_MILLISECOND
        self._fills_after_ms: dict[str, int] = {}
        """Per symbol: the time of the latest fill emitted (each symbol's own: fills of
        different streams arrive in any order, one stream's gap may be older than another's
        latest fill)."""
        first_funding_ms = (
            self._fills_start_ms
            if funding_after_ns is None
            else funding_after_ns // NS_PER_MILLISECOND + 1
        )
        self._funding_after_ms = dict.fromkeys(self.perp, first_funding_ms)
        """Per perp: income older than this was reported (or is the journal's)."""
        self._seen_funding_at: set[tuple[str, int]] = set(seen_funding)
        """(symbol, ts_event) of settlements already reported (the journal's, on a restart)."""
        self._seen_trades = SeenTrades(seen_trade_ids, keep_ms=_SEEN_TRADES_KEEP_MS)
        self._fills_emitted = 0
        self._seen_funding: set[str] = set()
        self._client: Any = None
        self._instruments: dict[str, Instrument] = {}
        self._orders: dict[str, _Order] = {}
        self._by_venue_id: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._catch_up_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._channels: dict[str, _Channel] = {}
        self._reconnects = 0
        self._rng = random.Random()
        self._budgets = {
            api: WeightBudget(spec.limit(api), spec.weight_safety, clock)
            for api in ("spot", "futures")
        }
        self._last_balance: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
        self._marks: dict[str, tuple[Decimal, Decimal]] = {}
        """Perp symbol → (mark, funding rate) last seen."""
        self._positions: dict[str, Decimal] = {}
        self._next_funding_ms: dict[str, int] = {}
        self._funding_polled_ms: dict[str, int] = {}
        """Per perp: the latest funding time a poll was asked for by the clock."""
        self._funding_passed_ms: dict[str, int] = {}
        """Per perp: the last funding time the marks moved past (polled again after the grace:
        the income may be written a little after the mark moved on)."""
        self._funding_wanted = asyncio.Event()
        """A settlement happened that no funding poll has read yet."""
        self._funding_polled_ns = -(2**62)
        self._updates: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._pumping: asyncio.Task[None] | None = None
        """:meth:`_pump`'s task, once started (an order's reply is reported through it)."""
        self._reporting = False
        """:meth:`_pump` is reporting an update (it may be awaiting): market data queues behind."""
        self._ended: deque[str] = deque()
        self._timers: list[Any] = []
        self._started = False
        self._closing = False
        self._connect_statement: tuple[int, Any] | None = None
        self._filled = asyncio.Event()
        self._unreadable: dict[str, int] = {}
        """User channel → unreadable messages since its last catch-up (one catch-up reads them
        all: a burst of bad messages costs one)."""
        self._unreadable_seen = asyncio.Event()
        self._market_ts: dict[tuple[str, str], int] = {}
        """(kind, symbol) → the last exchange time of a market update (:meth:`_market_time`)."""
        """A fill was emitted since the last statement after fills."""
        self._news = 0
        """Fills, balances and positions the streams reported (a statement read while this
        moved is older than what the streams said: not emitted)."""
        """(when, spot balance) of connect()'s credential check, for the first account()."""

    # ------------------------------------------------------------------ lifecycle

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "apiKey": self._api_key,
            "secret": self._api_secret,
            "enableRateLimit": False,
            "timeout": self._timeout_ms,
            "options": {
                **dict(self.spec.options),
                "warnOnFetchOpenOrdersWithoutSymbol": False,
            },
        }
        if self._keepalive_ms > 0:
            # ccxt pings each socket every keepAlive ms and fails it after two missed pongs
            config["streaming"] = {"keepAlive": self._keepalive_ms}
        if self._rest_url is not None and self._ws_url is not None:
            config["urls"] = self.spec.urls(self._rest_url, self._ws_url)
            # ccxt picks some error tables by Binance's own host names: name the codes here
            config["exceptions"] = {"exact": dict(self.spec.exceptions)}
            if self._rest_url.startswith("http://"):
                # no TLS to wind down: ccxt's close() need not linger (default 0.5 s)
                config["timeout_on_exit"] = 0
        return config

    def build_client(self) -> Any:
        """The ccxt.pro client this venue talks through (not connected: nothing is sent until a
        call), sending its WebSocket API requests inline (:mod:`.inline_requests`).
        ``testnet``: ccxt's sandbox URLs (``urls['test']``) laid over the API URLs
        (``set_sandbox_mode`` would replace the whole block); explicit ``rest_url``/``ws_url``
        win over both."""
        try:
            client_class = getattr(ccxtpro, self.spec.id)
        except AttributeError as e:
            raise VenueError(f"{self.name}: ccxt.pro has no exchange {self.spec.id!r}") from e
        client = client_class(self._config())
        if self._testnet and self._rest_url is None:
            test = client.urls.get("test")
            if not test:
                raise VenueError(f"{self.name}: {self.spec.id} has no sandbox endpoints")
            client.urls["api"] = client.deep_extend(client.urls["api"], test)
        send_requests_inline(client)
        return client

    async def connect(self) -> None:
        if self._client is not None:
            return
        client = self.build_client()
        self._client = client
        original = client.on_rest_response

        def on_rest_response(
            code: Any,
            reason: Any,
            url: str,
            method: str,
            headers: Any,
            body: Any,
            request_headers: Any,
            request_body: Any,
        ) -> Any:
            self._observe_response(code, url, headers, body)
            with contextlib.suppress(TypeError, ValueError):
                _HTTP_STATUS.set(int(code))  # this call's task: read by _call on an error
            return original(code, reason, url, method, headers, body, request_headers, request_body)

        client.on_rest_response = on_rest_response
        self._watch_socket_ends(client)
        self.spec.tap(client, self._push)
        guard_frames(client, lambda url, text, error: self._push("unreadable", (url, text, error)))
        timers = self._timers
        schedule = client.delay

        def delay(timeout: Any, method: Any, *args: Any) -> Any:
            # ccxt's own timers (the listenKey keep-alive every 20 min): cancelled by close()
            handle = schedule(timeout, method, *args)
            timers.append(handle)
            return handle

        client.delay = delay
        try:
            await self._call("spot", "exchangeInfo", client.load_markets)
            self._instruments = self._load_instruments()
            # from here on ccxt hands every parsed amount over as the exchange's decimal string
            # (its default float cannot hold what a string of more than 15 digits says)
            client.number = str
            # the credential check; its statement serves the session's first account() too
            spot = await self._call("spot", "account", client.fetch_balance)
            self._connect_statement = (self.clock.now_ns(), spot)
        except VenueError:
            await self._drop_client()
            raise
        except BaseError as e:
            await self._drop_client()
            raise VenueError(self._text(f"{self.name}: connect failed: {e}")) from None

    def _watch_socket_ends(self, client: Any) -> None:
        """Hear of every WebSocket of ``client`` that closes or fails (:meth:`_socket_ended`).
        ccxt hands its ``on_close(client, code)`` / ``on_error(client, error)`` to each socket
        it creates (``Exchange.client(url)`` reads the instance's attributes), so wrappers set
        before the first socket opens see them all; the originals still run (they forget the
        socket, so that the next watch call opens a new one)."""
        on_close, on_error = client.on_close, client.on_error

        def closed(ws: Any, code: Any) -> Any:
            self._socket_ended(ws, getattr(ws, "error", None), code)
            return on_close(ws, code)

        def failed(ws: Any, error: Any) -> Any:
            self._socket_ended(ws, error, None)
            return on_error(ws, error)

        client.on_close = closed
        client.on_error = failed

    def _socket_ended(self, ws: Any, error: Any, code: Any) -> None:
        """A socket closed (``code``) or failed (``error``): the attempt of every channel it
        carried ends (``_Channel.broken``), so the channel goes through its disconnect,
        backoff, reconnect and (user data) REST catch-up.

        A drop is usually noticed by the channel's watch calls, which ccxt fails with the
        socket; but a socket that closes while none is pending on it (the exchange sends an
        update and closes right behind it, and the calls the update answered are not waiting
        on the socket yet when ccxt handles the close: re-armed into ccxt refreshing the
        listenKey over REST, or not re-armed at all) is only forgotten, and the next watch call
        opens a new one without a word: no disconnect, no reconnect counted, and no catch-up,
        so what the exchange pushed while no socket was open (a fill) would be lost. Hence
        this callback.

        Ignored: a socket that is no longer the one registered for its URL (the second callback
        of one failure, ccxt's ``on_error`` then ``on_close``; or an old socket whose URL a new
        one serves), and everything once :meth:`close` began. User data: the channel
        :attr:`ExchangeSpec.channel_of_url` names. Market data is signalled too (the channel
        whose subscription the socket carried): no fill is at stake, but a silent reopen would
        hide the gap from the connection events and the reconnect count. A socket that carries
        no channel (a WebSocket API connection used only for orders) ends nothing."""
        client = self._client
        if self._closing or client is None:
            return
        url = getattr(ws, "url", None)
        clients = getattr(client, "clients", None) or {}
        if not isinstance(url, str) or clients.get(url) is not ws:
            return
        carried = self.spec.channel_of_url(client, url)
        if carried.startswith("user:"):
            found = self._channels.get(carried)
            channels = [found] if found is not None else []
        else:
            hashes = self._socket_hashes(ws)
            channels = [
                c for c in self._channels.values() if c.api is None and self._carries(c, hashes)
            ]
        if not channels:
            return
        if not isinstance(error, BaseException):
            error = NetworkError(f"connection closed by the exchange, closing code {code}")
        for channel in channels:
            broken = channel.broken
            if broken is not None and not broken.done():
                broken.set_result(error)

    async def key_restrictions(self) -> Mapping[str, Any]:
        """What the exchange says the API key may do (Binance: ``GET
        /sapi/v1/account/apiRestrictions``, e.g. ``enableWithdrawals``); VenueError when it does
        not say (no such endpoint, a refusal, a transport failure)."""
        client = self._require_client()
        try:
            answer = await self._call(
                "spot", "apiRestrictions", client.sapiGetAccountApiRestrictions
            )
        except BaseError as e:
            raise VenueError(self._text(f"{self.name}: apiRestrictions: {e}")) from None
        if not isinstance(answer, Mapping):
            raise VenueError(f"{self.name}: apiRestrictions: not an object: {type(answer)}")
        return answer

    async def _drop_client(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def start(self) -> None:
        """Start the channels, then catch up over REST; ``caught_up`` when done."""
        if self._client is None:
            raise VenueError(f"{self.name}: start() before connect()")
        if self._started:
            return
        self._started = True
        self._pumping = self._spawn(self._pump(), f"{self.name}:updates")
        for channel in self._make_channels():
            self._channels[channel.name] = channel
            self._spawn(self._run_channel(channel), f"{self.name}:{channel.name}")
        self._spawn(self._housekeeping(), f"{self.name}:housekeeping")
        self._spawn(self._refresh_after_fills(), f"{self.name}:statements")
        self._spawn(self._catch_up_after_unreadable(), f"{self.name}:unreadable")
        if self.order_transport == "websocket":
            await self._open_order_sockets()
        await self._catch_up("start")

    async def _open_order_sockets(self) -> None:
        """Orders over the WebSocket API: its connections are opened at start, not by the first
        order (which would wait for the handshake, and add the connection's tasks mid-run). One
        that cannot be opened now is opened by the first order, as ccxt does; said in the log."""
        client = self._require_client()
        for kind, used in (("spot", self.spot), ("linear", self.perp)):
            if not used:
                continue
            try:
                url = _order_socket_url(client, kind == "linear")
                async with asyncio.timeout(client.timeout / 1000):
                    await client.client(url).connect(client.session, 0)
            except Exception as e:  # the order path connects on demand
                log.warning(
                    "%s: %s order socket not opened at start (%s); the first order opens it",
                    self.name,
                    kind,
                    self._text(f"{type(e).__name__}: {e}"),
                )

    def _spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(_own_decimal_context(coro))
        task.set_name(name)
        self._tasks.append(task)
        return task

    async def close(self) -> None:
        self._closing = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for channel in self._channels.values():
            channel.connected = False
        await self._drop_client()

    def _is_closing(self) -> bool:
        """Whether close() began (a method: the flag changes across awaits)."""
        return self._closing

    def stats(self) -> VenueStats:
        used, limit = max(
            ((b.current(), b.budget) for b in self._budgets.values()),
            key=lambda pair: pair[0] / pair[1],
        )
        return VenueStats(
            connected={name: c.connected for name, c in self._channels.items()},
            reconnects=self._reconnects,
            weight_used=used,
            weight_limit=limit,
        )

    def remembered_trades(self) -> int:
        """How many trade ids the venue remembers to drop a fill that comes again (bounded)."""
        return len(self._seen_trades)

    @property
    def budgets(self) -> Mapping[str, WeightBudget]:
        """The request-weight budget of each API (``"spot"``, ``"futures"``)."""
        return self._budgets

    # ------------------------------------------------------------------ REST with budget

    def _text(self, text: str) -> str:
        """An error text fit for logs and events: registered secrets and this venue's keys
        masked."""
        for secret in (self._api_secret, self._api_key):
            if len(secret) >= 4:  # shorter would mask innocent text
                text = text.replace(secret, "***")
        return redact(text)

    def _observe_response(self, code: Any, url: str, headers: Any, body: Any = None) -> None:
        api = "futures" if any(p in url for p in self.spec.futures_paths) else "spot"
        budget = self._budgets[api]
        if code == 200:
            advertised = self.spec.advertised_limit(url, body)
            if advertised is not None and advertised != budget.limit:
                log.info("%s: %s request weight limit %d per minute", self.name, api, advertised)
                budget.set_limit(advertised)
        lowered = {str(k).lower(): v for k, v in dict(headers or {}).items()}
        used = lowered.get(self.spec.weight_header)
        if used is not None:
            with contextlib.suppress(TypeError, ValueError):
                budget.observe(int(used))
        if code in (429, 418):
            retry_after: float | None
            try:
                retry_after = float(lowered["retry-after"])
            except (KeyError, TypeError, ValueError):
                retry_after = None
            budget.block(retry_after)

    async def _call(
        self,
        api: AccountApi,
        call: str,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        **kwargs: Any,
    ) -> T:
        """One REST call within the weight budget. A 429 is waited out (``Retry-After``) and
        retried; still refused, or any other transport failure, raises VenueError. An answer
        with HTTP status 5xx is a transport failure whatever its error code (Binance: the
        execution status is unknown, the request may have been processed). A timestamp the
        exchange refuses (-1021, its clock and ours apart) makes the client measure the time
        difference again, and the call is sent once more. Exchange errors (refusals) propagate
        as ccxt raised them. A read (``_READS``) that failed in transport is sent again, at most
        ``_READ_RETRIES`` times."""
        read_retries = _READ_RETRIES if call in _READS else 0
        for failed in range(read_retries + 1):
            try:
                return await self._call_once(api, call, fn, *args, **kwargs)
            except VenueError as e:
                if failed == read_retries:
                    raise
                log.info("%s: %s failed, read again: %s", self.name, call, e)
            await asyncio.sleep(_READ_RETRY_S * (failed + 1))
        raise AssertionError("unreachable")

    async def _call_once(
        self,
        api: AccountApi,
        call: str,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        **kwargs: Any,
    ) -> T:
        """:meth:`_call` without its retries of a failed read."""
        weight = self.spec.weight(api, call)
        resynced = False
        for attempt in range(_RATE_LIMIT_RETRIES + 1):
            await self._budgets[api].acquire(weight)
            _HTTP_STATUS.set(0)
            try:
                # ccxt sets rounding and traps on the decimal context it finds (its
                # decimal_to_precision): the caller's must stay as it was
                with decimal.localcontext():
                    return await fn(*args, **kwargs)
            except InvalidNonce as e:
                if resynced or attempt == _RATE_LIMIT_RETRIES:
                    raise VenueError(
                        self._text(f"{self.name}: {call}: {type(e).__name__}: {e}")
                    ) from None
                resynced = True
                await self._resync_clock(call)
            except (RateLimitExceeded, DDoSProtection) as e:
                if self._is_auth_refusal(e):
                    raise AuthenticationError(str(e)) from None
                if attempt == _RATE_LIMIT_RETRIES:
                    raise VenueError(
                        self._text(f"{self.name}: {call}: rate limited: {e}")
                    ) from None
            except (NetworkError, BadResponse, OperationFailed) as e:
                raise VenueError(
                    self._text(f"{self.name}: {call}: {type(e).__name__}: {e}")
                ) from None
            except ExchangeError as e:
                status = _HTTP_STATUS.get()
                if status >= 500:
                    raise VenueError(
                        self._text(f"{self.name}: {call}: HTTP {status}, outcome unknown: {e}")
                    ) from None
                if e.__cause__ is not None and not isinstance(e.__cause__, BaseError):
                    # ccxt wraps an aiohttp failure without an answer as ExchangeError
                    raise VenueError(
                        self._text(f"{self.name}: {call}: {type(e).__name__}: {e}")
                    ) from None
                raise
        raise AssertionError("unreachable")

    def _is_auth_refusal(self, error: BaseException) -> bool:
        """A "rate limit" that is the exchange refusing the key (Binance -2015, which ccxt
        reports as DDoSProtection once the key has worked): not a ban to wait out, and the
        order's outcome is known (refused). An answer with HTTP 429/418 stays a rate limit."""
        return (
            _HTTP_STATUS.get() not in (429, 418)
            and self.spec.error_code(error) in self.spec.auth_codes
        )

    async def _resync_clock(self, call: str) -> None:
        """Measure the exchange's clock again (ccxt signs with our time less the difference)."""
        client = self._require_client()
        log.warning(
            "%s: %s: timestamp refused; measuring the exchange's clock again", self.name, call
        )
        try:
            with decimal.localcontext():
                await client.load_time_difference()
        except BaseError as e:
            raise VenueError(self._text(f"{self.name}: {call}: clock sync failed: {e}")) from None

    # ------------------------------------------------------------------ markets, account

    def _load_instruments(self) -> dict[str, Instrument]:
        markets = self._client.markets or {}
        found: dict[str, Instrument] = {}
        missing = [s for s in (*self.spot, *self.perp) if s not in markets]
        if missing:
            raise VenueError(f"{self.name}: the exchange lists no market {', '.join(missing)}")
        for symbol in (*self.spot, *self.perp):
            found[symbol] = self._instrument(markets[symbol])
        return found

    def _instrument(self, market: Mapping[str, Any]) -> Instrument:
        precision = market.get("precision") or {}
        limits = market.get("limits") or {}
        lot = amount(precision.get("amount"))
        min_qty = dec((limits.get("amount") or {}).get("min"), None)
        return Instrument(
            symbol=market["symbol"],
            kind="perp" if market.get("contract") else "spot",
            base=market["base"],
            quote=market["quote"],
            tick_size=amount(precision.get("price")),
            lot_size=lot,
            min_qty=min_qty if min_qty is not None and min_qty > 0 else lot,
            min_notional=amount((limits.get("cost") or {}).get("min")),
            maker_fee=amount(market.get("maker")),
            taker_fee=amount(market.get("taker")),
        )

    async def instruments(self) -> Mapping[str, Instrument]:
        self._require_client()
        return dict(self._instruments)

    def _require_client(self) -> Any:
        if self._client is None:
            raise VenueError(f"{self.name}: not connected")
        return self._client

    async def account(self) -> Sequence[Message]:
        client = self._require_client()
        now = self.clock.now_ns()
        events: list[Message] = []
        try:
            fresh, self._connect_statement = self._connect_statement, None
            if fresh is not None and not self._started and now - fresh[0] <= _STATEMENT_REUSE_NS:
                spot = fresh[1]
            else:
                spot = await self._call("spot", "account", client.fetch_balance)
            events += self._balances("spot", spot, now, rest=True)
            if self.perp:
                futures = await self._call(
                    "futures", "account", client.fetch_balance, {"type": "swap"}
                )
                events += self._balances("futures", futures, now, rest=True)
                positions = await self._call(
                    "futures", "positions", client.fetch_positions, list(self.perp)
                )
                events += self._position_events(positions, now)
        except ExchangeError as e:
            raise VenueError(self._text(f"{self.name}: account: {e}")) from None
        return events

    def _balances(
        self, api: AccountApi, balance: Mapping[str, Any], now: int, *, rest: bool
    ) -> list[BalanceUpdated]:
        account: AccountKind = "spot" if api == "spot" else "futures"
        ts = ms_to_ns(balance.get("timestamp"), now)
        rows: dict[str, tuple[Decimal, Decimal]] = {}
        wallet = self.spec.futures_wallet(balance) if api == "futures" and rest else None
        if wallet is not None:
            rows = {asset: (amount(value), ZERO) for asset, value in wallet.items()}
        else:
            for code, entry in balance.items():
                if code in ("info", "timestamp", "datetime", "free", "used", "total", "debt"):
                    continue
                if not isinstance(entry, Mapping):
                    continue
                if api == "spot":
                    free = dec(entry.get("free"), None)
                    if not rest and (free is None or entry.get("used") is None):
                        # a streamed row ccxt could not read (the stream always says both)
                        raise ValueError(f"{code} balance without free or locked")
                    if free is None:
                        free = amount(entry.get("total")) - amount(entry.get("used"))
                    rows[code] = (free, amount(entry.get("used")))
                else:  # the futures wallet: the streamed wallet balance (``wb``) is the total
                    if not rest and entry.get("total") is None:
                        raise ValueError(f"{code} wallet balance missing")
                    rows[code] = (amount(entry.get("total")), ZERO)
        return [
            BalanceUpdated(ts, now, account, asset, free, locked)
            for asset, (free, locked) in sorted(rows.items())
        ]

    def _position_events(self, positions: Sequence[Mapping[str, Any]], now: int) -> list[Message]:
        events: list[Message] = []
        for p in positions:
            symbol = p.get("symbol")
            if symbol not in self._instruments:
                continue
            events.append(self._position(p, now))
        return events

    def _position(self, p: Mapping[str, Any], now: int) -> PositionUpdated:
        symbol = str(p["symbol"])
        info = p.get("info") or {}
        raw_qty = info.get("pa", info.get("positionAmt")) if isinstance(info, Mapping) else None
        if raw_qty is not None:
            qty = amount(raw_qty)
        else:
            qty = amount(p.get("contracts"))
            if p.get("side") == "short":
                qty = -qty
        entry = amount(p.get("entryPrice"))
        upnl = amount(p.get("unrealizedPnl"))
        mark = dec(p.get("markPrice"), None)
        if mark is None:
            known = self._marks.get(symbol)
            if qty != 0:
                inst = self._instruments[symbol]
                mark = inst.round_price(entry + upnl / qty)
            elif known is not None:
                mark = known[0]
            else:
                mark = entry
        liquidation = dec(p.get("liquidationPrice"), None)
        margin = amount(p.get("initialMargin") if p.get("initialMargin") is not None else 0)
        self._positions[symbol] = qty
        return PositionUpdated(
            ms_to_ns(p.get("timestamp"), now),
            now,
            symbol,
            qty,
            entry,
            plain(mark),
            upnl,
            margin,
            liquidation if liquidation is not None and liquidation > 0 else None,
        )

    # ------------------------------------------------------------------ orders

    async def submit(self, order: SubmitOrder) -> None:
        client = self._require_client()
        coid = order.client_order_id
        now = self.clock.now_ns()
        known = self._orders.get(coid)
        if known is not None and known.answered:
            return  # the exchange has it (or refused it): a resend is not a new order
        if known is None:
            known = _Order(order.symbol, order.side, order.qty, last_news_ns=now, ours=True)
            self._orders[coid] = known
            await self.emit(
                OrderSubmitted(
                    now,
                    now,
                    coid,
                    order.intent_id,
                    order.symbol,
                    order.side,
                    order.order_type,
                    order.qty,
                    order.price,
                )
            )
        inst = self._instruments.get(order.symbol)
        problem: str | None
        if inst is None:
            problem = f"unknown symbol {order.symbol}"
        elif order.order_type == "limit" and order.price is None:
            problem = "a limit order needs a price"
        else:
            problem = inst.violation(
                order.qty, order.price if order.order_type == "limit" else None
            )
        if problem is not None:
            known.answered = True
            await self._reject(coid, order.symbol, problem)
            return
        params: dict[str, Any] = {"newClientOrderId": coid}
        if is_perp(order.symbol) and order.reduce_only:
            params["reduceOnly"] = True
        price: float | None = None
        if order.order_type == "limit":
            assert order.price is not None
            price = float(order.price)
            if order.post_only or order.time_in_force == "GTX":
                params["postOnly"] = True
            else:
                params["timeInForce"] = order.time_in_force
        api = "futures" if is_perp(order.symbol) else "spot"
        create = client.create_order
        if self.order_transport == "websocket":
            create = self._ws_create(client, api)
        try:
            reply = await self._call(
                api,
                "order",
                create,
                order.symbol,
                order.order_type,
                order.side,
                float(order.qty),
                price,
                params,
            )
        except VenueError:
            raise
        except ExchangeError as e:
            if is_duplicate(self.spec, e):
                await self._resolve_duplicate(coid, order.symbol)
                return
            known.answered = True
            if isinstance(e, AuthenticationError):
                reason = KEY_REFUSED + self.spec.rejection_reason(e)
            else:
                reason = self.spec.rejection_reason(e)
            await self._reject(coid, order.symbol, self._text(reason))
            return
        known.answered = True
        await self._reply_in_order(reply)

    def _ws_create(self, client: Any, api: AccountApi) -> Callable[..., Awaitable[Any]]:
        """``create_order_ws`` within the client's timeout (ccxt waits for a WebSocket answer
        forever; REST calls time out after ``timeout`` ms). A connection that left an order
        unanswered is taken for dead (half-open): it is failed, so the resend and the streams
        it carries (spot user data) reconnect, rather than wait on it again. A 429/418 reply
        holds the API's calls until its ``data.retryAfter`` (as a REST ``Retry-After`` does).
        The deadline is on this task (``asyncio.timeout``): ``wait_for`` would run the call in
        a task of its own, one more loop iteration before the order leaves."""

        async def create(symbol: str, *args: Any) -> Any:
            try:
                async with asyncio.timeout(client.timeout / 1000):
                    return await client.create_order_ws(symbol, *args)
            except (RateLimitExceeded, DDoSProtection) as e:
                if self._is_auth_refusal(e):  # ccxt says DDoSProtection for a -2015 too
                    raise AuthenticationError(str(e)) from None
                retry_after = _ws_retry_after_s(str(e))
                if retry_after is not None:  # a 429/418
                    self._budgets[api].block(retry_after)
                raise
            except (aiohttp.ClientError, ConnectionError) as e:
                # the socket closed under the order (ccxt lets aiohttp's error through): a
                # transport failure, outcome unknown, as a REST connection reset is
                raise NetworkError(f"order socket: {type(e).__name__}: {e}") from None
            except TimeoutError:
                error = RequestTimeout(f"no answer to the order in {client.timeout} ms")
                with contextlib.suppress(AttributeError, KeyError, TypeError):
                    url = _order_socket_url(client, is_perp(symbol))
                    connection = client.clients.get(url)
                    if connection is not None:
                        connection.on_error(error)
                raise error from None

        return create

    async def _resolve_duplicate(self, coid: str, symbol: str) -> None:
        """The exchange already has this client order id: report what it knows of it."""
        client = self._require_client()
        try:
            found = await self._fetch_order(client, coid, symbol)
        except ExchangeError as e:
            raise VenueError(self._text(f"{self.name}: lookup of {coid}: {e}")) from None
        known = self._orders.get(coid)
        if known is not None:
            known.answered = True
        if found is not None:
            await self._on_orders([found])

    async def _fetch_order(self, client: Any, coid: str, symbol: str) -> Mapping[str, Any] | None:
        api = "futures" if is_perp(symbol) else "spot"
        try:
            found: Mapping[str, Any] = await self._call(
                api, "fetchOrder", client.fetch_order, None, symbol, {"origClientOrderId": coid}
            )
        except ExchangeError as e:
            if is_unknown_order(self.spec, e):
                return None
            raise
        return found

    async def cancel(self, order: CancelOrder) -> None:
        client = self._require_client()
        coid = order.client_order_id
        known = self._orders.get(coid)
        if known is not None and known.cancel_reason is None:
            known.cancel_reason = order.reason
        api = "futures" if is_perp(order.symbol) else "spot"
        try:
            reply = await self._call(
                api,
                "cancel",
                client.cancel_order,
                None,
                order.symbol,
                {"origClientOrderId": coid},
            )
        except VenueError:
            raise
        except ExchangeError as e:
            if known is not None and known.terminal:
                return  # already gone (filled or canceled): nothing to report twice
            if is_unknown_order(self.spec, e):
                # no longer open: filled or canceled meanwhile (its report may still be on the
                # way), or never received
                try:
                    found = await self._fetch_order(client, coid, order.symbol)
                except ExchangeError:
                    found = None
                if found is not None and found.get("status") != "open":
                    await self._on_orders([found])  # its end: canceled, or filled (fills follow)
                    return
            reason = "unknown order" if is_unknown_order(self.spec, e) else "cancel refused"
            await self.emit(
                OrderRejected(
                    self.clock.now_ns(),
                    self.clock.now_ns(),
                    coid,
                    order.symbol,
                    self._text(f"{reason}: {self.spec.rejection_reason(e)}"),
                )
            )
            return
        self._orders.setdefault(
            coid,
            _Order(
                order.symbol, "buy", ZERO, cancel_reason=order.reason, answered=True, accepted=True
            ),
        )
        # the reply's own clientOrderId may name the cancel request (Binance spot); it is
        # about ours
        await self._reply_in_order({**reply, "clientOrderId": coid})

    async def order_status(self, client_order_id: str, symbol: str) -> OrderStatus | None:
        client = self._require_client()
        if symbol not in self._instruments:
            return None
        try:
            found = await self._fetch_order(client, client_order_id, symbol)
        except ExchangeError as e:
            raise VenueError(self._text(f"{self.name}: order status: {e}")) from None
        return None if found is None else self._status(found)

    async def open_orders(self) -> Sequence[OrderStatus]:
        client = self._require_client()
        found: list[OrderStatus] = []
        try:
            for symbol in (*self.spot, *self.perp):
                api = "futures" if is_perp(symbol) else "spot"
                orders = await self._call(api, "openOrders", client.fetch_open_orders, symbol)
                found += [self._status(o) for o in orders]
        except ExchangeError as e:
            raise VenueError(self._text(f"{self.name}: open orders: {e}")) from None
        return found

    def _status(self, order: Mapping[str, Any]) -> OrderStatus:
        filled = amount(order.get("filled"))
        average = dec(order.get("average"), None)
        side: Side = "sell" if order.get("side") == "sell" else "buy"
        return OrderStatus(
            client_order_id=str(order.get("clientOrderId") or ""),
            venue_order_id=str(order.get("id") or ""),
            symbol=str(order.get("symbol")),
            side=side,
            qty=amount(order.get("amount")),
            filled_qty=filled,
            avg_price=average if filled > 0 and average else None,
            state=order_state(order.get("status"), filled),
        )

    # ------------------------------------------------------------------ reports (under the lock)

    def _end(self, coid: str, known: _Order) -> None:
        """``coid`` reached its end; the oldest ended orders are forgotten (bounded memory: a
        late report of one is deduplicated by trade id, or is old news)."""
        known.terminal = True
        self._ended.append(coid)
        while len(self._ended) > _ENDED_KEPT:
            old = self._ended.popleft()
            gone = self._orders.get(old)
            if gone is not None and gone.terminal:
                del self._orders[old]
                self._by_venue_id.pop(gone.venue_order_id, None)

    async def _reject(self, coid: str, symbol: str, reason: str) -> None:
        async with self._lock:
            known = self._orders.get(coid)
            if known is not None:
                if known.terminal:
                    return
                self._end(coid, known)
            now = self.clock.now_ns()
            await self.emit(OrderRejected(now, now, coid, symbol, reason))

    async def _on_orders(
        self, orders: Sequence[Mapping[str, Any]], *, streamed: bool = False
    ) -> None:
        """Order updates (REST replies, lookups, the stream): accepted once, then fills of a
        reply that carries them (spot ``fills``), then canceled/rejected once."""
        for order in orders:
            coid = order.get("clientOrderId")
            if not coid:
                continue
            coid = str(coid)
            symbol = str(order.get("symbol"))
            venue_id = str(order.get("id") or "")
            async with self._lock:
                now = self.clock.now_ns()
                known = self._orders.get(coid)
                if known is None:  # not sent by this process: its acceptance is old news
                    known = _Order(
                        symbol,
                        "sell" if order.get("side") == "sell" else "buy",
                        amount(order.get("amount")),
                        accepted=True,
                        streamed_only=streamed,
                    )
                    self._orders[coid] = known
                elif not streamed:
                    known.streamed_only = False
                known.answered = True
                known.last_news_ns = now
                if venue_id:
                    known.venue_order_id = venue_id
                    self._by_venue_id[venue_id] = coid
                status = order.get("status")
                if status == "rejected":
                    if not known.terminal:
                        self._end(coid, known)
                        reason = self._reject_reason(order)
                        await self.emit(OrderRejected(now, now, coid, symbol, reason))
                    continue
                ts = ms_to_ns(order.get("lastUpdateTimestamp") or order.get("timestamp"), now)
                await self._accept(coid, known, ts, now)
                for trade in order.get("trades") or ():
                    await self._fill(trade, coid=coid, order=order, now=now)
                if status in ("canceled", "expired") and not known.terminal:
                    self._end(coid, known)
                    reason = known.cancel_reason or str(status)
                    await self.emit(OrderCanceled(ts, now, coid, symbol, reason))
                elif status == "closed" and not known.terminal:
                    self._end(coid, known)

    def _reject_reason(self, order: Mapping[str, Any]) -> str:
        info = order.get("info") or {}
        raw = info.get("r") if isinstance(info, Mapping) else None
        return f"rejected by the exchange{f': {raw}' if raw and raw != 'NONE' else ''}"

    async def _accept(self, coid: str, known: _Order, ts: int, now: int) -> None:
        if known.accepted:
            return
        known.accepted = True
        await self.emit(OrderAccepted(ts, now, coid, known.venue_order_id, known.symbol))

    async def _on_trades(self, trades: Sequence[Mapping[str, Any]]) -> None:
        for trade in trades:
            tid = trade.get("id")
            if tid is None or self._seen(str(tid), trade, None):
                continue
            coid = self.spec.trade_client_order_id(trade)
            venue_id = str(trade.get("order") or "")
            if coid is None:
                coid = self._by_venue_id.get(venue_id)
            if coid is None and venue_id:
                coid = await self._coid_of(venue_id, str(trade.get("symbol")))
            async with self._lock:
                await self._fill(trade, coid=coid or "", order=None, now=self.clock.now_ns())

    def _seen(self, tid: str, trade: Mapping[str, Any], order: Mapping[str, Any] | None) -> bool:
        symbol = str(trade.get("symbol") or (order or {}).get("symbol"))
        return self._seen_trades.seen(tid, symbol, _trade_ms(trade, order))

    async def _coid_of(self, venue_id: str, symbol: str) -> str | None:
        """The client order id of an order known only by the exchange's id (a REST trade of an
        order this process did not place)."""
        client = self._require_client()
        api = "futures" if is_perp(symbol) else "spot"
        try:
            order = await self._call(api, "fetchOrder", client.fetch_order, venue_id, symbol)
        except ExchangeError:
            return None
        coid = order.get("clientOrderId")
        if coid:
            self._by_venue_id[venue_id] = str(coid)
            return str(coid)
        return None

    async def _fill(
        self, trade: Mapping[str, Any], *, coid: str, order: Mapping[str, Any] | None, now: int
    ) -> None:
        """Emit one trade as OrderFilled unless already emitted (the caller holds the lock)."""
        tid = trade.get("id")
        if tid is None or self._seen(str(tid), trade, order):
            return
        symbol = str(trade.get("symbol") or (order or {}).get("symbol"))
        if symbol not in self._instruments:
            return
        # read before the trade counts as seen: an unreadable one is read again by a catch-up
        fee = trade.get("fee") or {}
        if not isinstance(fee, Mapping):
            raise ValueError(f"trade {tid}: fee {fee!r}")
        qty, price = amount(trade.get("amount")), amount(trade.get("price"))
        fee_cost = amount(fee.get("cost"))
        if not (qty.is_finite() and qty > 0 and price.is_finite() and price > 0):
            raise ValueError(f"trade {tid}: quantity {qty} at price {price}")
        if not fee_cost.is_finite():
            raise ValueError(f"trade {tid}: fee {fee_cost}")
        venue_id = str(trade.get("order") or (order or {}).get("id") or "")
        known = self._orders.get(coid)
        side: Side = "sell" if (trade.get("side") or (order or {}).get("side")) == "sell" else "buy"
        if known is None and coid:  # not sent by this process: no OrderAccepted of ours
            known = _Order(symbol, side, ZERO, answered=True, accepted=True)
            self._orders[coid] = known
        ts_ms = trade.get("timestamp")
        if ts_ms is None and order is not None:
            ts_ms = order.get("lastTradeTimestamp") or order.get("timestamp")
        ts = ms_to_ns(ts_ms, now)
        if known is not None:
            if venue_id and not known.venue_order_id:
                known.venue_order_id = venue_id
                self._by_venue_id[venue_id] = coid
            known.last_news_ns = now
            await self._accept(coid, known, ts, now)
        liquidity: Liquidity = "maker" if trade.get("takerOrMaker") == "maker" else "taker"
        if coid.startswith("autoclose-") or coid.startswith("adl_autoclose"):
            liquidity = "liquidation"
        seen_ms: int | None = None
        if ts_ms is not None:  # never past the clock: a time from the future would skip fills
            seen_ms = min(ts // NS_PER_MILLISECOND, now // NS_PER_MILLISECOND)
            latest = self._fills_after_ms.get(symbol, seen_ms)
            self._fills_after_ms[symbol] = max(latest, seen_ms)
        self._seen_trades.add(str(tid), symbol, _trade_ms(trade, order), seen_ms)
        self._fills_emitted += 1
        await self.emit(
            OrderFilled(
                ts,
                now,
                coid,
                venue_id,
                str(tid),
                symbol,
                side,
                qty,
                price,
                fee_cost,
                str(fee.get("currency") or quote_of(symbol)),
                liquidity,
            )
        )
        self._filled.set()
        self._news += 1

    async def _on_balance(
        self, api: AccountApi, balance: Mapping[str, Any], *, fresh: bool
    ) -> None:
        """Balance statements; only the rows that changed since the last one emitted (all of
        them when ``fresh``: the account after a catch-up)."""
        now = self.clock.now_ns()
        events = self._balances(api, balance, now, rest=False)
        self._news += 1
        async with self._lock:
            for event in events:
                key = (event.account, event.asset)
                value = (event.free, event.locked)
                if not fresh and self._last_balance.get(key) == value:
                    continue
                self._last_balance[key] = value
                await self.emit(event)

    async def _on_positions(self, positions: Sequence[Mapping[str, Any]]) -> None:
        now = self.clock.now_ns()
        self._news += 1
        async with self._lock:
            # a streamed position ccxt could not read is not booked (the stream says them all)
            for p in positions:
                missing = [k for k in ("entryPrice", "unrealizedPnl") if p.get(k) is None]
                if missing:
                    raise ValueError(f"{p.get('symbol')} position without {', '.join(missing)}")
            ours = [p for p in positions if p.get("symbol") in self._instruments]
            events = [self._position(p, now) for p in ours]
            for event in events:
                await self.emit(event)

    async def _on_funding(
        self,
        incomes: Sequence[Mapping[str, Any]],
        histories: Mapping[str, Mapping[int, tuple[Decimal, Decimal]]],
    ) -> int:
        """FundingPaid for each settlement not reported yet. Its rate and mark are the
        exchange's for that funding time (``histories``: symbol → ms → (rate, mark)), the
        position the one the payment implies (``−amount / (mark × rate)`` on the lot grid);
        without history, the last mark, rate and position the venue saw."""
        now = self.clock.now_ns()
        emitted = 0
        ordered = sorted(incomes, key=lambda i: (i.get("timestamp") or 0, str(i.get("id"))))
        async with self._lock:
            for income in ordered:
                iid = income.get("id")
                symbol = str(income.get("symbol"))
                ts_ms = income.get("timestamp")
                ts = ms_to_ns(ts_ms, now)
                if iid is None or str(iid) in self._seen_funding or symbol not in self._instruments:
                    continue
                self._seen_funding.add(str(iid))
                if ts_ms is not None:
                    after = max(self._funding_after_ms.get(symbol, 0), int(ts_ms) + 1)
                    self._funding_after_ms[symbol] = after
                if (symbol, ts) in self._seen_funding_at:
                    continue
                self._seen_funding_at.add((symbol, ts))
                paid = amount(income.get("amount"))
                mark, rate = self._marks.get(symbol, (ZERO, ZERO))
                qty = self._positions.get(symbol, ZERO)
                history = histories.get(symbol, {})
                known = _nearest(history, int(ts_ms)) if ts_ms is not None else None
                if known is not None:
                    rate, mark = known
                    if mark * rate != 0:
                        qty = self._instruments[symbol].round_qty(abs(paid / (mark * rate)))
                        qty = -qty if paid * rate > 0 else qty
                await self.emit(
                    FundingPaid(
                        ts,
                        now,
                        symbol,
                        qty,
                        mark,
                        rate,
                        paid,
                        str(income.get("code") or quote_of(symbol)),
                    )
                )
                emitted += 1
        return emitted

    # ------------------------------------------------------------------ catch-up

    async def _catch_up(self, why: str) -> None:
        """Fills, funding and orders the streams may have missed, then the account afresh."""
        client = self._require_client()
        async with self._catch_up_lock:
            fills = funding = 0
            try:
                trades: list[Mapping[str, Any]] = []
                for symbol in (*self.spot, *self.perp):
                    trades += await self._my_trades(client, symbol, self._trades_since_ms(symbol))
                trades.sort(key=lambda t: (t.get("timestamp") or 0, str(t.get("id"))))
                before = self._fills_emitted
                await self._on_trades(trades)
                fills = self._fills_emitted - before
                funding = await self._poll_funding()
                open_found = 0
                for symbol in (*self.spot, *self.perp):
                    api = "futures" if is_perp(symbol) else "spot"
                    orders = await self._call(api, "openOrders", client.fetch_open_orders, symbol)
                    open_found += len(orders)
                    await self._on_orders(orders)
                open_ids = {
                    coid
                    for coid, o in self._orders.items()
                    if o.ours and o.accepted and not o.terminal
                }
                for coid in sorted(open_ids):
                    known = self._orders[coid]
                    found = await self._fetch_order(client, coid, known.symbol)
                    if found is not None and found.get("status") != "open":
                        await self._on_orders([found])
                held = {symbol for symbol, qty in self._positions.items() if qty != 0}
                account = await self.account()
            except ExchangeError as e:
                raise VenueError(self._text(f"{self.name}: catch-up: {e}")) from None
            await self._emit_statement(account, held)
            now = self.clock.now_ns()
            await self.emit(
                VenueConnectionChanged(
                    now,
                    now,
                    self.name,
                    "account",
                    "caught_up",
                    f"{why}: {fills} fills, {funding} funding, {open_found} open orders",
                )
            )

    async def _emit_statement(
        self, account: Sequence[Message], held: Collection[str], *, news: int | None = None
    ) -> bool:
        """The account afresh (every balance and position, changed or not: a statement the
        streams delivered out of order is corrected); a perp of ``held`` (non-zero before the
        statement was read) that it does not list is flat. With ``news`` (the streams' count
        when the statement was read): nothing is emitted if the streams reported since (the
        statement predates what they said); returns whether it was emitted."""
        async with self._lock:
            if news is not None and news != self._news:
                return False
            for event in account:
                if isinstance(event, BalanceUpdated):
                    self._last_balance[(event.account, event.asset)] = (event.free, event.locked)
                await self.emit(event)
            # a closed position is absent from the statement (flat ones are not listed)
            listed = {e.symbol for e in account if isinstance(e, PositionUpdated)}
            for symbol in sorted(set(held) - listed):
                self._positions[symbol] = ZERO
                mark = self._marks.get(symbol, (ZERO, ZERO))[0]
                now = self.clock.now_ns()
                await self.emit(
                    PositionUpdated(now, now, symbol, ZERO, ZERO, mark, ZERO, ZERO, None)
                )
        return True

    async def _refresh_after_fills(self) -> None:
        """A statement over REST once fills have been quiet for :data:`_REFRESH_QUIET_S`. The
        streams bring a fill and the balance it moved on different sockets (Binance's unified
        account: a perp fill's USDT on the spot socket), in any order: a statement that predates
        a fill the engine booked would leave its cash off until the next statement.

        A statement read while the streams reported a fill, a balance or a position (its
        answer slow, the exchange's reply overtaken) is older than what they said: it is not
        emitted, and read again (at most :data:`_STATEMENT_TRIES` times in a row). A failed
        read is tried again after :data:`_STATEMENT_RETRY_S` (until one succeeds or as often)."""
        tries = 0
        while True:
            await self._filled.wait()
            quiet = False
            while not quiet:  # until no fill came for a while
                self._filled.clear()
                try:
                    await asyncio.wait_for(self._filled.wait(), _REFRESH_QUIET_S)
                except TimeoutError:
                    quiet = True
            tries += 1
            try:
                async with self._catch_up_lock:
                    held = {symbol for symbol, qty in self._positions.items() if qty != 0}
                    news = self._news
                    account = await self.account()
                    if await self._emit_statement(account, held, news=news):
                        tries = 0
                        continue
                log.info("%s: statement after fills overtaken by the streams", self.name)
            except (VenueError, ExchangeError) as e:
                log.warning("%s: statement after fills: %s", self.name, self._text(f"{e}"))
                await asyncio.sleep(_STATEMENT_RETRY_S)
            if tries < _STATEMENT_TRIES:
                self._filled.set()  # read it again
            else:
                tries = 0

    def _trades_since_ms(self, symbol: str) -> int:
        """Where a catch-up reads ``symbol``'s trades from: a margin before its latest fill
        emitted (a lost message may be a little older than one that came: messages held back
        or reordered), never before the start's; the ones read again are dropped by trade id."""
        latest = self._fills_after_ms.get(symbol)
        if latest is None:
            return self._fills_start_ms
        return max(self._fills_start_ms, latest - _CATCH_UP_MARGIN_MS)

    async def _my_trades(self, client: Any, symbol: str, since_ms: int) -> list[Mapping[str, Any]]:
        api = "futures" if is_perp(symbol) else "spot"
        found: list[Mapping[str, Any]] = []
        since = since_ms
        while True:
            page = await self._call(
                api, "myTrades", client.fetch_my_trades, symbol, since, _TRADES_PAGE
            )
            found += page
            if len(page) < _TRADES_PAGE:
                return found
            last = max(int(t.get("timestamp") or since) for t in page)
            if last <= since:
                return found
            since = last

    async def _poll_funding(self) -> int:
        """Funding income since the last reported settlement of each perp: one income call for
        every perp, paged by ``startTime`` until a page comes back short (a burst of settlements
        is read whole), then each perp's funding-rate history of those settlements."""
        if not self.perp:
            return 0
        client = self._require_client()
        since = min(self._funding_after_ms.get(symbol, 0) for symbol in self.perp)
        fresh: list[Mapping[str, Any]] = []
        while True:
            page = await self._call(
                "futures", "income", client.fetch_funding_history, None, since, _INCOME_PAGE
            )
            fresh += [
                i
                for i in page
                if i.get("symbol") in self._funding_after_ms
                and str(i.get("id")) not in self._seen_funding
                and int(i.get("timestamp") or 0) >= self._funding_after_ms[str(i["symbol"])]
            ]
            if len(page) < _INCOME_PAGE:
                break
            last = max(int(i.get("timestamp") or since) for i in page)
            since = last if last > since else since + 1
        if not fresh:
            return 0
        histories: dict[str, dict[int, tuple[Decimal, Decimal]]] = {}
        for symbol in sorted({str(i["symbol"]) for i in fresh}):
            times = [int(i.get("timestamp") or 0) for i in fresh if i.get("symbol") == symbol]
            rows = await self._call(
                "futures",
                "fundingRate",
                client.fetch_funding_rate_history,
                symbol,
                min(times) - _FUNDING_MATCH_MS,
                _FUNDING_RATE_PAGE,
            )
            history = histories.setdefault(symbol, {})
            for row in rows:
                mark = self.spec.funding_mark(row)
                if row.get("timestamp") is not None and mark is not None:
                    history[int(row["timestamp"])] = (amount(row.get("fundingRate")), amount(mark))
        return await self._on_funding(fresh, histories)

    # ------------------------------------------------------------------ channels

    def _make_channels(self) -> list[_Channel]:
        """The subscriptions. Their ``watch_*`` calls keep ccxt subscribed and surface a drop;
        what they return is not used: the stream hooks (``ExchangeSpec.tap``) queue every
        update as ccxt handles it, and :meth:`_pump` reports it."""
        client = self._client
        channels: list[_Channel] = []
        if self.spot:
            quotes = _Channel("quotes:spot", None)
            quotes.watches.append(_bind(client.watch_bids_asks, list(self.spot)))
            channels.append(quotes)
        if self.perp:
            quotes = _Channel("quotes:perp", None)
            quotes.watches.append(_bind(client.watch_bids_asks, list(self.perp)))
            channels.append(quotes)
            marks = _Channel("marks", None)
            marks.watches.append(_bind(client.watch_mark_prices, list(self.perp)))
            channels.append(marks)
        for api, params in (("spot", {"type": "spot"}), ("futures", {"type": "swap"})):
            if (api == "spot" and not self.spot) or (api == "futures" and not self.perp):
                continue
            user = _Channel(f"user:{api}", api)
            user.watches += [
                _bind(client.watch_orders, None, None, None, params),
                _bind(client.watch_my_trades, None, None, None, params),
                _bind(client.watch_balance, params),
            ]
            if api == "futures":
                user.watches.append(_bind(client.watch_positions, list(self.perp)))
            channels.append(user)
        return channels

    def _push(self, kind: str, item: Any) -> None:
        """A stream update, as ccxt handles it (called synchronously by the hooks). Market data
        goes straight to the engine when nothing is waiting before it (the decision it triggers
        starts in this same loop callback, not one hop later); everything else, and market data
        behind other updates, is queued for :meth:`_pump`, which reports in arrival order."""
        if (
            (kind == "quote" or kind == "mark")
            and not self._reporting
            and not self._updates.qsize()
        ):
            with decimal.localcontext(_DECIMAL):
                try:
                    symbol = self._market_symbol(item)
                    events: list[Message] = [
                        *(
                            self._quote_events({symbol: item})
                            if kind == "quote"
                            else self._mark_events({symbol: item})
                        )
                    ]
                except Exception:  # reported by the pump, as it reports every unreadable update
                    pass
                else:
                    for event in events:  # one not taken (journal backlogged) queues the rest
                        if self._updates.qsize() or not self.emit_market_now(event):
                            self._updates.put_nowait(("event", event))
                    return
        self._updates.put_nowait((kind, item))

    async def _reply_in_order(self, reply: Mapping[str, Any]) -> None:
        """Report an order's reply behind the stream updates received before it. The stream's
        balance statements are queued for :meth:`_pump`; a fill reported from the reply at once
        would overtake the statements from before it, and the ledger would book the difference
        between such a statement and its fills as a transfer (and back at the next statement,
        at another price). Reported by the caller when the pump is not running (not started,
        or closed), and raising what the report raised."""
        pump = self._pumping
        if pump is None or pump.done():
            await self._on_orders([reply])
            return
        reported: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._updates.put_nowait(("reply", (reply, reported)))
        await asyncio.wait([reported, pump], return_when=asyncio.FIRST_COMPLETED)
        if not reported.done():  # the pump ended with the reply still queued
            await self._on_orders([reply])
            return
        reported.result()

    async def _pump(self) -> None:
        """Report the stream updates in the order the exchange sent them."""
        while True:
            kind, item = await self._updates.get()
            self._reporting = True
            try:
                if kind == "reply":
                    await self._report_reply(*item)
                else:
                    await self._report(kind, item)
            except Exception as e:  # one bad update must not stop the reports of the others
                await self._unreadable_update(self._channel_of(kind, item), item, e)
            finally:
                self._reporting = False

    async def _report_reply(self, reply: Mapping[str, Any], reported: asyncio.Future[None]) -> None:
        """An order's reply, queued by :meth:`_reply_in_order`: what reporting it raised goes to
        that caller (an order's reply is not stream data)."""
        try:
            await self._on_orders([reply])
        except Exception as e:
            if not reported.done():
                reported.set_exception(e)
        else:
            if not reported.done():
                reported.set_result(None)

    async def _report(self, kind: str, item: Any) -> None:
        if kind == "event":  # market data the engine could not take synchronously
            await self.emit(item)
        elif kind == "unreadable":
            url, frame, error = item
            await self._unreadable_update(self.spec.channel_of_url(self._client, url), frame, error)
        elif kind == "order":
            await self._on_orders([item], streamed=True)
        elif kind == "trade":
            if self._order_known(item):
                await self._on_trades([item])
            else:  # not this process's order, or not a real one: the exchange's REST says
                await self._unknown_order_fill(item)
        elif kind == "balance":
            api, balance, raw = item
            if isinstance(raw, Mapping) and self.spec.is_funding_update(raw):
                self._funding_wanted.set()
            await self._on_balance(api, balance, fresh=False)
        elif kind == "positions":
            await self._on_positions(item)
        elif kind == "quote":
            await self._on_quotes({self._market_symbol(item): item})
        elif kind == "mark":
            await self._on_marks({self._market_symbol(item): item})

    def _market_symbol(self, ticker: Mapping[str, Any]) -> str:
        """The symbol of a streamed ticker; one the exchange does not list is unreadable (a
        market it lists that we do not trade is not ours to report: ignored)."""
        symbol = ticker.get("symbol")
        if not isinstance(symbol, str) or symbol not in (self._client.markets or {}):
            raise ValueError(f"unknown symbol {symbol!r}")
        return symbol

    def _order_known(self, trade: Mapping[str, Any]) -> bool:
        """Whether a streamed trade is of an order this venue knows (sent, looked up or reported
        by the exchange)."""
        coid = self.spec.trade_client_order_id(trade)
        if coid is None:
            coid = self._by_venue_id.get(str(trade.get("order") or ""))
        known = None if coid is None else self._orders.get(coid)
        return known is not None and not known.streamed_only

    async def _unknown_order_fill(self, trade: Mapping[str, Any]) -> None:
        """A streamed fill of an order this venue does not know is not booked from the stream:
        a catch-up reads the account's trades over REST and reports it if the exchange has it."""
        channel = self._channel_of("trade", trade)
        coid = self.spec.trade_client_order_id(trade)
        detail = self._text(
            f"fill {trade.get('id')} of unknown order {coid or trade.get('order')!s} "
            f"({trade.get('symbol')}): read again over REST"
        )
        log.warning("%s: %s", self.name, detail)
        now = self.clock.now_ns()
        await self.emit(VenueMessageRejected(now, now, self.name, channel, "unknown_order", detail))
        self._unreadable[channel] = self._unreadable.get(channel, 0) + 1
        self._unreadable_seen.set()

    def _channel_of(self, kind: str, item: Any) -> str:
        """The channel a parsed stream update came on: ``market`` or ``user:<api>``."""
        if kind in ("quote", "mark"):
            return "market"
        if kind == "balance" and isinstance(item, tuple) and item:
            return f"user:{item[0]}"
        first = item[0] if kind == "positions" and isinstance(item, list) and item else item
        symbol = first.get("symbol") if isinstance(first, Mapping) else None
        return "user:futures" if kind == "positions" or is_perp(str(symbol)) else "user:spot"

    async def _unreadable_update(self, channel: str, message: Any, error: BaseException) -> None:
        """A stream message that could not be read: dropped, reported
        (``VenueMessageRejected``); on a user channel, a catch-up over REST follows
        (:meth:`_catch_up_after_unreadable`)."""
        reason = "malformed_json" if isinstance(error, json.JSONDecodeError) else "unreadable"
        shown = message if isinstance(message, str) else repr(message)
        cut = shown if len(shown) <= _SHOWN_CHARS else shown[:_SHOWN_CHARS] + "..."
        detail = self._text(f"{type(error).__name__}: {error}; message: {cut}")
        log.warning("%s: %s message dropped: %s", self.name, channel, detail)
        now = self.clock.now_ns()
        await self.emit(VenueMessageRejected(now, now, self.name, channel, reason, detail))
        if channel.startswith("user:"):
            self._unreadable[channel] = self._unreadable.get(channel, 0) + 1
            self._unreadable_seen.set()

    async def _catch_up_after_unreadable(self) -> None:
        """One catch-up for the unreadable user-stream messages since the last one (what they
        said is read again over REST); a failed one is retried."""
        while True:
            await self._unreadable_seen.wait()
            self._unreadable_seen.clear()
            counts, self._unreadable = self._unreadable, {}
            why = ", ".join(
                f"{n} {c} message(s) not booked from the stream" for c, n in sorted(counts.items())
            )
            try:
                await self._catch_up(why)
            except (VenueError, ExchangeError) as e:
                log.warning("%s: catch-up after %s: %s", self.name, why, self._text(f"{e}"))
                for channel, n in counts.items():
                    self._unreadable[channel] = self._unreadable.get(channel, 0) + n
                self._unreadable_seen.set()
                await asyncio.sleep(_UNREADABLE_RETRY_S)

    def _market_time(self, kind: str, symbol: str, ms: Any, now: int) -> int:
        """A market update's exchange time in ns. One without (or with one ccxt could not read)
        takes the last exchange time of its series, or the clock's if there is none: stamped
        by our clock, a series stamped by the exchange's would take every later point for out
        of order (the clocks differ)."""
        key = (kind, symbol)
        ts = strict_ms_to_ns(ms, -1)
        if ts == -1:
            return self._market_ts.get(key, now)
        self._market_ts[key] = ts
        return ts

    async def _on_quotes(self, tickers: Mapping[str, Mapping[str, Any]]) -> None:
        """Every quote the exchange sent (a lagging engine coalesces market data itself)."""
        for event in self._quote_events(tickers):
            await self.emit(event)

    def _quote_events(self, tickers: Mapping[str, Mapping[str, Any]]) -> list[QuoteTick]:
        now = self.clock.now_ns()
        events = []
        for symbol in (*self.spot, *self.perp):
            t = tickers.get(symbol)
            if t is None:
                continue
            bid, ask = market_price(t.get("bid")), market_price(t.get("ask"))
            if bid is None or ask is None:
                raise ValueError(f"{symbol} quote without {'bid' if bid is None else 'ask'}")
            events.append(
                QuoteTick(
                    self._market_time("quote", symbol, t.get("timestamp"), now),
                    now,
                    symbol,
                    bid,
                    ask,
                    amount(t.get("bidVolume")),
                    amount(t.get("askVolume")),
                )
            )
        return events

    async def _on_marks(self, tickers: Mapping[str, Mapping[str, Any]]) -> None:
        for event in self._mark_events(tickers):
            await self.emit(event)

    def _mark_events(self, tickers: Mapping[str, Mapping[str, Any]]) -> list[MarkPriceUpdated]:
        now = self.clock.now_ns()
        events = []
        for symbol in self.perp:
            t = tickers.get(symbol)
            if t is None:
                continue
            fields = self.spec.mark_fields(t)
            if fields is None:
                raise ValueError(f"{symbol} mark update without a mark price")
            if fields.funding_rate is None:
                raise ValueError(f"{symbol} mark update without a funding rate")
            mark, rate = market_price(fields.mark), market_price(fields.funding_rate)
            if mark is None or rate is None:
                raise ValueError(f"{symbol} mark update without a mark price or funding rate")
            index = market_price(fields.index)
            ts = self._market_time("mark", symbol, t.get("timestamp"), now)
            next_ms = strict_ms_to_ns(fields.next_funding_ms or 0, 0) // NS_PER_MILLISECOND
            if mark.is_finite() and mark > 0 and rate.is_finite():
                self._marks[symbol] = (mark, rate)
            if next_ms:
                previous = self._next_funding_ms.get(symbol)
                if previous is not None and next_ms > previous:
                    self._funding_wanted.set()  # the funding time passed: a settlement was made
                    self._funding_passed_ms[symbol] = previous
                self._next_funding_ms[symbol] = next_ms
            events.append(
                MarkPriceUpdated(
                    ts,
                    now,
                    symbol,
                    mark,
                    index if index is not None and index.is_finite() else mark,
                    rate,
                    next_ms * NS_PER_MILLISECOND,
                )
            )
        return events

    async def _loop(self, channel: _Channel, watch: _Watch) -> None:
        """One watch call in a loop; the channel is up at its first message at the latest."""
        while True:
            await watch()
            channel.message.set()
            # re-armed at once, in the step the update woke it in: a close frame right behind
            # this update is then handled one loop iteration later, and fails the call. A
            # socket that closes while no watch call is pending (a yield here first let a fault
            # campaign's user-stream drop pass so; so does ccxt refreshing the listenKey over
            # REST inside the re-armed call) is reopened by ccxt's next call without a word:
            # :meth:`_socket_ended` hears of the close itself and ends the channel's attempt
            # (``_Channel.broken``), so the drop is reported, counted and caught up all the same.

    async def _run_channel(self, channel: _Channel) -> None:
        attempt = 0
        while not self._closing:
            channel.message = asyncio.Event()
            broken: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
            channel.broken = broken
            tasks = [asyncio.ensure_future(self._loop(channel, watch)) for watch in channel.watches]
            waiter = asyncio.ensure_future(self._wait_ready(channel))
            error: BaseException | None = None
            try:
                first: list[asyncio.Future[Any]] = [waiter, broken, *tasks]
                done, _ = await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
                if waiter in done and broken not in done:
                    channel.connected = True
                    now = self.clock.now_ns()
                    await self.emit(
                        VenueConnectionChanged(
                            now, now, self.name, channel.name, "connected", "", attempt
                        )
                    )
                    if attempt > 0:
                        self._reconnects += 1
                        if channel.api is not None:
                            await self._catch_up(f"reconnect {channel.name}")
                    attempt = 0
                    then: list[asyncio.Future[Any]] = [broken, *tasks]
                    done, _ = await asyncio.wait(then, return_when=asyncio.FIRST_COMPLETED)
                error = next(
                    (t.exception() for t in done if t in tasks and not t.cancelled()), None
                )
                if error is None and broken.done():  # a socket closed under no pending call
                    error = broken.result()
            except VenueError as e:  # a catch-up failed: treat like a drop
                error = e
            finally:
                channel.broken = None
                if not broken.done():
                    broken.cancel()
                for task in (waiter, *tasks):
                    task.cancel()
                for task in (waiter, *tasks):
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            if self._is_closing():
                return
            channel.connected = False
            if channel.api is not None:
                self.spec.reset_user_stream(self._client, channel.api)
            attempt += 1
            now = self.clock.now_ns()
            reason = self._text(f"{type(error).__name__}: {error}") if error else "stream ended"
            log.warning(
                "%s %s disconnected (%s), reconnect attempt %d",
                self.name,
                channel.name,
                reason,
                attempt,
            )
            await self.emit(
                VenueConnectionChanged(
                    now, now, self.name, channel.name, "disconnected", reason, attempt
                )
            )
            await asyncio.sleep(backoff_s(attempt, self._rng))

    async def _wait_ready(self, channel: _Channel) -> None:
        client = self._client
        while not channel.message.is_set():
            if channel.api is not None and self.spec.user_stream_ready(client, channel.api):
                return
            if channel.api is None and self._public_ready(channel):
                return
            await asyncio.sleep(_READY_POLL_S)

    def _public_ready(self, channel: _Channel) -> bool:
        """A public channel is up once its socket is open (quotes may be quiet for a while)."""
        for ws in list(self._client.clients.values()):
            try:
                if not handshake_done(ws):
                    continue
            except (AttributeError, asyncio.InvalidStateError):
                continue
            if self._carries(channel, self._socket_hashes(ws)):
                return True
        return False

    @staticmethod
    def _socket_hashes(ws: Any) -> set[str]:
        """What a ccxt socket is subscribed to or waited on (its message hashes)."""
        try:
            return {str(h) for h in (*ws.futures, *ws.subscriptions)}
        except (AttributeError, TypeError):
            return set()

    def _carries(self, channel: _Channel, hashes: set[str]) -> bool:
        """Whether a socket with these message hashes carries public ``channel``."""
        if channel.name.startswith("quotes"):
            symbols = self.spot if channel.name == "quotes:spot" else self.perp
            return bool({f"bidask:bookTicker@{s}" for s in symbols} & hashes)
        return any(h.startswith("markPrice") for h in hashes)

    # ------------------------------------------------------------------ housekeeping

    async def _housekeeping(self) -> None:
        """Silent-order status poll, and funding income after each settlement: announced on the
        user stream (``FUNDING_FEE``), seen as a next funding time that moved on, or a second
        past the funding time the venue knew (a missed announcement)."""
        while True:
            try:
                await self._poll_silent_orders()
                now_ms = self.clock.now_ns() // NS_PER_MILLISECOND
                grace_ms = _FUNDING_GRACE_NS // NS_PER_MILLISECOND
                times = (*self._next_funding_ms.items(), *self._funding_passed_ms.items())
                for symbol, funding_ms in times:
                    if (
                        now_ms >= funding_ms + grace_ms
                        and self._funding_polled_ms.get(symbol, -1) < funding_ms
                    ):
                        self._funding_polled_ms[symbol] = funding_ms
                        self._funding_wanted.set()
                if self._funding_wanted.is_set() and self._funding_poll_allowed():
                    # cleared first: an announcement during the poll asks for another one
                    self._funding_wanted.clear()
                    self._funding_polled_ns = self.clock.now_ns()
                    await self._poll_funding()
            except Exception as e:  # a failed poll is retried at the next round
                self._funding_wanted.set()
                log.warning(
                    "%s housekeeping: %s: %s", self.name, type(e).__name__, self._text(str(e))
                )
            await asyncio.sleep(_HOUSEKEEPING_S)

    def _funding_poll_cost(self) -> int:
        return self.spec.weight("futures", "income") + len(self.perp) * self.spec.weight(
            "futures", "fundingRate"
        )

    def _funding_poll_allowed(self) -> bool:
        """Whether a funding poll may run now: polls are spaced so that they take at most
        :data:`_FUNDING_SHARE` of the futures budget (one settlement every 8 hours: at once; a
        replay settling every few milliseconds: one poll reads many)."""
        budget = self._budgets["futures"]
        allowance = max(1.0, budget.budget * _FUNDING_SHARE)
        spacing_ns = int(budget.window_ns * self._funding_poll_cost() / allowance)
        return self.clock.now_ns() - self._funding_polled_ns >= spacing_ns

    async def _poll_silent_orders(self) -> None:
        if self._silent_ns <= 0:
            return
        client = self._require_client()
        now = self.clock.now_ns()
        silent = [
            (coid, o)
            for coid, o in self._orders.items()
            if o.ours and o.answered and not o.terminal and now - o.last_news_ns >= self._silent_ns
        ]
        for coid, known in silent:
            known.last_news_ns = now
            found = await self._fetch_order(client, coid, known.symbol)
            if found is None:
                await self.emit(
                    OrderStatusReported(
                        now,
                        now,
                        coid,
                        known.venue_order_id,
                        known.symbol,
                        known.side,
                        known.qty,
                        ZERO,
                        None,
                        "unknown",
                    )
                )
                continue
            status = self._status(found)
            await self.emit(
                OrderStatusReported(
                    now,
                    now,
                    coid,
                    status.venue_order_id,
                    status.symbol,
                    status.side,
                    status.qty,
                    status.filled_qty,
                    status.avg_price,
                    status.state,
                )
            )
            if status.state in ("filled", "canceled", "rejected"):
                await self._on_orders([found])
