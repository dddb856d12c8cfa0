"""Stream-side faults of the loopback exchange: seeded, switchable, counted by kind.

A :class:`StreamFaultPlan` holds a rate per kind (the chance that one opportunity gets the fault)
and a seeded random generator: the same seed and the same sequence of opportunities give the same
faults (the plan decides; the server only asks). :class:`StreamFaults` applies the plan's
decisions to a :class:`~ballast.adapters.loopback.server.LoopbackServer`:

- ``ws_drop`` (each stream message): the socket it was for is closed abruptly (no close frame)
  before the message is sent: the client must reconnect and catch up what it missed;
- ``half_open`` (each stream message): the server stops sending on that socket and stops reading
  it (no pong to the client's pings) while the TCP connection stays open; the client must notice
  by itself (ping/pong keep-alive). The socket is closed after :attr:`StreamFaults.half_open_s`;
- ``duplicate`` (each stream message): the message is sent twice;
- ``reorder`` (each stream message): the message is held and sent after the next message of the
  same socket (or after :attr:`StreamFaults.reorder_hold_s` if none comes);
- ``listen_key_expired`` (each message of a futures user-data socket): the listenKey expires now,
  before the message (``listenKeyExpired`` event, its sockets closed, refused until a new
  ``POST /fapi/v1/listenKey``);
- ``close_behind`` (each account update of a user-data socket: futures ``ACCOUNT_UPDATE``, spot
  ``outboundAccountPosition``): the message is sent and the socket closed right behind it, a
  close frame queued in the same step (no await between: the client reads the update and the
  close together, so ccxt may handle the close while none of its watch calls is pending); the
  socket is forgotten first, so what the exchange pushes until the client has reconnected (the
  next pieces of a ``partial_fill``, say) is lost to the stream: the client must notice the
  close by itself and catch up over REST;
- ``fill_before_ack`` (each market order placed): the REST reply to the order waits until its
  first fill has been pushed on the user streams (at most :attr:`StreamFaults.ack_hold_s`);
- ``partial_fill`` (each market order): the order fills in 2 to 4 trades at the same price (the
  simulated exchange's :attr:`~ballast.adapters.sim.exchange.SimExchange.split_fills`), each its
  own execution report and ``myTrades`` row.

Switching: the kinds are registered in :data:`ballast.adapters.loopback.faults.KINDS` (owner
``"ws"``), so ``ballast venue serve --faults SPEC --fault-seed N`` names them with the REST kinds;
:func:`stream_plan` takes them out of the parsed spec (:func:`parse_stream_faults` reads a
stream-only ``"kind=rate,..."``); :func:`install_stream_faults` (before the server starts)
attaches the plan and the control route ``/_loopback/stream-faults``: ``GET`` the rates, seed and
counts by kind, ``POST`` JSON ``{"rates": {kind: rate}, "seed": n}`` (or the query
``?rates=kind=rate,...&seed=n``) to set them (the counts start over).

The partial fills are not part of the exchange's input log (``--state``): a restarted exchange
replays its orders unsplit.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from ballast.adapters.loopback import faults as rest_faults
from ballast.engine.kernel.commands import SubmitOrder

if TYPE_CHECKING:
    from ballast.adapters.loopback.core import OrderRecord
    from ballast.adapters.loopback.server import LoopbackServer, _Socket

KINDS: Final = (
    "ws_drop",
    "half_open",
    "duplicate",
    "reorder",
    "listen_key_expired",
    "close_behind",
    "fill_before_ack",
    "partial_fill",
)
"""The stream-side fault kinds, in the order the control route lists them."""

STREAM: Final = "ws"
"""Their owner in the shared registry :data:`ballast.adapters.loopback.faults.KINDS`, so that one
``ballast venue serve --faults`` spec names REST and stream kinds alike."""

for _kind in KINDS:
    rest_faults.KINDS.setdefault(_kind, STREAM)

MAX_PIECES: Final = 4


class StreamFaultPlan:
    """Which opportunity gets which fault: a rate in [0, 1] per kind and a seeded generator.
    Every decision draws from the generator (a kind at rate 0 draws nothing), so the faults
    depend only on the seed, the rates and the sequence of questions asked."""

    def __init__(self, rates: Mapping[str, float] | None = None, seed: int = 0) -> None:
        self.rates: dict[str, float] = {}
        self.seed = seed
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self.set(rates or {}, seed)

    def set(self, rates: Mapping[str, float], seed: int) -> None:
        """New rates and seed; the counts start over."""
        checked = {kind: _rate(kind, rate) for kind, rate in rates.items()}
        self.rates = {kind: rate for kind, rate in checked.items() if rate > 0}
        self.seed = seed
        self._rng = random.Random(seed)
        self.counts = Counter()

    @property
    def active(self) -> bool:
        return bool(self.rates)

    def fires(self, kind: str) -> bool:
        """Whether this opportunity of ``kind`` gets the fault (counted if so)."""
        rate = self.rates.get(kind, 0.0)
        if rate <= 0:
            return False
        if self._rng.random() >= rate:
            return False
        self.counts[kind] += 1
        return True

    def pieces(self, cmd: SubmitOrder) -> int:
        """How many trades a market order fills in (1: whole; ``partial_fill``: 2 to 4)."""
        if cmd.order_type != "market" or not self.fires("partial_fill"):
            return 1
        return self._rng.randint(2, MAX_PIECES)

    def report(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "rates": dict(self.rates),
            "counts": {kind: self.counts.get(kind, 0) for kind in KINDS},
        }


def stream_plan(spec: rest_faults.FaultSpec, seed: int) -> StreamFaultPlan:
    """The stream kinds of a ``--faults`` spec (the others are the REST side's) as a plan."""
    return StreamFaultPlan({k: r for k, r in spec.rates.items() if k in KINDS}, seed)


def parse_stream_faults(spec: str) -> dict[str, float]:
    """``"ws_drop=0.01,duplicate=0.05"`` → rates by kind; ``""`` → none. Raises ValueError naming
    the kind (or the part) that is wrong."""
    rates: dict[str, float] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        kind, sep, raw = part.partition("=")
        kind = kind.strip()
        if not sep:
            raise ValueError(f"{part!r}: expected kind=rate")
        try:
            rate = float(raw)
        except ValueError:
            raise ValueError(f"{kind}: rate {raw.strip()!r} is not a number") from None
        rates[kind] = _rate(kind, rate)
    return rates


def _rate(kind: str, rate: float) -> float:
    if kind not in KINDS:
        raise ValueError(f"{kind}: not a stream fault (known: {', '.join(KINDS)})")
    if not 0.0 <= rate <= 1.0:  # NaN fails too
        raise ValueError(f"{kind}: rate {rate} is not within 0..1")
    return float(rate)


class StreamFaults:
    """The plan applied to a server's streams (see the module docstring)."""

    def __init__(self, server: LoopbackServer, plan: StreamFaultPlan) -> None:
        self.server = server
        self.plan = plan
        self.half_open_s = 30.0
        """How long a half-open socket stays open before the server closes it."""
        self.reorder_hold_s = 0.05
        self.ack_hold_s = 2.0
        self._held: dict[_Socket, list[str]] = {}
        self._timers: set[asyncio.TimerHandle] = set()

    # ------------------------------------------------------------------ hooks

    def push(self, sock: _Socket, text: str) -> None:
        """One stream message for ``sock`` (not replies to requests), faults applied."""
        plan = self.plan
        if not plan.active or sock.dropped:
            sock.send_text(text)
            return
        if sock.kind == "futures_private" and plan.fires("listen_key_expired"):
            self.server.expire_listen_key(sock.listen_key)
            return
        if plan.fires("ws_drop"):
            self.server.discard_socket(sock)
            sock.abort()
            return
        if plan.fires("half_open"):
            self._half_open(sock)
            return
        if _user_data(sock) and _account_update(text) and plan.fires("close_behind"):
            self._close_behind(sock, text)
            return
        texts = [text, text] if plan.fires("duplicate") else [text]
        held = self._held.pop(sock, None)
        if held is None and plan.fires("reorder"):
            self._held[sock] = texts
            self._later(self.reorder_hold_s, self._release, sock)
            return
        for one in [*texts, *(held or ())]:
            sock.send_text(one)

    async def before_reply(self, record: OrderRecord) -> None:
        """Before the REST reply to a new order: with ``fill_before_ack``, wait until its first
        fill has been sent on the user streams (or :attr:`ack_hold_s` passed)."""
        if record.cmd.order_type != "market" or not self.plan.active:
            return  # a resting limit order has no fill to send first
        if not self.plan.fires("fill_before_ack"):
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ack_hold_s
        while loop.time() < deadline:
            if record.trade_ids and self.server.user_streams_flushed():
                return
            if not record.is_open and not record.trade_ids:
                return  # ended without a fill (expired, canceled): nothing to send first
            await asyncio.sleep(0.005)

    # ------------------------------------------------------------------ kinds

    def _half_open(self, sock: _Socket) -> None:
        sock.dropped = True  # nothing more is queued for it
        while not sock.queue.empty():  # nor sent: not even a close frame, the writer waits on
            sock.queue.get_nowait()  # this queue forever (cancelled when the socket is aborted)
        sock.queue = asyncio.Queue()
        transport = sock.request.transport
        if transport is not None:
            transport.pause_reading()  # the client's pings go unanswered
        self._later(self.half_open_s, self._close, sock)

    def _close_behind(self, sock: _Socket, text: str) -> None:
        self.server.discard_socket(sock)  # what comes next is not chosen for it: lost to it
        sock.send_text(text)
        sock.dropped = True  # nothing more is queued for it
        sock.queue.put_nowait(None)  # its writer sends the update, then the close frame

    def _close(self, sock: _Socket) -> None:
        self.server.discard_socket(sock)
        sock.abort()

    def _release(self, sock: _Socket) -> None:
        for text in self._held.pop(sock, ()):
            sock.send_text(text)

    def _later(self, delay: float, fn: Any, sock: _Socket) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def run() -> None:
            self._timers.discard(handle)
            fn(sock)

        handle = loop.call_later(delay, run)
        self._timers.add(handle)

    def cancel_timers(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()

    # ------------------------------------------------------------------ control route

    async def control(self, request: web.Request) -> web.StreamResponse:
        """``GET``: rates, seed, counts by kind; ``POST {"rates": {...}, "seed": n}``: set."""
        if request.method == "POST":
            try:
                if "rates" in request.query or "seed" in request.query:
                    body: Any = dict(request.query)
                else:
                    body = await request.json()
                rates = body.get("rates", {})
                if isinstance(rates, str):
                    rates = parse_stream_faults(rates)
                if not isinstance(rates, dict):
                    raise ValueError("rates: give {kind: rate} or 'kind=rate,...'")
                self.plan.set(
                    {str(k): float(v) for k, v in rates.items()}, int(body.get("seed", 0))
                )
            except (ValueError, TypeError, AttributeError) as exc:
                raise web.HTTPBadRequest(text=f"bad stream-faults request: {exc}") from None
        return web.json_response(self.plan.report())


def _user_data(sock: _Socket) -> bool:
    """A futures listenKey socket, or a WS-API socket subscribed to the spot user data."""
    return sock.kind == "futures_private" or (sock.kind == "ws_api" and sock.user)


_ACCOUNT_EVENTS: Final = ('"e":"ACCOUNT_UPDATE"', '"e":"outboundAccountPosition"')


def _account_update(text: str) -> bool:
    """Whether a user-data message is an account update (the server's compact JSON)."""
    return any(event in text for event in _ACCOUNT_EVENTS)


def install_stream_faults(
    server: LoopbackServer, plan: StreamFaultPlan | None = None
) -> StreamFaults:
    """Attach the stream faults of ``plan`` (none on: all off) to ``server`` and its control route
    ``/_loopback/stream-faults``, and split the core's market orders as the plan says; call before
    the server starts."""
    faults = StreamFaults(server, plan if plan is not None else StreamFaultPlan())
    server.stream_faults = faults
    server.core.exchange.split_fills = faults.plan.pieces
    server.add_control("GET", "/_loopback/stream-faults", faults.control)
    server.add_control("POST", "/_loopback/stream-faults", faults.control)
    return faults
