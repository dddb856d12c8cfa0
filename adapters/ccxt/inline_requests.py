"""A WebSocket API request leaves in the step that makes it, not two loop iterations later.

ccxt.pro's ``Exchange.watch`` sends a request (``create_order_ws``, ``cancel_order_ws``: a
message whose answer comes back under the message's own id) from a done callback of the
connection's ``connected`` future, which then starts a task that sends: two turns of the event
loop between the order being ready and its frame being written, with whatever else is ready
running in between (on the engine's quote → order path: the quote watchers re-arming, the
journal's flusher).

:func:`send_requests_inline` replaces ``watch`` on one ccxt.pro instance for exactly that case, a
request on a socket that is already open, with nothing of ccxt's changed but the scheduling: the
same client, the same future under the same message hash, the same subscription (so the answer is
handled by the exchange's own handler), the same frame through ``Client.send``, and a failure to
send handed to ``Client.on_error`` as ccxt's callback does (it fails every future of that socket).
The awaiting caller sends the frame itself, in its own step, then waits for the answer. Anything
else (subscriptions, a socket not yet open or broken, ccxt's own rate limiter on) goes through
ccxt's ``watch`` as before.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Final

from ballast.adapters.ccxt.sockets import handshake_done

_INSTALLED: Final = "_ballast_requests_inline"


def send_requests_inline(exchange: Any) -> None:
    """Send ``exchange``'s WebSocket API requests in the caller's step (module docstring)."""
    if getattr(exchange, _INSTALLED, False):
        return
    watch = exchange.watch

    def inline_watch(
        url: str,
        message_hash: Any,
        message: Any = None,
        subscribe_hash: Any = None,
        subscription: Any = None,
    ) -> Any:
        connection = _open_connection(exchange, url)
        if (
            message is None
            or subscribe_hash is None
            or subscribe_hash != message_hash
            or exchange.enableRateLimit  # its throttle sits between the callback and the send
            or connection is None
            or subscribe_hash in connection.subscriptions
            or message_hash in connection.futures
        ):
            return watch(url, message_hash, message, subscribe_hash, subscription)
        answer = connection.future(message_hash)
        connection.subscriptions[subscribe_hash] = subscription or True
        return _send_then_wait(connection, message, answer)

    exchange.watch = inline_watch
    setattr(exchange, _INSTALLED, True)


def _open_connection(exchange: Any, url: str) -> Any:
    """The exchange's client for ``url`` when its socket is open and healthy, else None."""
    connection = (getattr(exchange, "clients", None) or {}).get(url)
    if connection is None or getattr(connection, "error", None):
        return None
    if not handshake_done(connection) or connection.closed():
        return None
    return connection


async def _send_then_wait(connection: Any, message: Any, answer: Awaitable[Any]) -> Any:
    try:
        await connection.send(message)
    except Exception as error:  # as ccxt's send callback: the socket's futures fail with it
        connection.on_error(error)
    return await answer
