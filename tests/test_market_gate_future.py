"""The market gate of a live venue rejects data stamped far after its clock (issue 14): taken,
it would become its series' last time and every true point after it would be out of order."""

from __future__ import annotations

from decimal import Decimal

from ballast.engine.kernel.clock import NS_PER_SECOND, SimulatedClock
from ballast.engine.kernel.config import parse_config
from ballast.engine.kernel.events import QuoteTick
from ballast.engine.trading.market_gate import MAX_AHEAD_NS, MarketGate

NOW = 1_700_000_000 * NS_PER_SECOND


def quote(ts: int, bid: str = "49999", ask: str = "50001") -> QuoteTick:
    return QuoteTick(ts, NOW, "BTC/USDT", Decimal(bid), Decimal(ask), Decimal(1), Decimal(1))


def test_a_live_gate_rejects_a_point_from_the_future_and_keeps_taking_true_ones() -> None:
    config = parse_config('[venue]\nkind = "binance"\n')
    gate = MarketGate.from_config(config, SimulatedClock(NOW))
    first = gate.screen(0, quote(NOW - 2))  # live, a symbol's first quote waits for the next
    assert first is not None
    assert first.reason == "unconfirmed_first"
    assert gate.screen(0, quote(NOW - 1)) is None
    rejected = gate.screen(1, quote(NOW + MAX_AHEAD_NS + 1))
    assert rejected is not None
    assert rejected.reason == "future_timestamp"
    assert gate.screen(2, quote(NOW)) is None  # the series was not moved into the future
    assert gate.screen(3, quote(NOW + MAX_AHEAD_NS)) is None  # within the allowed skew


def test_a_simulated_venue_gate_judges_no_time() -> None:
    gate = MarketGate.from_config(parse_config(""), SimulatedClock(NOW))
    assert gate.screen(1, quote(NOW + 10 * MAX_AHEAD_NS)) is None
