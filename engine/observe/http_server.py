"""The engine's small HTTP server for orchestrators and Prometheus (aiohttp).

``GET /metrics``  the exporter's registry in the Prometheus text format;
``GET /healthz``  200 ``ok`` while the process and its event loop are alive (the loop answers);
``GET /readyz``   200 when feeds are fresh, the venue is reconciled and trading is not halted,
                  else 503; both with a short JSON body (``{"status": ..., "reasons": [...]}``).

``HEAD`` is answered like ``GET`` without a body; other methods get 405, other paths 404, a
request aiohttp cannot parse 400. aiohttp speaks the protocol (keep-alive, limits on the request
line and headers, HEAD); idle keep-alive connections are closed after ``KEEPALIVE_S``, and on
stop the server waits at most ``SHUTDOWN_TIMEOUT_S`` for requests in flight. The default address
is ``127.0.0.1:9464`` (``[metrics] address``): bind ``0.0.0.0`` only where something else (a
container, a firewall) controls who can reach it.

A served session::

    session = Session(config, clock, journal=journal, venue=venue)
    async with serve_metrics(session), session:   # metrics subscribe before the session starts
        ...

The CLI calls :func:`serve_metrics` when ``config.metrics.enabled``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Final, Protocol, Self

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import Clock
from ballast.engine.kernel.config import Config
from ballast.engine.observe.health import Health
from ballast.engine.observe.metrics import MetricsExporter
from ballast.engine.observe.process_metrics import register_process_metrics

log = logging.getLogger(__name__)

KEEPALIVE_S: Final = 5.0
SHUTDOWN_TIMEOUT_S: Final = 5.0
_JSON: Final = "application/json"
_PLAIN_BODIES: Final = {404: "not found\n", 405: "method not allowed\n"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Served(Protocol):
    """What :func:`serve_metrics` needs of a session: its configuration, bus and clock
    (:class:`ballast.engine.app.session.Session` is one; observation does not import the app)."""

    @property
    def config(self) -> Config: ...

    @property
    def bus(self) -> Bus: ...

    @property
    def clock(self) -> Clock: ...


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
        self._runner: web.AppRunner | None = None

    def application(self) -> web.Application:
        """The routes (``add_get`` answers ``HEAD`` too)."""
        app = web.Application(middlewares=[_plain_errors])
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        return app

    async def start(self) -> None:
        runner = web.AppRunner(
            self.application(),
            access_log=None,
            keepalive_timeout=KEEPALIVE_S,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening, let requests in flight finish, close the connections."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ routes

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, request: web.Request) -> web.Response:
        readiness = self.health.readiness(self.clock.now_ns())
        status = 200 if readiness.ready else 503
        return web.Response(status=status, body=readiness.to_json(), content_type=_JSON)


@web.middleware
async def _plain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer is uncached; 404 and 405 keep their short plain-text bodies."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        body = _PLAIN_BODIES.get(exc.status)
        if body is None:
            raise
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        response = web.Response(status=exc.status, text=body, headers=allow)
    response.headers["Cache-Control"] = "no-store"
    return response


@contextlib.asynccontextmanager
async def serve_metrics(
    session: Served, address: str | None = None
) -> AsyncIterator[MetricsServer]:
    """Export ``session``'s metrics and serve them on ``address`` (default ``[metrics] address``).

    Enter it before the session itself, so the exporter sees the session's start (instruments,
    account): ``async with serve_metrics(session), session: ...``. The exporter is
    ``server.exporter``. Its registry also has the process's metrics (RSS, open file
    descriptors, asyncio tasks: :mod:`ballast.engine.observe.process_metrics`).
    """
    host, port = parse_address(address or session.config.metrics.address)
    exporter = MetricsExporter.from_config(session.config, session.bus, session.clock)
    register_process_metrics(exporter.registry)
    async with exporter, MetricsServer(exporter, host=host, port=port) as server:
        yield server
