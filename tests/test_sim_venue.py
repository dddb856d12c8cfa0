"""The SimulatedVenue: the simulated exchange behind the async Venue interface, on the clock.

Given a venue on a SimulatedClock with a sink attached → when market data, orders, timers and
funding reach it → then the events the sink received, in order. The venue contract suite
(tests/test_venue_contract.py, harness ``sim``) covers the Venue interface itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ballast.adapters.sim import Latency, SimConfig
from ballast.adapters.sim.venue import SimulatedVenue
from ballast.engine.app.session import Session
from ballast.engine.kernel.clock import NS_PER_HOUR, NS_PER_SECOND, SimulatedClock
from ballast.engine.kernel.codec import encode
from ballast.engine.kernel.commands import CancelOrder, SubmitOrder
from ballast.engine.kernel.config import Config, JournalConfig
from ballast.engine.kernel.events import (
    BalanceUpdated,
    Bar,
    FundingPaid,
    HandlerFailed,
    InstrumentsLoaded,
    MarketData,
    MarkPriceUpdated,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderSubmitted,
    PositionUpdated,
    TradeTick,
)
from ballast.engine.kernel.instruments import binance_defaults
from ballast.engine.kernel.journal import Journal, JournalReader
from tests.conftest import START_NS
from tests.support.waiting import eventually

D = Decimal
SPOT = "BTC/USDT"
PERP = "BTC/USDT:USDT"
T0 = START_NS
MS = 1_000_000
HOUR = NS_PER_HOUR
INSTRUMENTS = binance_defaults(["BTC", "ETH"])
E = TypeVar("E", bound=Message)


# ------------------------------------------------------------------------------------ helpers


class Sink:
    """What the venue emitted, in order."""

    def __init__(self) -> None:
        self.events: list[Message] = []

    async def __call__(self, event: Message) -> int:
        self.events.append(event)
        return len(self.events)

    def since(self, start: int) -> list[str]:
        return [type(e).__name__ for e in self.events[start:]]

    def only(self, cls: type[E]) -> E:
        found = [e for e in self.events if isinstance(e, cls)]
        assert len(found) == 1, self.since(0)
        return found[0]


def venue_on(
    clock: SimulatedClock, usdt: str = "100000", *, fill_ms: int = 0, ack_ms: int = 0
) -> tuple[SimulatedVenue, Sink]:
    config = SimConfig(
        balances={"USDT": D(usdt)}, latency=Latency(ack_ns=ack_ms * MS, fill_ns=fill_ms * MS)
    )
    venue = SimulatedVenue(INSTRUMENTS, clock, config)
    sink = Sink()
    venue.attach(sink)
    return venue, sink


def bar(symbol: str, close: str, ts: int, *, low: str | None = None) -> Bar:
    c = D(close)
    return Bar(ts, ts, symbol, 3600, c, c, D(low) if low is not None else c, c, D(1))


def trade(symbol: str, price: str, ts: int) -> TradeTick:
    return TradeTick(ts, ts, symbol, D(price), D(1), None, f"x-{ts}")


def mark(symbol: str, price: str, ts: int) -> MarkPriceUpdated:
    return MarkPriceUpdated(ts, ts, symbol, D(price), D(price), D(0), 0)


def order(
    cid: str,
    side: str,
    qty: str,
    *,
    symbol: str = SPOT,
    price: str | None = None,
    reduce_only: bool = False,
    ts: int = T0,
) -> SubmitOrder:
    return SubmitOrder(
        ts_event=ts,
        ts_init=ts,
        intent_id=f"i-{cid}",
        client_order_id=cid,
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        order_type="market" if price is None else "limit",
        qty=D(qty),
        price=None if price is None else D(price),
        reduce_only=reduce_only,
        post_only=False,
        time_in_force="IOC" if price is None else "GTC",
    )


async def at(clock: SimulatedClock, venue: SimulatedVenue, ts: int, event: MarketData) -> None:
    """What a backtest driver does per market event."""
    clock.advance_to(ts)
    await venue.on_market(event)


FILLED = ["OrderSubmitted", "OrderAccepted", "OrderFilled", "BalanceUpdated", "BalanceUpdated"]


# ------------------------------------------------------------------------------------ latency


async def test_with_zero_latency_a_market_order_is_filled_before_submit_returns(
    sim_clock: SimulatedClock,
) -> None:
    venue, sink = venue_on(sim_clock)
    await at(sim_clock, venue, T0, bar(SPOT, "50000", T0))

    await venue.submit(order("c1", "buy", "0.1"))

    assert sink.since(1) == FILLED
    fill = sink.only(OrderFilled)
    assert (fill.price, fill.fee, fill.ts_event) == (D(50000), D(5), T0)
    assert venue.exchange.balance("USDT") == D(100000 - 5000 - 5)


async def test_with_a_fill_latency_the_order_fills_when_the_clock_reaches_it_at_the_price_then(
    sim_clock: SimulatedClock,
) -> None:
    venue, sink = venue_on(sim_clock, fill_ms=50)
    await at(sim_clock, venue, T0, bar(SPOT, "50000", T0))

    await venue.submit(order("c1", "buy", "0.1"))
    assert sink.since(1) == ["OrderSubmitted"]  # the adapter sent it; the exchange has not got it
    assert venue.in_flight == ["c1"]
    assert await venue.order_status("c1", SPOT) is None
    await at(sim_clock, venue, T0 + 10 * MS, trade(SPOT, "50100", T0 + 10 * MS))
    assert OrderFilled not in map(type, sink.events)

    sim_clock.advance_to(T0 + 60 * MS)  # the hand-over timer fires at T0 + 50 ms
    await venue.drain()

    assert sink.since(2) == ["TradeTick", *FILLED[1:]]
    fill = sink.only(OrderFilled)
    assert (fill.price, fill.ts_event, fill.ts_init) == (D(50100), T0 + 50 * MS, T0 + 50 * MS)
    status = await venue.order_status("c1", SPOT)
    assert status is not None
    assert status.state == "filled"
    assert venue.in_flight == []


async def test_with_an_ack_latency_reports_arrive_later_stamped_on_arrival_market_data_does_not(
    sim_clock: SimulatedClock,
) -> None:
    venue, sink = venue_on(sim_clock, fill_ms=50, ack_ms=20)
    await at(sim_clock, venue, T0, bar(SPOT, "50000", T0))
    await venue.submit(order("c1", "buy", "0.1"))

    sim_clock.advance_to(T0 + 50 * MS)
    await venue.drain()
    assert sink.since(1) == ["OrderSubmitted"]  # filled at the exchange, not yet reported
    assert venue.exchange.balance("BTC") == D("0.1")
    await at(sim_clock, venue, T0 + 60 * MS, trade(SPOT, "50200", T0 + 60 * MS))
    assert sink.since(2) == ["TradeTick"]

    sim_clock.advance_to(T0 + 70 * MS)
    await venue.drain()

    assert sink.since(3) == FILLED[1:]
    fill = sink.only(OrderFilled)
    assert (fill.price, fill.ts_event, fill.ts_init) == (D(50000), T0 + 50 * MS, T0 + 70 * MS)


async def test_a_timer_starts_the_delivery_itself_on_a_running_loop(
    sim_clock: SimulatedClock,
) -> None:
    venue, sink = venue_on(sim_clock, fill_ms=50)
    await at(sim_clock, venue, T0, bar(SPOT, "50000", T0))
    await venue.submit(order("c1", "buy", "0.1"))

    sim_clock.advance_to(T0 + 50 * MS)  # no drain() call: paper trading on a live clock

    await eventually(lambda: any(isinstance(e, OrderFilled) for e in sink.events))
    assert sink.since(1) == FILLED


async def test_close_cancels_the_timers_of_orders_still_on_their_way(
    sim_clock: SimulatedClock,
) -> None:
    venue, sink = venue_on(sim_clock, fill_ms=50)
    await at(sim_clock, venue, T0, bar(SPOT, "50000", T0))
    await venue.submit(order("c1", "buy", "0.1"))

    await venue.close()
    sim_clock.advance_to(T0 + HOUR)
    await venue.drain()

    assert sink.since(1) == ["OrderSubmitted"]
    assert sim_clock.timer_names == []


# -------------------------------------------------------------------------- orders, idempotency


async def test_a_resend_while_in_flight_or_after_the_fill_is_the_same_order(
    sim_clock: SimulatedClock,
) -> None:
    venue, sink = venue_on(sim_clock, fill_ms=50)
    await at(sim_clock, venue, T0, bar(SPOT, "50000", T0))
    await venue.submit(order("c1", "buy", "0.1"))
    await venue.submit(order("c1", "buy", "0.1"))

    sim_clock.advance_to(T0 + 50 * MS)
    await venue.drain()
    await venue.submit(order("c1", "buy", "0.1"))
    sim_clock.advance_to(T0 + 100 * MS)
    await venue.drain()

    assert sink.since(1) == FILLED
    assert venue.exchange.balance("BTC") == D("0.1")


async def test_a_cancel_travels_behind_its_order_and_never_overtakes_it(
    sim_clock: SimulatedClock,
) -> None:
    venue, sink = venue_on(sim_clock, fill_ms=50)
    await at(sim_clock, venue, T0, bar(SPOT, "50000", T0))
    await venue.submit(order("c1", "buy", "0.1", price="49000"))

    await venue.cancel(CancelOrder(T0, T0, "c1", SPOT, "stale"))
    sim_clock.advance_to(T0 + 50 * MS)
    await venue.drain()

    assert sink.since(1) == [
        "OrderSubmitted",
        "OrderAccepted",
        "BalanceUpdated",  # USDT locked by the resting buy
        "OrderCanceled",
        "BalanceUpdated",  # and released
    ]
    assert sink.only(OrderCanceled).reason == "stale"
    assert venue.exchange.locked("USDT") == 0
    assert await venue.open_orders() == []


async def test_a_resting_limit_order_is_filled_right_after_the_bar_that_touches_it(
    sim_clock: SimulatedClock,
) -> None:
    venue, sink = venue_on(sim_clock)
    await at(sim_clock, venue, T0, bar(SPOT, "50000", T0))
    await venue.submit(order("c1", "buy", "0.1", price="49000"))
    assert sink.since(1) == ["OrderSubmitted", "OrderAccepted", "BalanceUpdated"]
    await at(sim_clock, venue, T0 + HOUR, bar(SPOT, "49500", T0 + HOUR, low="49100"))
    assert OrderFilled not in map(type, sink.events)
    seen = len(sink.events)

    await at(sim_clock, venue, T0 + 2 * HOUR, bar(SPOT, "49500", T0 + 2 * HOUR, low="48900"))

    assert sink.since(seen) == ["Bar", "OrderFilled", "BalanceUpdated", "BalanceUpdated"]
    fill = sink.only(OrderFilled)
    assert (fill.price, fill.liquidity, fill.ts_event) == (D(49000), "maker", T0 + 2 * HOUR)
    assert fill.fee == D("0.1") * D(49000) * D("0.001")


async def test_when_the_sink_fails_on_a_bar_what_the_bar_caused_waits_for_the_next_drain(
    sim_clock: SimulatedClock,
) -> None:
    venue, sink = venue_on(sim_clock)
    await at(sim_clock, venue, T0, bar(SPOT, "50000", T0))
    await venue.submit(order("c1", "buy", "0.1", price="49000"))
    seen = len(sink.events)
    failing = True

    async def flaky(event: Message) -> int:
        if failing:
            raise RuntimeError("sink down")
        return await sink(event)

    venue.attach(flaky)
    with pytest.raises(RuntimeError, match="sink down"):
        await at(sim_clock, venue, T0 + HOUR, bar(SPOT, "49500", T0 + HOUR, low="48900"))
    assert venue.undelivered == 3
    failing = False

    assert await venue.drain() == 3

    assert sink.since(seen) == ["OrderFilled", "BalanceUpdated", "BalanceUpdated"]
    assert venue.undelivered == 0


async def test_closing_a_perp_realises_its_pnl_into_the_one_usdt_balance(
    sim_clock: SimulatedClock,
) -> None:
    venue, sink = venue_on(sim_clock)
    await at(sim_clock, venue, T0, bar(PERP, "50000", T0))
    await venue.submit(order("p1", "buy", "0.1", symbol=PERP))
    await at(sim_clock, venue, T0 + HOUR, bar(PERP, "51000", T0 + HOUR))

    await venue.submit(order("p2", "sell", "0.1", symbol=PERP, reduce_only=True))

    fees = sum((e.fee for e in sink.events if isinstance(e, OrderFilled)), D(0))
    assert fees == D("0.1") * (D(50000) + D(51000)) * D("0.0005")
    balances = [e for e in sink.events if isinstance(e, BalanceUpdated)]
    assert {(b.account, b.asset) for b in balances} == {("spot", "USDT")}
    assert balances[-1].free == D(100000) + D(100) - fees
    positions = [e for e in sink.events if isinstance(e, PositionUpdated)]
    assert positions[-1].qty == 0


# ------------------------------------------------------------------------ funding, liquidation


async def test_funding_settlement_emits_the_exact_payment_and_the_new_balance(
    sim_clock: SimulatedClock,
) -> None:
    venue, sink = venue_on(sim_clock)
    await at(sim_clock, venue, T0, bar(PERP, "50000", T0))
    await venue.submit(order("p1", "buy", "0.1", symbol=PERP))
    before = venue.exchange.balance("USDT")
    seen = len(sink.events)

    settle = T0 + 8 * HOUR
    sim_clock.advance_to(settle)
    await venue.settle_funding(PERP, D("0.0001"), D(50500), settle)

    assert sink.since(seen) == ["FundingPaid", "BalanceUpdated"]
    paid = sink.only(FundingPaid)
    # −qty × mark × rate: the long pays 0.1 × 50 500 × 0.0001
    assert (paid.amount, paid.asset, paid.ts_event) == (D("-0.505"), "USDT", settle)
    assert sink.events[-1] == BalanceUpdated(
        settle, settle, "spot", "USDT", before - D("0.505"), D(0)
    )


async def test_a_mark_falling_through_the_liquidation_price_liquidates_right_after_it(
    sim_clock: SimulatedClock,
) -> None:
    venue, sink = venue_on(sim_clock, usdt="10000")
    await at(sim_clock, venue, T0, bar(PERP, "50000", T0))
    await venue.submit(order("p1", "buy", "2", symbol=PERP))  # 10×
    [opened] = [e for e in sink.events if isinstance(e, PositionUpdated)]
    assert opened.liquidation_price == D("45226.1")
    await at(sim_clock, venue, T0 + 1, mark(PERP, "45226.2", T0 + 1))
    seen = len(sink.events)

    await at(sim_clock, venue, T0 + 2, mark(PERP, "45226.1", T0 + 2))

    assert sink.since(seen) == [
        "MarkPriceUpdated",
        "OrderFilled",
        "BalanceUpdated",
        "PositionUpdated",
    ]
    liquidation = [e for e in sink.events if isinstance(e, OrderFilled)][-1]
    assert (liquidation.liquidity, liquidation.side, liquidation.price) == (
        "liquidation",
        "sell",
        D("45226.1"),
    )
    position = sink.events[-1]
    assert isinstance(position, PositionUpdated)
    assert position.qty == 0


# ---------------------------------------------------------------------------------- determinism


async def _scripted_run(fill_ms: int, ack_ms: int) -> list[bytes]:
    clock = SimulatedClock(T0)
    venue, sink = venue_on(clock, fill_ms=fill_ms, ack_ms=ack_ms)
    await at(clock, venue, T0, bar(SPOT, "50000", T0))
    await at(clock, venue, T0, bar(PERP, "50000", T0))
    await venue.submit(order("c1", "buy", "0.1"))
    await venue.submit(order("c2", "buy", "0.1", price="49500"))
    await venue.submit(order("p1", "sell", "0.2", symbol=PERP))
    for n, close in enumerate(["49800", "49400", "50300"], start=1):
        ts = T0 + n * 30 * MS
        await at(clock, venue, ts, bar(SPOT, close, ts, low=close))
        await at(clock, venue, ts, bar(PERP, close, ts, low=close))
    clock.advance_to(T0 + HOUR)
    await venue.drain()
    await venue.settle_funding(PERP, D("0.0002"), D(50300), T0 + HOUR)
    return [encode(e) for e in sink.events]


@pytest.mark.parametrize(("fill_ms", "ack_ms"), [(0, 0), (50, 0), (40, 25)])
async def test_the_same_inputs_give_the_same_events_byte_for_byte(
    fill_ms: int, ack_ms: int
) -> None:
    first = await _scripted_run(fill_ms, ack_ms)

    assert await _scripted_run(fill_ms, ack_ms) == first
    assert len(first) > 15


# ------------------------------------------------------------------------------------ session


def session_config(tmp_path: Path) -> Config:
    return Config(journal=JournalConfig(path=str(tmp_path / "journal.db")))


async def journaled(path: str) -> list[Message]:
    async with JournalReader(path) as reader:
        return await reader.messages()


def names(messages: Sequence[Any]) -> list[str]:
    return [type(m).__name__ for m in messages]


@pytest.mark.parametrize("fill_ms", [0, 50])
async def test_in_a_session_the_venue_journals_instruments_account_and_fills_durably(
    tmp_path: Path, fill_ms: int
) -> None:
    clock = SimulatedClock(T0)
    config = session_config(tmp_path)
    path = config.journal.path
    venue, _ = venue_on(clock, fill_ms=fill_ms)
    async with (
        Journal(path) as journal,
        Session(config, clock, journal=journal, venue=venue) as session,
    ):
        started = await journaled(path)
        await at(clock, venue, T0 + NS_PER_SECOND, trade(SPOT, "50000", T0 + NS_PER_SECOND))
        await session.idle()

        await venue.submit(order("c1", "buy", "0.01", ts=clock.now_ns()))
        clock.advance_to(T0 + NS_PER_SECOND + fill_ms * MS)
        await venue.drain()
        durable = await journaled(path)  # read while the session still runs: on disk already
        await session.idle()

    [loaded] = [m for m in started if isinstance(m, InstrumentsLoaded)]
    assert loaded.venue == "sim"
    assert {i.symbol for i in loaded.instruments} == {i.symbol for i in INSTRUMENTS}
    opening = [m for m in started if isinstance(m, BalanceUpdated)]
    assert [(b.asset, b.free) for b in opening] == [("USDT", D(100000))]
    ours: list[Message] = [
        m for m in durable if isinstance(m, TradeTick | OrderSubmitted | OrderAccepted)
    ]
    ours += [m for m in durable if isinstance(m, OrderFilled)]
    assert names(ours) == ["TradeTick", "OrderSubmitted", "OrderAccepted", "OrderFilled"]
    fill = ours[-1]
    assert isinstance(fill, OrderFilled)
    assert (fill.price, fill.ts_event) == (D(50000), T0 + NS_PER_SECOND + fill_ms * MS)
    assert fill.client_order_id == "c1"
    final = await journaled(path)
    assert [m for m in final if isinstance(m, OrderFilled)] == [fill]
    assert not [m for m in final if isinstance(m, HandlerFailed)]
