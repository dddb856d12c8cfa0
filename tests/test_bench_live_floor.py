"""``bench live`` measures the floors under its quote → order figure in the same run (issue 11):
a child with the venue's own ccxt.pro client doing nothing but watch a quote and send the order,
and one with raw aiohttp frames, each timed by the exchange's probe as the engine is.

The children run for real against the bench's loopback exchange (a few trips each); no timing
is asserted, only that every quote that crossed the band brought one order, over the transport
asked for, accepted by the exchange; and that the report prints and records each floor beside
the engine's figure.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from ballast.engine.kernel.clock import NS_PER_MILLISECOND
from ballast.engine.kernel.config import OrderTransport
from bench import live
from bench.common import FIGURES, run
from bench.live_floor import FloorKind

TRIPS = 3


async def _floor(
    kind: FloorKind, transport: OrderTransport
) -> tuple[live.FloorResult, int, int, Decimal]:
    """One floor start; the result, the orders the exchange took over its WS-API, the orders its
    probe saw, and the account's BTC value above its cash at the last price afterwards."""
    exchange = await live.Exchange.open()
    result = live.FloorResult()
    async with exchange.server:
        await live.measure_floor(exchange, kind, transport, TRIPS, result)
    account = exchange.quotes.core.exchange
    off_target = account.balance("BTC") * exchange.quotes.mid - account.balance("USDT")
    return result, exchange.server.ws_api_orders, len(exchange.probe.arrivals), off_target


@pytest.mark.parametrize("transport", ["websocket", "rest"])
@pytest.mark.parametrize("kind", ["ccxt", "wire"])
def test_a_floor_child_sends_one_order_per_quote_over_its_transport(
    kind: FloorKind, transport: OrderTransport
) -> None:
    result, ws_api_orders, arrivals, off_target = run(_floor(kind, transport))
    sent = live.WARMUP_ORDERS + TRIPS
    assert result.missed == 0
    assert len(result.latencies_ns) == TRIPS
    assert all(
        0 < ns < live.ORDER_TIMEOUT_S * 1000 * NS_PER_MILLISECOND for ns in result.latencies_ns
    )
    assert (result.orders, result.errors, result.first_error) == (sent, 0, "")
    assert arrivals == sent
    assert ws_api_orders == (sent if transport == "websocket" else 0)
    # selling high and buying low made cash; the account is put back on its 50 % target for the
    # engine that comes next (to a lot of 0.00001 BTC and the spread: within 1 USDT)
    assert abs(off_target) <= 1


def _trips(*ms: float) -> list[int]:
    return [int(m * NS_PER_MILLISECOND) for m in ms]


def test_the_report_prints_and_records_each_floor_beside_the_engine(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = live.TransportResult(latencies_ns=_trips(*[3.0] * 98, 4.0, 6.5))
    floors = {
        ("websocket", "ccxt"): live.FloorResult(latencies_ns=_trips(*[1.5] * 98, 2.0, 2.5)),
        ("websocket", "wire"): live.FloorResult(latencies_ns=_trips(*[0.8] * 99, 1.25)),
    }
    result = live.LiveResult({"websocket": engine}, [], floors)  # type: ignore[arg-type]
    first = len(FIGURES)
    live.report(result)
    recorded = {f.key: f for f in FIGURES[first:]}
    del FIGURES[first:]
    out = capsys.readouterr().out

    assert recorded["live.websocket.p99"].value == 4.0
    assert recorded["live.websocket.p99"].floor == 2.0
    assert recorded["live.websocket.p50"].floor == 1.5
    assert recorded["live.websocket.floor_ccxt.p50"].value == 1.5
    assert recorded["live.websocket.floor_ccxt.p99"].value == 2.0
    assert recorded["live.websocket.floor_wire.p99"].value == 0.8
    assert "live.rest.floor_ccxt.p99" not in recorded
    assert re.search(r"floor ccxt\.pro alone .*p50 1\.50 ms.*p99 2\.00 ms", out)
    assert re.search(r"floor aiohttp alone .*p99 0\.80 ms", out)
    assert "the engine adds: p99 +2.00 ms, p50 +1.50 ms above the ccxt.pro floor" in out
    assert "the floor alone meets the p99 target <= 5 ms" in out


def test_a_floor_child_trades_only_when_the_mid_leaves_the_band() -> None:
    from bench.live_floor import Trader

    trader = Trader(Decimal(50_000))
    assert trader.side(Decimal("50049.99"), Decimal("50050.01")) is None  # 0.1 %: inside
    assert trader.side(Decimal("50499.99"), Decimal("50500.01")) == "sell"
    assert trader.side(Decimal("50499.99"), Decimal("50500.01")) is None  # traded there
    assert trader.side(Decimal("49999.99"), Decimal("50000.01")) == "buy"
