"""The paper feed in-process: a real session on the live clock, the simulated venue and a real
journal in tmp_path, fed half a day of the bundled data, five bar times a second."""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path

from ballast.adapters.data.bundle import MarketBundle
from ballast.adapters.sim.venue import SimulatedVenue
from ballast.engine.app.backtest import assets_of, sim_config
from ballast.engine.app.paper_feed import FeedResult, PaperFeed, by_timestamp
from ballast.engine.app.session import Session
from ballast.engine.kernel.clock import LiveClock
from ballast.engine.kernel.config import parse_config
from ballast.engine.kernel.events import Bar, MarkPriceUpdated, Message, PortfolioSnapshot
from ballast.engine.kernel.instruments import base_of, binance_defaults, is_perp
from ballast.engine.kernel.journal import Journal, JournalReader
from tests.support.paper_config import DATA

START, END = "2022-05-01T00:00", "2022-05-01T12:00"
STEP_S = 0.2  # the portfolio snapshots prices at most once a second of (wall-clock) event time


def half_day() -> MarketBundle:
    return MarketBundle.load(DATA, ["BTC", "ETH"], start=START, end=END)


async def feed_into_journal(path: Path, step_s: float = STEP_S) -> tuple[FeedResult, list[Message]]:
    config = parse_config('[strategy]\nname = "threshold"\n[execution]\nmode = "auto"\n')
    bundle = half_day()
    clock = LiveClock()
    venue = SimulatedVenue(
        binance_defaults(assets_of(config), config.venue.quote), clock, sim_config(config)
    )
    async with venue, Journal(path) as journal:
        session = Session(config, clock, journal=journal, venue=venue)
        async with session:
            result = await PaperFeed(bundle, venue, session, step_s=step_s).run()
    async with JournalReader(path) as reader:
        return result, await reader.messages()


def closes(events: list[Message]) -> dict[str, Decimal]:
    """What the portfolio values at after ``events``: spot closes and perp marks, by asset."""
    prices: dict[str, Decimal] = {}
    for event in events:
        if isinstance(event, Bar) and not is_perp(event.symbol):
            prices[f"spot:{base_of(event.symbol)}"] = event.close
        elif isinstance(event, MarkPriceUpdated):
            prices[f"perp:{base_of(event.symbol)}"] = event.mark
    return prices


async def test_the_events_of_one_bar_time_are_one_instant_valued_once_all_are_in(
    tmp_path: Path,
) -> None:
    result, messages = await feed_into_journal(tmp_path / "paper.db")
    steps = [events for _, events in by_timestamp(half_day().events())]
    assert result.stopped == "exhausted"
    assert result.steps == len(steps) > 10

    market = [m for m in messages if isinstance(m, Bar | MarkPriceUpdated)]
    instants = [events for _, events in by_timestamp(market)]
    assert [len(events) for events in instants] == [len(events) for events in steps]
    stamps = [events[0].ts_event for events in instants]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)

    seen: list[Message] = []
    valued = 0
    for message in messages:
        if isinstance(message, Bar | MarkPriceUpdated):
            seen.append(message)
        elif isinstance(message, PortfolioSnapshot) and message.trigger == "price":
            instant = [m for m in seen if m.ts_event == seen[-1].ts_event]
            done = next(s for s in instants if s[0].ts_event == instant[0].ts_event)
            assert len(instant) == len(done), "a price snapshot before its instant was complete"
            wanted = closes(seen)
            for state in message.assets:
                assert state.spot_price == wanted[f"spot:{state.asset}"]
                assert state.perp_price == wanted[f"perp:{state.asset}"]
            valued += 1
    assert valued >= 2


async def test_unpaced_steps_still_let_the_instant_s_own_timers_fire_before_the_next(
    tmp_path: Path,
) -> None:
    _, messages = await feed_into_journal(tmp_path / "paper.db", step_s=0)
    market = [m for m in messages if isinstance(m, Bar | MarkPriceUpdated)]
    first, second = (ts for ts, _ in itertools.islice(by_timestamp(market), 2))
    snapshots = [m for m in messages if isinstance(m, PortfolioSnapshot) and m.trigger == "price"]
    assert snapshots[0].ts_event == first
    assert messages.index(snapshots[0]) < next(
        i for i, m in enumerate(messages) if isinstance(m, Bar) and m.ts_event == second
    )
