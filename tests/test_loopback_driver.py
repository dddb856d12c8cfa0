"""The loopback exchange's market driver: a half day of the bundled data replayed into an exchange
core at a pace (steps, quotes, marks, funding, pause/resume/step, resume from its position file).

These tests drive the real exchange core (no server), recording what the driver hands it; the
tests through the real loopback server and a real ccxt.pro client are in
``tests/test_venue_serve.py``.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from ballast.adapters.data.bundle import MarketBundle
from ballast.adapters.loopback.core import LoopbackCore
from ballast.adapters.loopback.driver import (
    DriverPosition,
    MarketDriver,
    load_position,
    save_position,
    steps_of,
)
from ballast.adapters.sim.config import SimConfig
from ballast.engine.kernel.clock import NS_PER_HOUR, LiveClock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.errors import BallastError
from ballast.engine.kernel.events import Bar, MarketData, MarkPriceUpdated, QuoteTick
from ballast.engine.kernel.instruments import binance_defaults, is_perp
from ballast.engine.kernel.timefmt import parse_time
from tests.support.paper_config import DATA
from tests.support.waiting import eventually

START, END = "2022-05-01T00:00", "2022-05-01T12:00"


def half_day() -> MarketBundle:
    return MarketBundle.load(DATA, ["BTC", "ETH"], start=START, end=END)


@dataclass
class Settled:
    symbol: str
    rate: Decimal
    mark: Decimal
    ts_ns: int
    after_steps: int


class RecordingCore(LoopbackCore):
    """The real exchange core, recording what the driver hands it (and, per step, optionally
    taking its time)."""

    def __init__(self, delay_s: dict[int, float] | None = None) -> None:
        super().__init__(
            binance_defaults(["BTC", "ETH"]),
            SimConfig(balances={"USDT": Decimal(100_000)}),
            LiveClock(),
        )
        self.market: list[MarketData] = []
        self.funding: list[Settled] = []
        self.sent_at: list[float] = []
        """Loop time each market event was handed over at."""
        self.delay_s = delay_s or {}
        """Step index → how long the core takes for each event of that step."""
        self.driver: MarketDriver | None = None
        self.dues: list[float | None] = []
        """Per step, the loop time it was due at (the driver's ``next_due`` when it came)."""

    async def on_market(self, event: MarketData) -> None:
        self.sent_at.append(asyncio.get_running_loop().time())
        step = len({e.ts_event for e in self.market} | {event.ts_event}) - 1
        if step == len(self.dues):
            self.dues.append(self.driver.next_due if self.driver is not None else None)
        if self.delay_s.get(step):
            await asyncio.sleep(self.delay_s[step])
        await super().on_market(event)
        self.market.append(event)

    async def settle_funding(self, symbol: str, rate: Decimal, mark: Decimal, ts_ns: int) -> None:
        await super().settle_funding(symbol, rate, mark, ts_ns)
        steps = len({e.ts_event for e in self.market})
        self.funding.append(Settled(symbol, rate, mark, ts_ns, steps))

    def steps(self) -> list[list[MarketData]]:
        return [events for _, events in steps_of(self.market)]

    def step_sent_at(self) -> list[float]:
        """Loop time the first event of each step was handed over at."""
        firsts = [events[0] for events in self.steps()]
        return [self.sent_at[self.market.index(e)] for e in firsts]


def driver(core: RecordingCore, step_s: float = 0.0, **options: object) -> MarketDriver:
    return MarketDriver(half_day(), core, LiveClock(), step_s=step_s, **options)  # type: ignore[arg-type]


async def test_a_step_is_each_bar_with_its_quote_then_the_marks_all_stamped_now() -> None:
    core = RecordingCore()
    feed = driver(core, spread_ticks=2)
    assert await feed.run() == "exhausted"
    data = [events for _, events in steps_of(half_day().events())]
    assert feed.finished.is_set()
    assert feed.steps == len(data) == 12
    assert feed.data_ts_ns == parse_time("2022-05-01T11:00")
    steps = core.steps()
    assert len(steps) == len(data)
    for sent, original in zip(steps, data, strict=True):
        bars = [e for e in original if isinstance(e, Bar)]
        marks = [e for e in original if isinstance(e, MarkPriceUpdated)]
        assert len(sent) == 2 * len(bars) + len(marks)
        for i, bar in enumerate(bars):
            replayed, quote = sent[2 * i], sent[2 * i + 1]
            assert isinstance(replayed, Bar)
            assert isinstance(quote, QuoteTick)
            assert (replayed.symbol, replayed.close, replayed.high) == (
                bar.symbol,
                bar.close,
                bar.high,
            )
            tick = core.exchange.instruments[bar.symbol].tick_size
            assert quote.symbol == bar.symbol
            assert quote.ask - quote.bid == 2 * tick
            assert quote.bid == bar.close - tick  # two ticks around the close
            assert quote.bid_size > 0
            assert quote.ask_size == quote.bid_size
        sent_marks = sent[2 * len(bars) :]
        assert [(m.symbol, m.mark, m.funding_rate) for m in sent_marks] == [  # type: ignore[union-attr]
            (m.symbol, m.mark, m.funding_rate) for m in marks
        ]
        assert all(isinstance(m, MarkPriceUpdated) for m in sent_marks)
        assert len({e.ts_event for e in sent}) == 1  # one instant
        assert all(e.ts_init == e.ts_event for e in sent)
    stamps = [s[0].ts_event for s in steps]
    assert stamps == sorted(stamps)


async def test_one_tick_spread_bids_the_close() -> None:
    core = RecordingCore()
    await driver(core).run()
    quotes = [e for e in core.market if isinstance(e, QuoteTick)]
    bars = [e for e in core.market if isinstance(e, Bar)]
    for bar, quote in zip(bars, quotes, strict=True):
        tick = core.exchange.instruments[bar.symbol].tick_size
        assert (quote.bid, quote.ask) == (bar.close, bar.close + tick)
        # the core took it: its best bid/ask is the quote
    assert core.exchange.last_price("BTC/USDT") == (quotes[-4].bid + quotes[-4].ask) / 2


async def test_next_funding_time_is_mapped_to_wall_time_at_the_pace() -> None:
    core = RecordingCore()
    feed = driver(core, step_s=0.01)
    await feed.run()
    data_marks = [e for e in half_day().events() if isinstance(e, MarkPriceUpdated)]
    sent_marks = [e for e in core.market if isinstance(e, MarkPriceUpdated)]
    for data, sent in zip(data_marks, sent_marks, strict=True):
        hours_left = (data.next_funding_ns - data.ts_event) / NS_PER_HOUR
        assert 0 < hours_left <= 8
        # one data hour (the bar interval) is 0.01 s of wall time
        expected = sent.ts_event + round(hours_left * 0.01 * 1e9)
        assert abs(sent.next_funding_ns - expected) <= 1


async def test_funding_settles_between_the_step_of_its_time_and_the_next() -> None:
    core = RecordingCore()
    await driver(core).run()
    bundle = half_day()
    assert [(s.ts_ns, s.symbol) for s in bundle.settlements] == [
        (parse_time(START), "BTC/USDT:USDT"),
        (parse_time(START), "ETH/USDT:USDT"),
        (parse_time("2022-05-01T08:00"), "BTC/USDT:USDT"),
        (parse_time("2022-05-01T08:00"), "ETH/USDT:USDT"),
    ]
    # after the step of their time: 00:00 is the 1st step, 08:00 the 9th
    assert [(f.symbol, f.rate, f.after_steps) for f in core.funding] == [
        (s.symbol, s.rate, 1 if s.ts_ns == parse_time(START) else 9) for s in bundle.settlements
    ]
    for paid, due in zip(core.funding, bundle.settlements, strict=True):
        assert paid.mark == due.mark or (due.mark is None and paid.mark > 0)
        assert paid.ts_ns > 0


async def test_funding_pays_a_held_position() -> None:
    core = RecordingCore()
    feed = driver(core)
    assert await feed.step()
    now = LiveClock().now_ns()
    order = SubmitOrder(
        now, now, "i-1", "c-1", "BTC/USDT:USDT", "buy", "market", Decimal("0.01"), None,
        False, False, "GTC",
    )  # fmt: skip
    assert (await core.submit(order)).status == "FILLED"
    before = core.exchange.balance("USDT")
    await feed.run()
    assert len(core.funding) == 4
    paid = sum(-Decimal("0.01") * f.mark * f.rate for f in core.funding if f.symbol[:3] == "BTC")
    assert paid != 0
    fees_and_pnl_free = core.exchange.balance("USDT") - before
    assert fees_and_pnl_free == paid
    funding = [i for i in core.income if i.income_type == "FUNDING_FEE"]
    assert [i.symbol for i in funding] == ["BTC/USDT:USDT"] * 2
    assert sum(i.income for i in funding) == paid


async def test_steps_are_on_a_grid_and_never_early() -> None:
    # each event takes time: the grid does not drift with it
    core = RecordingCore(dict.fromkeys(range(12), 0.003))
    feed = core.driver = driver(core, step_s=0.1)
    runner = asyncio.create_task(feed.run())
    await eventually(lambda: feed.steps >= 5, within_s=10)
    feed.halt()
    assert await runner == "halted"
    dues = [due for due in core.dues[1:5] if due is not None]  # the first is due at once
    assert len(dues) == 4
    for due, at in zip(dues, core.step_sent_at()[1:], strict=False):
        assert at >= due, "a step was sent before it was due"
    # each next step is due one step after the previous was due, not after it was done (later
    # only when sending a step took longer than a step, as a loaded machine may make it)
    gaps = [b - a for a, b in itertools.pairwise(dues)]
    assert all(gap >= 0.1 - 1e-9 for gap in gaps), gaps
    on_grid = [gap for gap in gaps if gap == pytest.approx(0.1, abs=1e-9)]
    assert len(on_grid) * 2 >= len(gaps), gaps  # a drifting pace would have none


async def test_a_driver_that_falls_behind_goes_on_without_a_burst() -> None:
    core = RecordingCore({1: 0.03})  # 10 events: the second step takes six steps' time
    feed = core.driver = driver(core, step_s=0.05)
    runner = asyncio.create_task(feed.run())
    await eventually(lambda: feed.steps >= 5, within_s=10)
    feed.halt()
    await runner
    dues = [due for due in core.dues[1:5] if due is not None]
    assert len(dues) == 4
    assert dues[1] - dues[0] >= 0.3  # the step after the slow one is due when it is done
    # and the next ones a step apart again: no burst to catch up with the grid
    assert all(b - a >= 0.05 - 1e-9 for a, b in itertools.pairwise(dues)), dues


async def test_pause_stops_the_steps_and_resume_restarts_them() -> None:
    core = RecordingCore()
    feed = driver(core, step_s=0.02)
    runner = asyncio.create_task(feed.run())
    await eventually(lambda: feed.steps >= 2)
    feed.pause()
    assert feed.paused
    paused_at = feed.steps
    sent = len(core.market)
    await asyncio.sleep(0.15)  # several steps' time: nothing is sent while paused
    assert feed.steps in (paused_at, paused_at + 1)  # the one being sent is finished
    held = len(core.market)
    assert held - sent <= 10
    await asyncio.sleep(0.1)
    assert len(core.market) == held
    feed.resume()
    await eventually(lambda: feed.steps >= paused_at + 3)
    feed.halt()
    assert await runner == "halted"
    assert not feed.finished.is_set()


async def test_step_sends_exactly_the_next_step_while_paused() -> None:
    core = RecordingCore()
    feed = driver(core, step_s=3600)
    feed.pause()
    runner = asyncio.create_task(feed.run())
    assert await feed.step()
    assert feed.steps == 1
    assert len(core.steps()) == 1
    assert await feed.step()
    assert feed.steps == 2
    assert len(core.steps()) == 2
    assert feed.data_ts_ns == parse_time("2022-05-01T01:00")
    feed.halt()
    assert await runner == "halted"


async def test_step_without_run_walks_the_data_to_its_end() -> None:
    core = RecordingCore()
    feed = driver(core, step_s=3600)
    for _ in range(12):
        assert await feed.step()
    assert not feed.finished.is_set()
    assert not await feed.step()  # the last settlements, then finished
    assert feed.finished.is_set()
    assert feed.steps == 12
    assert not await feed.step()


async def test_a_huge_step_waits_and_halt_ends_the_wait() -> None:
    core = RecordingCore()
    feed = driver(core, step_s=3600)
    runner = asyncio.create_task(feed.run())
    await eventually(lambda: feed.steps == 1)  # the first step is due at once
    feed.halt()
    assert await asyncio.wait_for(runner, 5) == "halted"
    assert feed.steps == 1


async def test_start_at_skips_the_steps_and_settlements_before_it() -> None:
    core = RecordingCore()
    feed = driver(core, start_at=parse_time("2022-05-01T09:00"))
    await feed.run()
    steps = core.steps()
    assert len(steps) == 3  # 09:00 .. 11:00
    assert feed.steps == 3
    assert core.funding == []  # the 08:00 settlement is before the start


async def test_a_restarted_driver_goes_on_after_its_last_step(tmp_path: Path) -> None:
    position = tmp_path / "state.db.driver.json"
    whole = RecordingCore()
    await driver(whole).run()

    first = RecordingCore()
    feed = driver(first, step_s=3600, position_path=position)
    for _ in range(9):  # up to the step of 08:00; its settlements are due before the next
        await feed.step()
    assert load_position(position) == DriverPosition(parse_time("2022-05-01T08:00"), 9, 0)

    second = RecordingCore()
    again = driver(second, position_path=position)
    assert again.resumed_from == DriverPosition(parse_time("2022-05-01T08:00"), 9, 0)
    assert again.steps == 9
    assert again.data_ts_ns == parse_time("2022-05-01T08:00")
    await again.run()
    assert again.steps == 12
    assert len(second.steps()) == 3
    assert [(f.symbol, f.rate) for f in second.funding] == [
        (f.symbol, f.rate)
        for f in whole.funding[2:]  # those of 08:00; 00:00 was paid before
    ]
    closes = [(e.symbol, e.close) for e in second.market if isinstance(e, Bar)]
    wanted = [(e.symbol, e.close) for e in whole.market if isinstance(e, Bar)]
    assert closes == wanted[-len(closes) :]
    assert load_position(position) == DriverPosition(parse_time("2022-05-01T11:00"), 12, 0)


async def test_a_restart_does_not_pay_again_the_funding_paid_after_the_last_step(
    tmp_path: Path,
) -> None:
    position = tmp_path / "state.db.driver.json"
    at_eight = parse_time("2022-05-01T08:00")
    save_position(position, DriverPosition(at_eight, 9, 1))  # killed after one of two payments
    core = RecordingCore()
    await driver(core, position_path=position).run()
    assert [f.symbol for f in core.funding] == ["ETH/USDT:USDT"]
    assert len(core.steps()) == 3


async def test_a_finished_driver_restarted_sends_nothing(tmp_path: Path) -> None:
    position = tmp_path / "p.json"
    await driver(RecordingCore(), position_path=position).run()
    core = RecordingCore()
    feed = driver(core, position_path=position)
    assert await feed.run() == "exhausted"
    assert core.market == []
    assert core.funding == []
    assert feed.steps == 12


def test_a_position_file_that_is_not_one_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "p.json"
    bad.write_text("not json")
    with pytest.raises(BallastError, match="not a market driver position file"):
        load_position(bad)
    assert load_position(tmp_path / "missing.json") is None


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="step_s"):
        driver(RecordingCore(), step_s=-1)
    with pytest.raises(ValueError, match="spread_ticks"):
        driver(RecordingCore(), spread_ticks=0)


async def test_quote_size_is_the_given_size_or_a_share_of_volume() -> None:
    core = RecordingCore()
    await driver(core, quote_size=Decimal("0.5")).run()
    assert {e.bid_size for e in core.market if isinstance(e, QuoteTick)} == {Decimal("0.5")}
    core = RecordingCore()
    await driver(core).run()
    for bar, quote in zip(
        [e for e in core.market if isinstance(e, Bar)],
        [e for e in core.market if isinstance(e, QuoteTick)],
        strict=True,
    ):
        lot = core.exchange.instruments[bar.symbol].lot_size
        assert quote.bid_size >= lot
        assert quote.bid_size <= max(bar.volume / 100, lot)
        assert is_perp(bar.symbol) == is_perp(quote.symbol)
