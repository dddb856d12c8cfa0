"""Quotes stop; the engine stops trading and says why; quotes return and it trades again.

``ballast venue serve`` replays the bundled data at 20 bar times a second; the engine
(``ballast run``, ``venue.kind = "binance"``, data stale after 1 s) trades on it. The test pauses
the exchange's market (``POST /_loopback/market/pause``): the engine journals ``DataStale``,
``/readyz`` turns not ready naming the stale symbols, and no order reaches the exchange while
stale. The market resumes (``/resume``): ``/readyz`` is ready again and new orders follow.

A part of the reliability campaign: it records the market stops (``faults.quotes_stopped``), the
orders sent on stale data (``orders_on_bad_data``: journaled for a symbol said stale, or reaching
the exchange while stale) and the engine's tracebacks (``crashes``), before it asserts on them."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.events import DataStale, Message
from tests.support.live_counts import tracebacks
from tests.support.live_exchange import (
    Engine,
    count_in,
    engine_running,
    exchange_serving,
    last_seq,
    live_config,
    read_journal,
    until_state,
)
from tests.support.paper_config import Overrides
from tests.support.reliability import record
from tests.support.waiting import eventually

STEP_S = 0.05
TRADING: Overrides = {
    "paper": {"start": "2022-06-01", "end": "2022-08-01"},
    "bands": {"abs_pp": 0.5},
    "execution": {"cooldown_s": 0.3, "check_interval_s": 0.3},
    "risk": {"stale_after_s": 1},
    "metrics": {"enabled": True},  # at --metrics-address 127.0.0.1:0
}
STALE_FOR_S = 3.0
"""How long the test holds the market paused after the engine said it is stale."""


async def readiness(engine: Engine) -> tuple[int, list[str]]:
    response = await engine.get("/readyz")
    return response.status, list(response.json()["reasons"])


async def until_ready(engine: Engine, ready: bool, *, within_s: float) -> list[str]:
    deadline = time.monotonic() + within_s
    while True:
        status, reasons = await readiness(engine)
        if (status == 200) == ready:
            return reasons
        assert time.monotonic() < deadline, f"/readyz never {'' if ready else 'not '}ready"
        await asyncio.sleep(0.05)


def orders_on_stale_data(paused: list[Message]) -> list[str]:
    """Orders journaled, while the market was paused, for a symbol already said stale, or after
    the last symbol was (``paused``: the journal from the pause to the resume)."""
    stale = [m for m in paused if isinstance(m, DataStale)]
    said: set[str] = set()
    found = []
    for message in paused:
        if isinstance(message, DataStale):
            said.add(message.symbol)
        elif isinstance(message, SubmitOrder):
            if message.symbol in said:
                found.append(f"{message.client_order_id}: {message.symbol} was said stale")
            elif stale and message.ts_init >= stale[-1].ts_init:
                found.append(f"{message.client_order_id}: after the last DataStale")
    return found


@pytest.mark.reliability
async def test_stale_quotes_stop_the_trading_and_fresh_ones_resume_it(tmp_path: Path) -> None:
    journal_path = tmp_path / "journal.db"
    served = live_config(tmp_path, name="exchange.toml", sections=TRADING)
    async with exchange_serving(tmp_path, served, step_s=STEP_S) as exchange:
        config = live_config(
            tmp_path, rest_url=exchange.rest_url, ws_url=exchange.ws_url, sections=TRADING
        )
        async with engine_running(tmp_path, config, "--metrics-address=127.0.0.1:0") as engine:
            await engine.served()
            await eventually(
                lambda: count_in(journal_path, "OrderFilled") >= 2, within_s=60, what="trading"
            )
            await until_ready(engine, True, within_s=20)

            await exchange.pause()
            paused_at = last_seq(journal_path)
            await eventually(
                lambda: count_in(journal_path, "DataStale", since_seq=paused_at) > 0,
                within_s=10,
                what="DataStale",
            )
            reasons = await until_ready(engine, False, within_s=10)
            assert any(r.startswith("data_stale:") for r in reasons), reasons
            orders_when_stale = len((await exchange.state()).orders)
            await asyncio.sleep(STALE_FOR_S)
            received_while_stale = len((await exchange.state()).orders) - orders_when_stale
            assert (await readiness(engine))[0] == 503

            await exchange.resume()
            resumed_at = last_seq(journal_path)
            await until_ready(engine, True, within_s=10)
            await eventually(
                lambda: count_in(journal_path, "SubmitOrder", since_seq=resumed_at) > 0,
                within_s=30,
                what="an order after the quotes came back",
            )
            await until_state(
                exchange,
                lambda state: len(state.orders) > orders_when_stale,
                within_s=10,
                what="the order at the exchange",
            )
            assert await engine.stop(signal.SIGTERM) == 0, engine.stderr()

    journal = await read_journal(journal_path)
    paused = journal.messages[paused_at:resumed_at]  # seqs paused_at+1 .. resumed_at
    on_stale = orders_on_stale_data(paused)
    raised = tracebacks(engine.stderr())
    record(
        "live_stale",
        **{"faults.quotes_stopped": 1},
        orders_on_bad_data=len(on_stale) + received_while_stale,
        crashes=len(raised),
    )
    assert not raised, engine.stderr()
    assert received_while_stale == 0
    assert any(isinstance(m, DataStale) for m in paused), "no DataStale after the pause"
    # no order for a symbol once it was said stale, none at all once the last one was
    assert on_stale == []
