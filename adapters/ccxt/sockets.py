"""Whether a ccxt.pro WebSocket client (``Exchange.clients[url]``) has its socket connected: its
``connected`` future resolved, neither cancelled nor failed (ccxt resolves it once the handshake
is done and keeps it so until the client is replaced)."""

from __future__ import annotations

from typing import Any


def handshake_done(ws: Any) -> bool:
    """The client's connection was made (it may have closed since: see ``ws.closed()``)."""
    connected = ws.connected
    return bool(connected.done() and not connected.cancelled() and connected.exception() is None)
