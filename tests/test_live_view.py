"""The live view (:mod:`ballast.engine.observe.live_view`) drawn from a recorded event sequence:
the committed growth-optimizer journal (``tests/fixtures/backtest_v1.db``) plus a few live-only
events (venue links, kill switch, reconcile mismatch), fed through a real bus."""

from __future__ import annotations

import asyncio
import logging
import shutil
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import SimulatedClock
from ballast.engine.kernel.config import Config, load_config
from ballast.engine.kernel.events import (
    IntentApproved,
    KillSwitchTriggered,
    Message,
    OrderIntent,
    OrderVetoed,
    PortfolioSnapshot,
    RebalanceDecided,
    ReconcileMismatch,
    VenueConnectionChanged,
)
from ballast.engine.kernel.journal import JournalReader
from ballast.engine.observe.live_view import LiveView, live_view
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "backtest_v1.db"
LAST_TS = 1_655_420_400_000_000_000  # 2022-06-16T23:00Z, the fixture's last event


async def recorded(tmp_path: Path) -> list[Message]:
    """Every message of the committed backtest journal, in seq order."""
    path = Path(shutil.copyfile(FIXTURE, tmp_path / "journal.db"))
    async with JournalReader(path) as reader:
        return [record.message async for record in reader.records()]


def live_events(ts: int) -> list[Message]:
    return [
        VenueConnectionChanged(ts, ts, "binance", "user", "disconnected", "socket closed", 1),
        VenueConnectionChanged(ts + 1, ts + 1, "binance", "user", "connected", "", 1),
        VenueConnectionChanged(ts + 2, ts + 2, "binance", "user", "caught_up", "", 1),
        ReconcileMismatch(ts + 3, ts + 3, "binance", "spot:BTC", "1.5", "1.4", "no fill"),
        KillSwitchTriggered(ts + 4, ts + 4, "drawdown", "drawdown 51.0 % over 50.0 %"),
    ]


@pytest.fixture
def demo_config() -> Config:
    return load_config(ROOT / "examples" / "demo.toml")


def feed(bus: Bus, messages: list[Message]) -> None:
    for message in messages:
        bus.publish(message)


async def test_plain_mode_prints_one_line_per_rebalance_and_the_live_alerts(
    tmp_path: Path, demo_config: Config
) -> None:
    messages = await recorded(tmp_path)
    decisions = [m for m in messages if isinstance(m, RebalanceDecided) and m.intents]
    assert len(decisions) == 2
    out = StringIO()
    bus = Bus(SimulatedClock(LAST_TS))
    view = LiveView.from_config(demo_config, bus, bus.clock, console=Console(file=out))
    assert view.plain  # a StringIO is no terminal
    async with view:
        feed(bus, [*messages, *live_events(LAST_TS)])
    lines = out.getvalue().splitlines()
    rebalances = [line for line in lines if " rebalance #" in line]
    assert len(rebalances) == 2
    first = rebalances[0]
    assert first.startswith("2022-06-1")
    assert "rebalance #1 band/auto" in first
    assert "NAV 100," in first or "NAV 99," in first
    assert "BTC " in first
    assert "ETH " in first
    assert "net " in first
    assert "gross " in first
    assert "buy " in first or "sell " in first
    assert any(" regime " in line for line in lines)
    assert any("venue binance user disconnected (socket closed), attempt 1" in x for x in lines)
    assert any("venue binance user connected, attempt 1" in line for line in lines)
    assert any("RECONCILE MISMATCH spot:BTC: journal 1.5, venue 1.4" in x for x in lines)
    assert lines[-1].endswith("KILL SWITCH drawdown: drawdown 51.0 % over 50.0 %")
    assert len(lines) == len(rebalances) + 6  # nothing else: two regime lines, four alerts

    state = view.state
    snapshots = [m for m in messages if isinstance(m, PortfolioSnapshot)]
    assert state.first_nav == snapshots[0].nav
    assert state.nav == snapshots[-1].nav
    assert state.tally.rebalances == 2
    assert state.tally.orders == state.tally.fills == 6
    assert state.reconnects == 1
    assert view.enabled
    assert view.failure is None
    assert bus.handler_errors == 0


async def test_plain_mode_says_which_orders_of_a_rebalance_were_vetoed_or_cut(
    tmp_path: Path, demo_config: Config
) -> None:
    """A rebalance line lists the intents as decided; the pre-trade check's vetoes and cuts that
    follow get a line each, so a vetoed rebalance does not read like a traded one."""
    messages = await recorded(tmp_path)
    first = next(m for m in messages if isinstance(m, RebalanceDecided) and m.intents)
    intent = first.intents[0]
    ts = first.ts_event
    cut = OrderIntent(
        "int-cut", "ETH/USDT", "buy", Decimal("0.5"), "market", None, False, "rebalance"
    )
    out = StringIO()
    bus = Bus(SimulatedClock(ts))
    view = LiveView.from_config(demo_config, bus, bus.clock, console=Console(file=out))
    async with view:
        feed(
            bus,
            [
                first,
                OrderVetoed(
                    ts, ts, intent.intent_id, intent.symbol, "max_order_notional", "3000 > 2500"
                ),
                IntentApproved(ts, ts, cut, "max_daily_turnover"),
            ],
        )
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert " rebalance #1 " in lines[0]
    assert lines[1].endswith(f"vetoed {intent.symbol}: max_order_notional (3000 > 2500)")
    assert lines[2].endswith("cut  buy 0.5 ETH/USDT: max_daily_turnover")
    assert view.state.tally.vetoes == 1


async def test_rich_mode_renders_the_panel(tmp_path: Path, demo_config: Config) -> None:
    messages = await recorded(tmp_path)
    bus = Bus(SimulatedClock(LAST_TS))
    view = LiveView.from_config(
        demo_config,
        bus,
        bus.clock,
        console=Console(file=StringIO()),
        plain=False,
        data_time=lambda: LAST_TS,
        title="Ballast demo",
    )
    feed(bus, [*messages, *live_events(LAST_TS)])
    out = StringIO()
    Console(file=out, width=110, color_system=None).print(view.render())
    panel = out.getvalue()
    assert "Ballast demo" in panel
    assert "NAV " in panel
    assert "USDT" in panel
    assert "max drawdown" in panel
    assert "data time 2022-06-16 23:00" in panel
    for heading in ("asset", "weight", "target", "band", "spot", "perp"):
        assert heading in panel
    assert "BTC" in panel
    assert "ETH" in panel
    assert "leverage net" in panel
    assert "(cap 1.50x)" in panel
    assert "regime " in panel
    assert "venue binance user:up" in panel
    assert "reconnects 1" in panel
    assert "KILL SWITCH drawdown" in panel
    assert "UNRECONCILED (trading halted): spot:BTC" in panel
    assert "rebalances 2  orders 6  fills 6" in panel
    assert "fill " in panel
    assert "sent " in panel


async def test_rich_mode_draws_while_running_and_leaves_the_last_state(
    tmp_path: Path, demo_config: Config
) -> None:
    messages = await recorded(tmp_path)
    out = StringIO()
    console = Console(file=out, force_terminal=True, width=110, color_system=None)
    bus = Bus(SimulatedClock(LAST_TS))
    view = LiveView.from_config(demo_config, bus, bus.clock, console=console)
    assert not view.plain
    view.refresh_interval_s = 0.001
    async with view:
        feed(bus, messages)
        await eventually(lambda: view.draws > 0, what="a redraw")
    assert view.enabled
    assert "rebalances 2  orders 6  fills 6" in out.getvalue()


async def test_a_rendering_error_is_logged_once_and_turns_the_view_off(
    tmp_path: Path, demo_config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    messages = await recorded(tmp_path)
    console = Console(file=StringIO(), force_terminal=True, width=110)
    bus = Bus(SimulatedClock(LAST_TS))
    calls = 0

    def broken() -> int | None:
        nonlocal calls
        calls += 1
        if calls > 1:  # the first draw (at start) works, the next ones fail
            raise ZeroDivisionError("boom")
        return None

    view = LiveView.from_config(demo_config, bus, bus.clock, console=console, data_time=broken)
    view.refresh_interval_s = 0.001
    with caplog.at_level(logging.ERROR, logger="ballast.engine.observe.live_view"):
        async with view:
            feed(bus, messages[:100])  # the first rebalance
            await eventually(lambda: not view.enabled, what="the view turned off")
            assert view.state.tally.orders == 4
            feed(bus, messages[100:])  # the engine goes on (a second rebalance); the view is off
            await asyncio.sleep(0.01)
    failures = [r for r in caplog.records if "live view failed" in r.getMessage()]
    assert len(failures) == 1
    assert "ZeroDivisionError: boom" in failures[0].getMessage()
    assert view.failure == "ZeroDivisionError: boom"
    assert bus.handler_errors == 0  # nothing reached the bus: no HandlerFailed journaled
    assert view.state.tally.orders == 4
    assert bus.published == len(messages)


async def test_a_handler_error_turns_the_view_off_without_a_handler_failure(
    tmp_path: Path, demo_config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    messages = await recorded(tmp_path)
    out = StringIO()
    bus = Bus(SimulatedClock(LAST_TS))
    view = LiveView.from_config(demo_config, bus, bus.clock, console=Console(file=out))

    def broken(decision: RebalanceDecided) -> str:
        raise ValueError("bad line")

    view.rebalance_line = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="ballast.engine.observe.live_view"):
        async with view:
            feed(bus, messages)
    assert not view.enabled
    assert view.failure == "ValueError: bad line"
    assert bus.handler_errors == 0
    assert " rebalance #" not in out.getvalue()
    assert len([r for r in caplog.records if "live view failed" in r.getMessage()]) == 1


class _Watched:
    def __init__(self, config: Config, bus: Bus) -> None:
        self.config, self.bus, self.clock = config, bus, bus.clock


async def test_live_view_attaches_to_a_session_and_detaches_on_exit(
    tmp_path: Path, demo_config: Config
) -> None:
    messages = await recorded(tmp_path)
    out = StringIO()
    bus = Bus(SimulatedClock(LAST_TS))
    async with live_view(_Watched(demo_config, bus), console=Console(file=out)) as view:
        feed(bus, messages)
    count = out.getvalue().count(" rebalance #")
    assert count == 2
    feed(bus, messages)  # after exit: not listening any more
    assert out.getvalue().count(" rebalance #") == count
    assert view.state.tally.rebalances == 2
