"""The engine's own small HTTP server for orchestrators and Prometheus (asyncio, no dependency).

``GET /metrics``  the exporter's registry in the Prometheus text format;
``GET /healthz``  200 ``ok`` while the process and its event loop are alive (the loop answers);
``GET /readyz``   200 when feeds are fresh, the venue is reconciled and trading is not halted,
                  else 503; both with a short JSON body (``{"status": ..., "reasons": [...]}``).

``HEAD`` is answered like ``GET`` without a body; other methods get 405, other paths 404. Each
connection serves one request and is closed; a request must arrive within ``READ_TIMEOUT_S`` and
fit in ``MAX_REQUEST_BYTES``. The default address is ``127.0.0.1:9464`` (``[metrics] address``):
bind ``0.0.0.0`` only where something else (a container, a firewall) controls who can reach it.

A served session::

    session = Session(config, clock, journal=journal, venue=venue)
    async with serve_metrics(session), session:   # metrics subscribe before the session starts
        ...

The CLI calls :func:`serve_metrics` when ``config.metrics.enabled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Final, NamedTuple, Protocol, Self

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import Clock
from ballast.engine.kernel.config import Config
from ballast.engine.observe.health import Health
from ballast.engine.observe.metrics import MetricsExporter

log = logging.getLogger(__name__)

READ_TIMEOUT_S: Final = 5.0
MAX_REQUEST_BYTES: Final = 8192
_TEXT: Final = "text/plain; charset=utf-8"
_JSON: Final = "application/json"
_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


class Served(Protocol):
    """What :func:`serve_metrics` needs of a session: its configuration, bus and clock
    (:class:`ballast.engine.app.session.Session` is one; observation does not import the app)."""

    @property
    def config(self) -> Config: ...

    @property
    def bus(self) -> Bus: ...

    @property
    def clock(self) -> Clock: ...


class Response(NamedTuple):
    status: int
    content_type: str
    body: bytes


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9464`` for IPv6) into (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


class MetricsServer:
    """Serves ``/metrics``, ``/healthz`` and ``/readyz``. ``port=0`` binds a free port; the bound
    one is in :attr:`port` once started."""

    def __init__(
        self, exporter: MetricsExporter, *, host: str = "127.0.0.1", port: int = 9464
    ) -> None:
        self.exporter = exporter
        self.registry: CollectorRegistry = exporter.registry
        self.health: Health = exporter.health
        self.clock: Clock = exporter.clock
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=MAX_REQUEST_BYTES
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ requests

    def respond(self, method: str, path: str) -> Response:
        """The response to one request (no I/O: the routes)."""
        if method not in ("GET", "HEAD"):
            return Response(405, _TEXT, b"method not allowed\n")
        route = path.split("?", 1)[0]
        if route == "/metrics":
            return Response(200, CONTENT_TYPE_LATEST, generate_latest(self.registry))
        if route == "/healthz":
            return Response(200, _TEXT, b"ok\n")
        if route == "/readyz":
            readiness = self.health.readiness(self.clock.now_ns())
            return Response(200 if readiness.ready else 503, _JSON, readiness.to_json())
        return Response(404, _TEXT, b"not found\n")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(_read_request(reader), READ_TIMEOUT_S)
            response = (
                Response(400, _TEXT, b"bad request\n")
                if request is None
                else self.respond(*request)
            )
            head_only = request is not None and request[0] == "HEAD"
            writer.write(_encode(response, head_only=head_only))
            await writer.drain()
        except (
            TimeoutError,
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            pass  # a slow, closed or oversized request: just drop the connection
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str] | None:
    """(method, path) of the request line, after reading the headers; None if malformed."""
    line = await reader.readuntil(b"\n")
    parts = line.decode("latin-1").split()
    while (await reader.readuntil(b"\n")).strip():
        pass  # headers are not used
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return None
    return parts[0], parts[1]


def _encode(response: Response, *, head_only: bool) -> bytes:
    head = (
        f"HTTP/1.1 {response.status} {_REASONS.get(response.status, '')}\r\n"
        f"Content-Type: {response.content_type}\r\n"
        f"Content-Length: {len(response.body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")
    return head if head_only else head + response.body


@contextlib.asynccontextmanager
async def serve_metrics(
    session: Served, address: str | None = None
) -> AsyncIterator[MetricsServer]:
    """Export ``session``'s metrics and serve them on ``address`` (default ``[metrics] address``).

    Enter it before the session itself, so the exporter sees the session's start (instruments,
    account): ``async with serve_metrics(session), session: ...``. The exporter is
    ``server.exporter``.
    """
    host, port = parse_address(address or session.config.metrics.address)
    exporter = MetricsExporter.from_config(session.config, session.bus, session.clock)
    async with exporter, MetricsServer(exporter, host=host, port=port) as server:
        yield server
