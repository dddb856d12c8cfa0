"""The commands' event loop (``loop_factory``: uvloop's, amended by ``engine/app/uv_loop.py``): a
connection that fails or is cancelled while uvloop holds its socket leaves no socket object behind
that would close, once garbage-collected, a descriptor number another file has taken since."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import aiohttp
import pytest
from aiohttp import web

from ballast.engine.app.event_loop import loop_factory


@contextmanager
def unraisable() -> Iterator[list[str]]:
    """What finalizers raised meanwhile (an unclosed socket's ResourceWarning, as an error)."""
    seen: list[str] = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda args: seen.append(f"{args.exc_type.__name__}: {args.exc_value}")
    try:
        yield seen
    finally:
        sys.unraisablehook = previous


def engine_loop() -> Callable[[], asyncio.AbstractEventLoop]:
    factory = loop_factory()
    if factory is None:  # pragma: no cover - uvloop is a dependency except on Windows
        pytest.skip("no uvloop here: the commands run on asyncio's own loop")
    return factory


def test_a_connect_cancelled_while_uvloop_holds_the_socket_closes_nothing_else() -> None:
    async def scenario() -> tuple[int, str]:
        loop = asyncio.get_running_loop()
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setblocking(False)
            await loop.sock_connect(sock, server.sockets[0].getsockname())
            connecting = asyncio.ensure_future(loop.create_connection(asyncio.Protocol, sock=sock))
            await asyncio.sleep(0)  # the call has handed the socket over and waits for it
            connecting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await connecting
            fileno = sock.fileno()
            # another socket of the process takes the lowest free number (the one freed above)
            with socket.socket() as other:
                other.bind(("127.0.0.1", 0))
                address = other.getsockname()
                del sock
                gc.collect()
                assert other.getsockname() == address  # still open: nothing closed it
            return fileno, str(address)
        finally:
            server.close()
            await server.wait_closed()

    with unraisable() as seen, asyncio.Runner(loop_factory=engine_loop()) as runner:
        fileno, _ = runner.run(scenario())
    assert fileno == -1  # the socket let go of the number libuv closed
    assert seen == []


def test_requests_cancelled_at_every_step_of_their_connect_leave_no_socket_behind() -> None:
    """aiohttp (ccxt's REST and WebSocket transport) connects through ``create_connection(sock=)``:
    a request cancelled at any step (a timeout, a venue closing) leaves no socket to the GC."""

    async def scenario() -> None:
        app = web.Application()

        async def ok(request: web.Request) -> web.Response:
            return web.Response(text="ok")

        app.router.add_get("/", ok)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        try:
            for steps in range(100):
                async with aiohttp.ClientSession() as session:

                    async def get(session: aiohttp.ClientSession = session) -> None:
                        async with session.get(url) as response:
                            await response.read()

                    request = asyncio.ensure_future(get())
                    for _ in range(steps):
                        await asyncio.sleep(0)
                    answered = request.done()
                    request.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await request
                gc.collect()
                if answered:  # every step before the answer was cancelled once
                    return
            raise AssertionError("no answer within 100 steps")
        finally:
            await runner.cleanup()

    with unraisable() as seen, asyncio.Runner(loop_factory=engine_loop()) as runner:
        runner.run(scenario())
    gc.collect()
    assert seen == []
