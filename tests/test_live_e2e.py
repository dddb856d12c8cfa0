"""End to end, as a user runs it: ``ballast venue serve`` (the loopback Binance-compatible exchange
replaying a falling month of the bundled data at 20 bar times a second) and ``ballast run`` with
``venue.kind = "binance"`` pointed at it, trading through the real ccxt.pro client.

Price moves in the data trigger rebalances; the orders reach the exchange (its
``/_loopback/state`` lists them under our client order ids); the fills come back over the
WebSocket (the perp fills at least: no reconnect, no REST catch-up after the start) into the
journal with the exchange's trade ids; once the market is paused and the engine
has settled, its balances and positions (the journal's last statements) equal the exchange's
exactly; after a SIGTERM (exit 0) the journal replays with ``ballast replay --verify`` to the
same decisions and commands (any divergence fails it)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from ballast.engine.kernel.events import (
    OrderRejected,
    RebalanceDecided,
    SessionStopped,
    VenueConnectionChanged,
)
from tests.support.cli import ballast
from tests.support.live_exchange import (
    ExchangeState,
    JournalView,
    book_differences,
    count_in,
    duplicate_orders,
    engine_running,
    exchange_serving,
    journal_problems,
    live_config,
    lost_fills,
    mismatches,
    orders_before_caught_up,
    read_journal,
    until_settled,
)
from tests.support.paper_config import Overrides
from tests.support.waiting import eventually

STEP_S = 0.05
"""Exchange pace: an hourly bar time every 50 ms."""

TRADING: Overrides = {
    "paper": {"start": "2022-06-01", "end": "2022-08-01"},  # BTC falls from 31k to 19k
    "bands": {"abs_pp": 0.5},
    "execution": {"cooldown_s": 0.5, "check_interval_s": 0.5},
    "risk": {"stale_after_s": 2},
}
"""A month of falling prices, tight bands, short cooldown: a rebalance every second or two."""


def settled(journal: JournalView, state: ExchangeState) -> list[str]:
    """Everything the end-to-end test wants at rest: nothing open at the exchange, no duplicate,
    no lost fill, the book equal."""
    problems = [f"open at the exchange: {o.client_order_id}" for o in state.open_orders()]
    problems += journal_problems(journal)
    problems += duplicate_orders(journal, state)
    problems += lost_fills(journal, state)
    problems += book_differences(journal, state)
    problems += mismatches(journal)
    problems += orders_before_caught_up(journal)
    return problems


@pytest.mark.parametrize("transport", ["rest", "websocket"])
async def test_the_engine_trades_through_ccxt_on_the_loopback_exchange_and_books_what_it_did(
    tmp_path: Path, transport: str
) -> None:
    journal_path = tmp_path / "journal.db"
    served = live_config(tmp_path, name="exchange.toml", sections=TRADING)
    async with exchange_serving(tmp_path, served, step_s=STEP_S) as exchange:
        engine_config = live_config(
            tmp_path,
            rest_url=exchange.rest_url,
            ws_url=exchange.ws_url,
            sections={**TRADING, "venue": {"order_transport": transport}},
        )
        async with engine_running(tmp_path, engine_config) as engine:
            await eventually(
                lambda: (
                    count_in(journal_path, "OrderFilled") >= 8
                    and count_in(journal_path, "RebalanceDecided") >= 4
                ),
                within_s=60,
                what="several rebalances filled",
            )
            await exchange.pause()
            journal, state = await until_settled(
                journal_path, exchange, settled, within_s=20, what="the book after a pause"
            )
            assert await engine.stop(signal.SIGTERM) == 0, engine.stderr()
        assert "Traceback" not in engine.stderr(), engine.stderr()
        state = await exchange.state()
    journal = await read_journal(journal_path)
    assert settled(journal, state) == []

    # price moves triggered several rebalances that traded
    decided = [d for d in journal.of(RebalanceDecided) if d.intents]
    assert len(decided) >= 4
    # every order sent reached the exchange under its client order id (or was refused before
    # it was sent, and said so)
    at_exchange = {o.client_order_id for o in state.ours()}
    refused = {r.client_order_id for r in journal.of(OrderRejected)}
    sent = {s.client_order_id for s in journal.submits}
    assert sent - at_exchange <= refused, sorted(sent - at_exchange - refused)
    assert len(sent & at_exchange) >= 8
    # the fills carry the exchange's trade ids (lost_fills matched each one)
    assert {f.trade_id for f in journal.fills} == {t.trade_id for t in state.trades}
    # the venue's streams connected and caught up, and never dropped: the perp fills (a futures
    # order's REST reply carries none; the REST catch-up runs only at a start or a reconnect)
    # came over the WebSocket
    states = {(c.state) for c in journal.of(VenueConnectionChanged)}
    assert {"connected", "caught_up"} <= states, states
    assert "disconnected" not in states
    caught = [c for c in journal.of(VenueConnectionChanged) if c.state == "caught_up"]
    assert len(caught) == 1, caught  # the start's
    assert [f for f in journal.fills if ":" in f.symbol], "no perp fill"
    stops = journal.of(SessionStopped)
    assert [s.reason for s in stops] == ["signal:SIGTERM"]

    verified = ballast("replay", "--verify", str(journal_path), cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "verify: ok" in verified.stdout
