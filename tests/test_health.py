"""/healthz, /readyz and /metrics through the real aiohttp server on 127.0.0.1 (port 0):
readyz is 503 before reconciliation, while data is stale, while the kill switch is on or the
strategy is halted, and 200 otherwise."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from ballast.engine.app.session import Session
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_SECOND, SimulatedClock
from ballast.engine.kernel.config import Config, InstrumentsConfig, JournalConfig, RiskConfig
from ballast.engine.kernel.events import (
    BalanceUpdated,
    DataStale,
    InstrumentsLoaded,
    KillSwitchReset,
    KillSwitchTriggered,
    OrderFilled,
    QuoteTick,
    StrategyFailed,
)
from ballast.engine.kernel.journal import Journal
from ballast.engine.observe.health import Health
from ballast.engine.observe.http_server import MetricsServer, parse_address, serve_metrics
from ballast.engine.observe.metrics import MetricsExporter
from tests.conftest import START_NS
from tests.support.book import fine_instruments
from tests.support.http_get import HttpResponse, http_get, http_request
from tests.support.memory_venue import InMemoryVenue

D = Decimal
SEC = NS_PER_SECOND
SYMBOLS = ("BTC/USDT", "BTC/USDT:USDT")
HOST = "127.0.0.1"


@pytest.fixture
def bus(sim_clock: SimulatedClock) -> Bus:
    return Bus(sim_clock)


@pytest.fixture
async def server(bus: Bus, sim_clock: SimulatedClock) -> AsyncIterator[MetricsServer]:
    config = Config(
        instruments=InstrumentsConfig(spot=["BTC/USDT"], perp=["BTC/USDT:USDT"]),
        risk=RiskConfig(stale_after_s=30.0),
    )
    exporter = MetricsExporter.from_config(config, bus, sim_clock)
    async with exporter, MetricsServer(exporter, host=HOST, port=0) as served:
        yield served


async def get(server: MetricsServer, path: str) -> HttpResponse:
    return await http_get(HOST, server.port, path)


def quote(symbol: str, ts: int) -> QuoteTick:
    return QuoteTick(ts, ts, symbol, D(100), D(101), D(1), D(1))


def reconcile_and_feed(bus: Bus, ts: int) -> None:
    bus.publish(InstrumentsLoaded(ts, ts, "memory", ()))
    bus.publish(BalanceUpdated(ts, ts, "spot", "USDT", D(1000), D(0)))
    for symbol in SYMBOLS:
        bus.publish(quote(symbol, ts))


async def reasons(server: MetricsServer) -> tuple[int, list[str]]:
    response = await get(server, "/readyz")
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["status"] == ("ready" if response.status == 200 else "not_ready")
    return response.status, body["reasons"]


async def test_healthz_answers_ok_while_the_loop_runs(server: MetricsServer) -> None:
    response = await get(server, "/healthz")
    assert (response.status, response.text) == (200, "ok\n")


async def test_readyz_is_503_until_the_venue_is_reconciled_and_data_arrived(
    server: MetricsServer, bus: Bus
) -> None:
    status, why = await reasons(server)
    assert status == 503
    assert why == [
        "instruments_not_loaded",
        "account_not_loaded",
        "no_data:BTC/USDT",
        "no_data:BTC/USDT:USDT",
    ]
    bus.publish(InstrumentsLoaded(START_NS, START_NS, "memory", ()))
    bus.publish(BalanceUpdated(START_NS, START_NS, "spot", "USDT", D(1000), D(0)))
    bus.publish(quote("BTC/USDT", START_NS))
    assert await reasons(server) == (503, ["no_data:BTC/USDT:USDT"])
    bus.publish(quote("BTC/USDT:USDT", START_NS))
    assert await reasons(server) == (200, [])


async def test_readyz_is_503_while_data_is_stale(
    server: MetricsServer, bus: Bus, sim_clock: SimulatedClock
) -> None:
    reconcile_and_feed(bus, START_NS)
    sim_clock.advance_to(START_NS + 30 * SEC)
    assert await reasons(server) == (200, [])  # 30 s old: not yet older than the threshold
    sim_clock.advance_to(START_NS + 31 * SEC)
    assert await reasons(server) == (503, ["data_stale:BTC/USDT", "data_stale:BTC/USDT:USDT"])
    reconcile_and_feed(bus, START_NS + 31 * SEC)
    assert await reasons(server) == (200, [])

    now = START_NS + 31 * SEC
    bus.publish(DataStale(now, now, "BTC/USDT:USDT", now, 0, 30 * SEC))  # the risk actor's view
    assert await reasons(server) == (503, ["data_stale:BTC/USDT:USDT"])
    bus.publish(quote("BTC/USDT:USDT", now + 1))
    assert await reasons(server) == (200, [])


async def test_readyz_is_503_while_the_kill_switch_is_on(server: MetricsServer, bus: Bus) -> None:
    reconcile_and_feed(bus, START_NS)
    bus.publish(KillSwitchTriggered(START_NS, START_NS, "drawdown", "drawdown 0.3 >= 0.25"))
    assert await reasons(server) == (503, ["kill_switch:drawdown"])
    bus.publish(KillSwitchReset(START_NS, START_NS, "operator"))
    assert await reasons(server) == (200, [])


async def test_readyz_is_503_once_the_strategy_is_halted(server: MetricsServer, bus: Bus) -> None:
    reconcile_and_feed(bus, START_NS)
    bus.publish(StrategyFailed(START_NS, START_NS, "threshold", "ZeroDivisionError"))
    assert await reasons(server) == (503, ["strategy_halted"])


async def test_metrics_are_served_in_the_prometheus_text_format(
    server: MetricsServer, bus: Bus
) -> None:
    reconcile_and_feed(bus, START_NS)
    response = await get(server, "/metrics")
    assert response.status == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    names = {f.name for f in text_string_to_metric_families(response.text)}
    assert {"ballast_market_data_age_seconds", "ballast_orders", "ballast_build_info"} <= names


async def test_other_paths_methods_and_malformed_requests(server: MetricsServer) -> None:
    assert (await get(server, "/nope")).status == 404
    assert (await get(server, "/healthz?verbose=1")).status == 200
    post = await http_request(HOST, server.port, "/metrics", method="POST")
    assert post.status == 405
    head = await http_request(HOST, server.port, "/healthz", method="HEAD")
    assert (head.status, head.body, head.headers["content-length"]) == (200, b"", "3")
    garbage = await http_request(HOST, server.port, "", raw=b"hello\r\n\r\n")
    assert garbage.status == 400


async def test_keep_alive_serves_several_requests_and_stop_closes_the_connection(
    bus: Bus, sim_clock: SimulatedClock
) -> None:
    """A scraper may keep its connection open (HTTP/1.1 keep-alive); stopping the server closes
    it at once instead of waiting for the client, and frees the port."""
    exporter = MetricsExporter(bus, sim_clock)
    async with exporter:
        server = MetricsServer(exporter, host=HOST, port=0)
        await server.start()
        reader, writer = await asyncio.open_connection(HOST, server.port)
        for _ in range(2):
            writer.write(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            await writer.drain()
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\nok\n"), 5)
            assert answer.startswith(b"HTTP/1.1 200")
        await asyncio.wait_for(server.stop(), 5)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
        writer.close()
        await writer.wait_closed()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(HOST, server.port)


def test_addresses_parse_with_ipv4_ipv6_and_reject_garbage() -> None:
    assert parse_address("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_address("0.0.0.0:0") == ("0.0.0.0", 0)
    assert parse_address("[::1]:9464") == ("::1", 9464)
    for bad in ("9464", "host:", ":9464", "host:99999", "host:abc"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_address(bad)


def test_health_on_data_keeps_the_newest_time(sim_clock: SimulatedClock) -> None:
    health = Health(sim_clock, stale_after_s=30.0)
    health.on_data("BTC/USDT", START_NS + 5 * SEC)
    health.on_data("BTC/USDT", START_NS)  # late: does not make the data look older
    assert health.age_s("BTC/USDT", START_NS + 6 * SEC) == 1.0
    assert health.age_s("ETH/USDT", START_NS) is None


@contextlib.asynccontextmanager
async def served_session(tmp_path: Path) -> AsyncIterator[tuple[Session, MetricsServer]]:
    """A real session (in-memory venue, journal in tmp_path) served on loopback, 503 until its
    first prices, as ``ballast run`` serves it."""
    clock = SimulatedClock(START_NS)
    config = Config(
        targets={"BTC": D("0.40")},
        instruments=InstrumentsConfig(spot=["BTC/USDT"], perp=["BTC/USDT:USDT"]),
        journal=JournalConfig(path=str(tmp_path / "journal.db")),
    )
    venue = InMemoryVenue(
        list(fine_instruments(["BTC"]).values()), {"USDT": D(60_000), "BTC": D(1)}, clock
    )
    async with Journal(config.journal.path) as journal:
        session = Session(config, clock, journal=journal, venue=venue)
        async with serve_metrics(session, f"{HOST}:0") as server, session:
            assert await reasons(server) == (503, ["no_data:BTC/USDT", "no_data:BTC/USDT:USDT"])
            for symbol in SYMBOLS:
                await venue.set_price(symbol, D(40_000))
                tick = QuoteTick(START_NS, START_NS, symbol, D(39_999), D(40_001), D(1), D(1))
                await session.bus.send(tick)
            clock.advance_to(START_NS)  # the instant ends: its price snapshot is taken
            await session.idle()
            yield session, server


async def test_a_served_session_is_ready_once_its_venue_loaded_and_prices_flow(
    tmp_path: Path,
) -> None:
    """serve_metrics wires the exporter to a real session before it starts: the session's own
    InstrumentsLoaded and account reach the exporter, and /metrics shows the valued portfolio."""
    async with served_session(tmp_path) as (_, server):
        assert await reasons(server) == (200, [])
        text = (await get(server, "/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    [nav] = families["ballast_nav"].samples
    assert nav.value == 100_000
    [reconnects] = families["ballast_venue_reconnects"].samples
    assert reconnects.labels == {"venue": "memory"}


def handler_errors(text: str) -> dict[str, float]:
    [family] = [
        f for f in text_string_to_metric_families(text) if f.name == "ballast_handler_errors"
    ]
    return {s.labels["actor"]: s.value for s in family.samples if s.name.endswith("_total")}


async def test_a_failed_handler_of_a_money_actor_shows_on_readyz_and_in_the_metrics(
    tmp_path: Path,
) -> None:
    """Issue 10 ("failures that change nothing"): the portfolio's ledger refuses a fill; the
    kill switch trips, /readyz says why, and the handler error is counted under its actor (the
    money-state actors are listed at 0 before, so the first failure is an increase)."""
    async with served_session(tmp_path) as (session, server):
        assert await reasons(server) == (200, [])
        before = handler_errors((await get(server, "/metrics")).text)
        assert before == {"OrderRouter": 0, "Portfolio": 0, "RiskManager": 0}
        refused = OrderFilled(
            START_NS,
            START_NS,
            "c-1",
            "v-1",
            "t-1",
            "BTC/USDT",
            "buy",
            D(0),
            D(40_000),
            D(0),
            "USDT",
            "taker",
        )  # qty 0: the ledger raises
        await session.bus.send(refused)
        await session.idle()
        assert await reasons(server) == (503, ["kill_switch:handler_failed"])
        text = (await get(server, "/metrics")).text
    assert handler_errors(text)["Portfolio"] == 1
    assert "ballast_kill_switch_engaged 1.0" in text
