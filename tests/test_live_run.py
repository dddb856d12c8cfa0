"""``ballast run`` with ``venue.kind = "paper"`` as a real subprocess: the loopback Binance
exchange started in-process, the real ccxt.pro client, metrics and readiness, a clean stop on
SIGTERM; a restart resumes the journal, catches up with the exchange (whose state survived beside
the journal) and reconciles. (Kill, disconnect and end-to-end campaigns: tests/test_live_e2e.py,
tests/test_live_kill.py, ...)"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from ballast.engine.kernel.events import (
    InstrumentsLoaded,
    Message,
    OrderFilled,
    QuoteTick,
    ReconcileMismatch,
    ReconcileResolved,
    SessionStarted,
    SessionStopped,
    VenueConnectionChanged,
)
from tests.support.live_config import live_config
from tests.support.waiting import eventually
from tests.test_resume import count_in
from tests.test_run import journal_messages, running, served, until_metric, until_status

pytestmark = pytest.mark.xdist_group("test_live_run")
CONNECTED = 'ballast_venue_connected{{stream="{}",venue="paper"}}'
PACE = ("--metrics-address=127.0.0.1:0", "--step-s=0.05", "--max-runtime-s=120")


def of(messages: list[Message], kind: type[Message]) -> list[Message]:
    return [m for m in messages if isinstance(m, kind)]


async def test_a_paper_run_trades_on_the_loopback_exchange_and_resumes(tmp_path: Path) -> None:
    config = live_config(tmp_path)
    journal = tmp_path / "journal.db"
    async with running(tmp_path, config, *PACE) as engine:
        await served(engine)
        line = await engine.line("live: ", within_s=30)
        assert line.startswith("live: venue paper at loopback exchange http://127.0.0.1:")
        assert f"journal {journal}" in line
        await until_status(engine, "/readyz", 200, within_s=30)
        await until_metric(engine, CONNECTED.format("quotes:spot"), within_s=10)
        await until_metric(engine, 'ballast_orders_total{status="filled"}', within_s=30)
        weight = await until_metric(
            engine, 'ballast_venue_request_weight_used{venue="paper"}', within_s=10
        )
        assert weight > 0
        assert await engine.stop(signal.SIGTERM) == 0, engine.log.read_text()
    assert engine.lines[-1] == f"stopped (signal:SIGTERM); journal {journal} closed"
    assert (tmp_path / "journal.db.venue.db").exists()  # the exchange's own state
    first = await journal_messages(journal)
    [started] = of(first, SessionStarted)
    assert isinstance(started, SessionStarted)
    assert (started.venue, started.clock) == ("paper", "LiveClock")
    assert of(first, InstrumentsLoaded)
    assert of(first, QuoteTick)
    fills = of(first, OrderFilled)
    assert fills
    states = [
        m.state for m in of(first, VenueConnectionChanged) if isinstance(m, VenueConnectionChanged)
    ]
    assert "caught_up" in states
    stopped = first[-1]
    assert isinstance(stopped, SessionStopped)
    assert stopped.reason == "signal:SIGTERM"

    async with running(tmp_path, config, *PACE) as engine:
        await served(engine)
        await engine.line("resumed from seq ", within_s=30)
        await until_metric(engine, CONNECTED.format("user:futures"), within_s=30)
        await until_status(engine, "/readyz", 200, within_s=30)
        await eventually(lambda: count_in(journal, "ReconcileResolved") > 0, within_s=30)
        assert await engine.stop(signal.SIGINT) == 0, engine.log.read_text()
    both = await journal_messages(journal)
    second = both[len(first) :]
    resumed = second[0]
    assert isinstance(resumed, SessionStarted)
    assert resumed.resumed_from_seq == len(first)
    assert not of(second, ReconcileMismatch), of(second, ReconcileMismatch)
    assert of(second, ReconcileResolved)
    # no fill twice
    trade_ids = [m.trade_id for m in of(both, OrderFilled) if isinstance(m, OrderFilled)]
    assert len(trade_ids) == len(set(trade_ids))
