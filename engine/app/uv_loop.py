"""uvloop's event loop, with the socket of a failed ``create_connection(sock=...)`` let go.

uvloop (0.22) hands the socket's descriptor to libuv before the connection is made; when the call
then fails or is cancelled (aiohttp's connect timeout, a request cancelled at shutdown: aiohttp
connects every request through ``create_connection(sock=...)``), libuv closes the descriptor but
the Python socket object still holds its number. Once garbage-collected, that object closes the
number again: by then often another file or socket of the process (a journal, an exchange
socket), closed under its owner, with a ResourceWarning about an unclosed socket that prints the
other one's address. Here such a socket forgets the number (``detach``) when libuv has closed it.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from typing import Any, TypeVar

import uvloop

_P = TypeVar("_P", bound=asyncio.BaseProtocol)


def _identity(sock: socket.socket) -> tuple[int, int] | None:
    """(device, inode) of what the socket's descriptor refers to; None if it is closed."""
    try:
        stat = os.fstat(sock.fileno())
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def let_go_if_closed_under(sock: socket.socket, identity: tuple[int, int] | None) -> None:
    """Detach ``sock`` from its descriptor number if that number no longer refers to the socket
    it did (``identity``, taken before): closed, or reused since by another file."""
    if identity is not None and sock.fileno() != -1 and _identity(sock) != identity:
        sock.detach()


class Loop(uvloop.Loop):
    """uvloop's loop; :func:`let_go_if_closed_under` after a failed ``create_connection(sock=)``."""

    async def create_connection(  # type: ignore[override]  # one body for uvloop's two overloads
        self,
        protocol_factory: Callable[[], _P],
        *args: Any,
        sock: socket.socket | None = None,
        **kwargs: Any,
    ) -> tuple[asyncio.BaseTransport, _P]:
        identity = None if sock is None else _identity(sock)
        try:
            connected = await super().create_connection(
                protocol_factory, *args, sock=sock, **kwargs
            )
            return connected  # type: ignore[return-value]  # uvloop's stub: (BaseProtocol, _P)
        except BaseException:
            if sock is not None:
                let_go_if_closed_under(sock, identity)
            raise


def new_event_loop() -> asyncio.AbstractEventLoop:
    return Loop()
