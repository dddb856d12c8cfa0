"""Raw frames on the loopback exchange's WebSockets: what a client does with a message the exchange
should never have sent (fuzzing the client side of the wire).

:func:`inject` queues text frames, exactly as given (malformed JSON included), on the open sockets
of one target, behind whatever the server's writer already has queued for each socket: a frame
injected after a market or account change reaches every socket after that change's message, and
before the next one's (the per-socket queue of :class:`~ballast.adapters.loopback.server.
LoopbackServer`).

Targets: ``spot`` (spot market data sockets), ``futures`` (USDⓈ-M market data: bookTicker,
markPrice), ``futures_user`` (listenKey sockets: ``ORDER_TRADE_UPDATE``, ``ACCOUNT_UPDATE``),
``spot_user`` (WS-API sockets subscribed to the spot user data stream: wrap an event as
``{"subscriptionId": 0, "event": {...}}`` yourself, as Binance does). ``stream`` (optional, market
targets only) keeps the sockets subscribed to that stream name (``btcusdt@bookticker``).

:func:`install` adds the control route ``POST /_loopback/inject`` (JSON ``{"target", "frames":
[text, ...], "stream"?}`` → ``{"sockets": n}``) for a client outside the process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

from aiohttp import web

from ballast.adapters.loopback.server import LoopbackServer

Target = Literal["spot", "futures", "futures_user", "spot_user"]
TARGETS: Final[tuple[Target, ...]] = ("spot", "futures", "futures_user", "spot_user")


def inject(
    server: LoopbackServer, target: Target, frames: Sequence[str], *, stream: str | None = None
) -> int:
    """Queue ``frames`` (raw text, in order) on every open socket of ``target``; returns how many
    sockets got them."""
    if target not in TARGETS:
        raise ValueError(f"unknown inject target {target!r} (one of {', '.join(TARGETS)})")
    chosen = []
    for sock in server.open_sockets():
        if target == "spot_user":
            wanted = sock.kind == "ws_api" and sock.user
        elif target == "futures_user":
            wanted = sock.kind == "futures_private"
        else:
            wanted = sock.kind == target and (stream is None or stream.lower() in sock.streams)
        if wanted:
            chosen.append(sock)
    for sock in chosen:
        for text in frames:
            sock.send_text(text)
    return len(chosen)


def install(server: LoopbackServer) -> None:
    """Add ``POST /_loopback/inject`` (before ``server.start()``)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
            target = body["target"]
            frames = body["frames"]
            stream = body.get("stream")
            if not isinstance(frames, list) or not all(isinstance(f, str) for f in frames):
                raise TypeError("frames must be a list of strings")
            if stream is not None and not isinstance(stream, str):
                raise TypeError("stream must be a string")
            sockets = inject(server, target, frames, stream=stream)
        except (KeyError, ValueError, TypeError) as exc:
            raise web.HTTPBadRequest(text=f"bad inject request: {exc}") from None
        return web.json_response({"sockets": sockets})

    server.add_control("POST", "/_loopback/inject", handler)
