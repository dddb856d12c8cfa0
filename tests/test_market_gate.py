"""The market gate: one verdict per market data message, before any consumer sees it.

Given a session-like bus (the gate installed, the real risk, portfolio and rebalancer actors and a
metrics exporter), when absurd data arrives, then no consumer sees it, the journal keeps it, and a
DataRejected naming its seq is published in its place.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_HOUR, SimulatedClock
from ballast.engine.kernel.config import Config, RiskConfig, parse_config
from ballast.engine.kernel.errors import ConfigError
from ballast.engine.kernel.events import (
    BalanceUpdated,
    Bar,
    DataRejected,
    MarketEvent,
    MarkPriceUpdated,
    Message,
    QuoteTick,
)
from ballast.engine.kernel.journal import Journal, JournalReader
from ballast.engine.observe.metrics import MetricsExporter
from ballast.engine.trading.market_gate import MarketGate
from ballast.engine.trading.market_guard import FUNDING_RATE, NON_POSITIVE, PRICE_JUMP, MarketGuard
from ballast.engine.trading.portfolio import Portfolio
from ballast.engine.trading.rebalancer import Rebalancer
from ballast.engine.trading.risk import RiskManager
from tests.conftest import START_NS

D = Decimal
HOUR = NS_PER_HOUR
BTC, BTC_PERP = "BTC/USDT", "BTC/USDT:USDT"


def bar(symbol: str, close: str | int, hours: int, *, high: str | None = None) -> Bar:
    c = D(close)
    ts = START_NS + hours * HOUR
    return Bar(ts, ts, symbol, 3600, c, D(high) if high else c, c, c, D(1))


def mark(price: str | int, hours: int, rate: str = "0.0001") -> MarkPriceUpdated:
    ts = START_NS + hours * HOUR
    return MarkPriceUpdated(ts, ts, BTC_PERP, D(price), D(price), D(rate), ts + HOUR)


class Consumers:
    """Every consumer of market data a session has, on one gated bus."""

    def __init__(self, clock: SimulatedClock, config: Config, journal: Journal | None) -> None:
        self.clock = clock
        self.bus = Bus(clock, journal)
        self.gate = MarketGate.from_config(config, clock).install(self.bus)
        self.portfolio = Portfolio.from_config(config, self.bus, clock)
        self.risk = RiskManager.from_config(config, self.bus, clock)
        self.rebalancer = Rebalancer.from_config(config, self.bus, clock)
        self.metrics = MetricsExporter.from_config(config, self.bus, clock)
        self.seen: list[Message] = []
        self.bus.subscribe_all(self.seen.append, name="test.seen")
        self.box = self.bus.mailbox([MarketEvent], name="test.box", coalesce_after=None)

    def send(self, *events: Message) -> list[int]:
        """Publish each event at its time; their seqs."""
        seqs = []
        for event in events:
            self.clock.advance_to(max(self.clock.now_ns(), event.ts_event))
            seqs.append(self.bus.publish(event))
        return seqs

    def rejected(self) -> list[DataRejected]:
        return [m for m in self.seen if isinstance(m, DataRejected)]

    def boxed(self) -> list[Message]:
        out = []
        while (item := self.box.get_nowait()) is not None:
            out.append(item[1])
        return out


@pytest.fixture
def world(sim_clock: SimulatedClock) -> Consumers:
    return Consumers(sim_clock, Config(), None)


def test_a_rejected_bar_reaches_no_consumer_and_names_its_seq(world: Consumers) -> None:
    world.send(BalanceUpdated(START_NS, START_NS, "spot", "USDT", D(100_000), D(0)))
    seqs = world.send(
        bar(BTC, 20_000, 1), bar(BTC, 2_000_000, 2, high="2000000"), bar(BTC, 20_100, 3)
    )
    [rejected] = world.rejected()
    assert (rejected.symbol, rejected.reason) == (BTC, PRICE_JUMP)
    assert rejected.seq == seqs[1]
    assert [m.close for m in world.seen if isinstance(m, Bar)] == [D(20_000), D(20_100)]
    assert [m.close for m in world.boxed() if isinstance(m, Bar)] == [D(20_000), D(20_100)]
    assert world.risk.marks[BTC] == (D(20_100), START_NS + 3 * HOUR)
    assert world.portfolio.ledger.spot_prices["BTC"] == D(20_100)
    assert world.metrics.health.last_data_ns[BTC] == START_NS + 3 * HOUR


def test_an_absurd_funding_rate_is_rejected_with_its_mark(world: Consumers) -> None:
    world.send(mark(20_000, 1), mark(20_010, 2, rate="5.0"), mark(20_020, 3, rate="-0.0002"))
    [rejected] = world.rejected()
    assert (rejected.symbol, rejected.reason) == (BTC_PERP, FUNDING_RATE)
    assert "5.0" in rejected.detail
    assert world.portfolio.funding_rates == {"BTC": D("-0.0002")}
    assert world.rebalancer.funding == {"BTC": D("-0.0002")}
    assert world.gate.guard.last_price(BTC_PERP, "mark") == D(20_020)


def test_a_bar_with_a_non_positive_low_is_rejected(world: Consumers) -> None:
    bad = Bar(START_NS, START_NS, BTC, 3600, D(1), D(2), D(0), D(1), D(1))
    world.send(bad)
    [rejected] = world.rejected()
    assert rejected.reason == NON_POSITIVE
    assert BTC not in world.risk.marks


async def test_the_journal_keeps_the_rejected_record(tmp_path: Path) -> None:
    clock = SimulatedClock(START_NS)
    async with Journal(tmp_path / "j.db") as journal:
        world = Consumers(clock, Config(), journal)
        world.send(bar(BTC, 20_000, 1), bar(BTC, -5, 2))
    async with JournalReader(tmp_path / "j.db") as reader:
        records = [rec async for rec in reader.records()]
    [verdict] = [rec.message for rec in records if isinstance(rec.message, DataRejected)]
    [bad] = [rec for rec in records if rec.seq == verdict.seq]
    assert isinstance(bad.message, Bar)
    assert bad.message.close == D(-5)


def test_the_funding_limit_is_configured_and_checked() -> None:
    config = parse_config("[risk]\nmax_abs_funding_rate = 0.10\n")
    gate = MarketGate.from_config(config, SimulatedClock(START_NS))
    assert gate.guard.max_abs_funding_rate == D("0.10")
    assert RiskConfig().max_abs_funding_rate == D("0.03")
    for bad in ("0", "-0.01", "nan"):
        with pytest.raises(ConfigError, match=r"risk\.max_abs_funding_rate"):
            parse_config(f"[risk]\nmax_abs_funding_rate = {bad}\n")


@pytest.mark.parametrize("rate", ["0.03", "-0.03", "0", "0.0001"])
def test_plausible_funding_rates_pass(rate: str) -> None:
    assert MarketGuard().check_funding(BTC_PERP, D(rate)) is None


@pytest.mark.parametrize("rate", ["0.0301", "-0.5", "5.0", "NaN", "Infinity", "-Infinity"])
def test_implausible_funding_rates_are_rejected_and_counted(rate: str) -> None:
    guard = MarketGuard()
    rejection = guard.check_funding(BTC_PERP, D(rate))
    assert rejection is not None
    assert rejection.reason == FUNDING_RATE
    assert guard.reject_count(BTC_PERP, FUNDING_RATE) == 1


def test_quotes_go_through_the_same_gate(world: Consumers) -> None:
    world.send(QuoteTick(START_NS, START_NS, BTC, D(20_010), D(20_000), D(1), D(1)))
    assert [r.reason for r in world.rejected()] == ["crossed_quote"]
    assert BTC not in world.risk.marks


def test_metrics_count_every_verdict_by_reason(world: Consumers) -> None:
    world.send(mark(20_000, 1), mark(20_010, 2, rate="5.0"), bar(BTC, 20_000, 3))
    world.send(bar(BTC, 200_000, 4), bar(BTC, 0, 5))
    text = world.metrics.exposition().decode()
    for reason, count in ((FUNDING_RATE, 1), (PRICE_JUMP, 1), (NON_POSITIVE, 1)):
        assert f'ballast_data_rejected_total{{reason="{reason}"}} {count}.0' in text
    assert 'ballast_data_rejected_total{reason="crossed_quote"} 0.0' in text


def test_only_a_live_venue_holds_a_symbols_first_quote() -> None:
    clock = SimulatedClock(START_NS)
    live = parse_config('[venue]\nkind = "paper"\n')
    assert MarketGate.from_config(live, clock).guard.confirm_first
    assert not MarketGate.from_config(live, clock, history=True).guard.confirm_first
    assert not MarketGate.from_config(parse_config(""), clock).guard.confirm_first
