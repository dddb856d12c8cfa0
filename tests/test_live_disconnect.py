"""The exchange drops its WebSockets under a trading engine, several times, including between an
order and its fill; the engine reconnects, catches up over REST and misses no fill.

``ballast venue serve`` runs with a pace so slow that the market moves only when the test says
(``POST /_loopback/market/step``) and a fill latency of 1 ms, so a market order rests at the
exchange until the next price: the test waits until the engine's order is at the exchange, drops
the connections (``POST /_loopback/drop``), and steps the market, which fills the order while the
engine's user stream is down. The engine (``ballast run``, ``venue.kind = "binance"``) must journal
the disconnect and the reconnect (``VenueConnectionChanged``), count it
(``venue_reconnects_total``), and book every fill exactly once; at the end its book equals the
exchange's.

A part of the reliability campaign: it records the drops it made (``faults.ws_drop``) and what
the journal and the exchange show at its end (duplicate orders, lost fills, journal gaps,
tracebacks)."""

from __future__ import annotations

import asyncio
import functools
import signal
import time
from pathlib import Path

import pytest

from ballast.engine.kernel.events import OrderFilled, VenueConnectionChanged
from tests.support.live_counts import recorded
from tests.support.live_exchange import (
    Engine,
    Exchange,
    ExchangeState,
    JournalView,
    book_differences,
    caught_up,
    count_in,
    duplicate_orders,
    engine_running,
    exchange_serving,
    journal_problems,
    last_seq,
    live_config,
    lost_fills,
    mismatches,
    read_journal,
    until_settled,
)
from tests.support.paper_config import Overrides

MANUAL_STEP_S = 1000.0
"""The exchange's pace: far slower than the test, which steps the market itself."""

STEPPED: Overrides = {
    "paper": {"start": "2022-06-01", "end": "2022-08-01", "latency_ms": 1},
    "bands": {"abs_pp": 0.1},  # an order every few steps
    "execution": {"cooldown_s": 0, "check_interval_s": 0.2},
    "risk": {"stale_after_s": 3600},  # prices only move when stepped: never stale here
    "metrics": {"enabled": True},  # at --metrics-address 127.0.0.1:0
}
DROPS = ("all", "user", "all", "user")


def settled(journal: JournalView, state: ExchangeState) -> list[str]:
    """No duplicate, no lost fill, nothing the engine cannot explain (orders the last step
    caused may rest at the exchange, waiting for the next price)."""
    problems = journal_problems(journal)
    problems += duplicate_orders(journal, state)
    problems += lost_fills(journal, state)
    problems += mismatches(journal)
    return problems


def unbooked(journal: JournalView, orders: set[str]) -> list[str]:
    booked = {f.client_order_id for f in journal.fills}
    return [f"no fill of {coid} in the journal" for coid in sorted(orders - booked)]


def settled_and_booked(
    journal: JournalView, state: ExchangeState, *, orders: set[str]
) -> list[str]:
    return [*settled(journal, state), *unbooked(journal, orders)]


def at_rest(journal: JournalView, state: ExchangeState) -> list[str]:
    open_orders = [f"open at the exchange: {o.client_order_id}" for o in state.open_orders()]
    return [*open_orders, *settled(journal, state), *book_differences(journal, state)]


async def order_resting(journal_path: Path, exchange: Exchange, engine: Engine) -> set[str]:
    """Step the market until the engine has sent an order that rests at the exchange (waiting
    for the next price); returns the client order ids resting there."""
    for _ in range(120):
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:
            assert engine.proc.returncode is None, engine.stderr()
            resting = {o.client_order_id for o in (await exchange.state()).open_orders()}
            if resting:
                return resting
            await asyncio.sleep(0.05)
        await exchange.step()
    raise AssertionError("120 market steps and no order resting at the exchange")


async def metric(engine: Engine, name: str) -> float:
    text = (await engine.get("/metrics")).text
    values = [
        float(line.split()[-1])
        for line in text.splitlines()
        if not line.startswith("#") and name in line.split("{")[0]
    ]
    assert values, f"no {name} in /metrics:\n{text}"
    return sum(values)


@pytest.mark.reliability
async def test_dropped_connections_between_an_order_and_its_fill_lose_no_fill(
    tmp_path: Path,
) -> None:
    journal_path = tmp_path / "journal.db"
    served = live_config(tmp_path, name="exchange.toml", sections=STEPPED)
    async with (
        exchange_serving(tmp_path, served, step_s=MANUAL_STEP_S) as exchange,
        recorded("live_disconnect", journal_path, exchange) as counts,
    ):
        counts["faults.ws_drop"] = 0
        config = live_config(
            tmp_path, rest_url=exchange.rest_url, ws_url=exchange.ws_url, sections=STEPPED
        )
        async with engine_running(tmp_path, config, "--metrics-address=127.0.0.1:0") as engine:
            await engine.served()
            await caught_up(journal_path, 0, engine)
            for index, which in enumerate(DROPS):
                resting = await order_resting(journal_path, exchange, engine)
                before = last_seq(journal_path)
                await exchange.drop(which)
                counts["faults.ws_drop"] += 1
                await exchange.step()  # the resting orders fill now, the user stream down
                state = await exchange.state()
                filled = {t.client_order_id for t in state.trades} | {
                    o.client_order_id for o in state.ours() if o.status.upper() == "FILLED"
                }
                assert resting <= filled, (index, resting, filled)
                await until_settled(
                    journal_path,
                    exchange,
                    functools.partial(settled_and_booked, orders=resting),
                    within_s=20,
                    what=f"drop {index} ({which})",
                )
                journal = await read_journal(journal_path)
                since = [m for m in journal.messages[before:]]
                changes = [m for m in since if isinstance(m, VenueConnectionChanged)]
                assert any(c.state == "disconnected" for c in changes), (index, changes)
                assert any(c.state == "connected" for c in changes), (index, changes)
                booked = {f.client_order_id for f in since if isinstance(f, OrderFilled)}
                assert resting <= booked, (index, resting, booked)
            # a drop of the public streams while nothing is in flight: quotes come back
            quotes = count_in(journal_path, "QuoteTick")
            await exchange.drop("public")
            counts["faults.ws_drop"] += 1
            for _ in range(3):
                await exchange.step()
            deadline = time.monotonic() + 20
            while count_in(journal_path, "QuoteTick") <= quotes:
                assert time.monotonic() < deadline, "no quote after the public streams dropped"
                await exchange.step()
                await asyncio.sleep(0.2)
            assert await metric(engine, "venue_reconnects_total") >= len(DROPS)
            for _ in range(20):  # fill what rests (a step may cause more orders)
                if not (await exchange.state()).open_orders():
                    break
                await exchange.step()
                await asyncio.sleep(0.5)
            journal, state = await until_settled(
                journal_path, exchange, at_rest, within_s=20, what="the book at the end"
            )
            assert await engine.stop(signal.SIGTERM) == 0, engine.stderr()
        assert "Traceback" not in engine.stderr(), engine.stderr()
    journal = await read_journal(journal_path)
    assert at_rest(journal, state) == []
    disconnects = [c for c in journal.of(VenueConnectionChanged) if c.state == "disconnected"]
    assert len(disconnects) >= len(DROPS)
