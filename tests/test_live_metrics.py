"""Metrics and readiness of a live venue, from its events on a real bus (simulated clock): stream
connection, reconnects that count, order round trip, request weight at scrape, reconciliation."""

from __future__ import annotations

from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families

from ballast.engine.app.catch_up import CatchUpClock
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_MILLISECOND, SimulatedClock
from ballast.engine.kernel.events import (
    InstrumentsLoaded,
    LinkState,
    OrderAccepted,
    OrderRejected,
    OrderSubmitted,
    ReconcileMismatch,
    ReconcileResolved,
    VenueConnectionChanged,
)
from ballast.engine.kernel.instruments import binance_defaults
from ballast.engine.observe.metrics import MetricsExporter
from ballast.engine.trading.venue import VenueStats

D = Decimal
MS = NS_PER_MILLISECOND


def samples(exporter: MetricsExporter) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = exporter.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(exporter: MetricsExporter, name: str, **labels: str) -> float | None:
    return samples(exporter).get((name, tuple(sorted(labels.items()))))


def link(
    clock: SimulatedClock, channel: str, state: LinkState, attempt: int = 0
) -> VenueConnectionChanged:
    now = clock.now_ns()
    return VenueConnectionChanged(now, now, "paper", channel, state, "", attempt)


def exporter_on(clock: SimulatedClock) -> tuple[Bus, MetricsExporter]:
    bus = Bus(clock)
    exporter = MetricsExporter(bus, clock, symbols=["BTC/USDT"])
    now = clock.now_ns()
    bus.publish(InstrumentsLoaded(now, now, "paper", tuple(binance_defaults(["BTC"]))))
    return bus, exporter


def test_streams_going_down_and_up_set_the_gauge_and_count_reconnects(
    sim_clock: SimulatedClock,
) -> None:
    bus, exporter = exporter_on(sim_clock)
    assert value(exporter, "ballast_venue_reconnects_total", venue="paper") == 0
    bus.publish(link(sim_clock, "user:futures", "connected"))
    bus.publish(link(sim_clock, "quotes:spot", "connected"))
    assert value(exporter, "ballast_venue_connected", venue="paper", stream="user:futures") == 1
    assert value(exporter, "ballast_venue_reconnects_total", venue="paper") == 0  # first connect
    assert "venue_down" not in " ".join(exporter.health.readiness().reasons)

    bus.publish(link(sim_clock, "user:futures", "disconnected", attempt=1))
    assert value(exporter, "ballast_venue_connected", venue="paper", stream="user:futures") == 0
    assert "venue_down:paper:user:futures" in exporter.health.readiness().reasons

    bus.publish(link(sim_clock, "user:futures", "disconnected", attempt=2))
    bus.publish(link(sim_clock, "user:futures", "connected", attempt=2))
    bus.publish(link(sim_clock, "user:futures", "caught_up"))
    assert value(exporter, "ballast_venue_connected", venue="paper", stream="user:futures") == 1
    assert value(exporter, "ballast_venue_reconnects_total", venue="paper") == 1
    assert not [r for r in exporter.health.readiness().reasons if r.startswith("venue_down")]


def test_order_round_trip_is_submitted_to_the_first_answer(sim_clock: SimulatedClock) -> None:
    bus, exporter = exporter_on(sim_clock)
    t0 = sim_clock.now_ns()
    bus.publish(OrderSubmitted(t0, t0, "c1", "i1", "BTC/USDT", "buy", "market", D(1), None))
    bus.publish(OrderSubmitted(t0, t0, "c2", "i2", "BTC/USDT", "buy", "market", D(1), None))
    bus.publish(OrderAccepted(t0 + 2 * MS, t0 + 2 * MS, "c1", "v1", "BTC/USDT"))
    bus.publish(OrderAccepted(t0 + 9 * MS, t0 + 9 * MS, "c1", "v1", "BTC/USDT"))  # not a first
    bus.publish(OrderRejected(t0 + 30 * MS, t0 + 30 * MS, "c2", "BTC/USDT", "no"))
    assert value(exporter, "ballast_order_round_trip_seconds_count") == 2
    total = value(exporter, "ballast_order_round_trip_seconds_sum")
    assert total is not None
    assert abs(total - 0.032) < 1e-9
    assert value(exporter, "ballast_order_round_trip_seconds_bucket", le="0.002") == 1
    assert value(exporter, "ballast_order_round_trip_seconds_bucket", le="0.05") == 2


def test_request_weight_is_read_from_the_venue_at_scrape(sim_clock: SimulatedClock) -> None:
    _, exporter = exporter_on(sim_clock)
    assert value(exporter, "ballast_venue_request_weight_used", venue="paper") is None
    stats = VenueStats(
        connected={"quotes:spot": True}, reconnects=0, weight_used=7, weight_limit=1920
    )
    exporter.venue_stats = lambda: stats
    assert value(exporter, "ballast_venue_request_weight_used", venue="paper") == 7
    assert value(exporter, "ballast_venue_request_weight_limit", venue="paper") == 1920


def test_an_open_mismatch_is_a_gauge_and_a_readiness_reason(sim_clock: SimulatedClock) -> None:
    bus, exporter = exporter_on(sim_clock)
    assert value(exporter, "ballast_reconcile_mismatches") == 0
    now = sim_clock.now_ns()
    for subject in ("balance:BTC", "position:BTC/USDT:USDT", "balance:BTC"):
        bus.publish(ReconcileMismatch(now, now, "paper", subject, "1", "2", "unexplained"))
    assert value(exporter, "ballast_reconcile_mismatches") == 2
    reasons = exporter.health.readiness().reasons
    assert "reconcile_mismatch:balance:BTC" in reasons
    assert "reconcile_mismatch:position:BTC/USDT:USDT" in reasons
    bus.publish(ReconcileResolved(now, now, "paper", "agrees again"))
    assert value(exporter, "ballast_reconcile_mismatches") == 0
    assert not [r for r in exporter.health.readiness().reasons if r.startswith("reconcile")]


def test_reconnects_of_earlier_sessions_are_not_counted_again_on_a_resume() -> None:
    clock = CatchUpClock()
    bus = Bus(clock)
    exporter = MetricsExporter(bus, clock)
    now = clock.now_ns()
    bus.publish(InstrumentsLoaded(now, now, "paper", tuple(binance_defaults(["BTC"]))))
    clock.replay_from(now)
    states: tuple[LinkState, ...] = ("connected", "disconnected", "connected")
    for state in states:  # the journal's past
        bus.publish(VenueConnectionChanged(now, now, "paper", "user:spot", state))
    clock.go_live()
    assert value(exporter, "ballast_venue_reconnects_total", venue="paper") == 0
    assert value(exporter, "ballast_venue_connected", venue="paper", stream="user:spot") == 1
    bus.publish(VenueConnectionChanged(now, now, "paper", "user:spot", "disconnected"))
    bus.publish(VenueConnectionChanged(now, now, "paper", "user:spot", "connected"))
    assert value(exporter, "ballast_venue_reconnects_total", venue="paper") == 1
