"""Kill campaign: SIGKILL the live engine at random points while it rebalances, restart it, again.

The exchange is a separate ``ballast venue serve`` process that lives through the whole campaign
(it keeps replaying the bundled data at 20 bar times a second, so its prices keep moving and the
engine keeps trading). The engine (``ballast run``, ``venue.kind = "binance"`` at the exchange's
URLs) is killed, per a seeded plan, at a random moment after it started, right after it journaled
an order (between the send and the answer) or right after a fill; then restarted on the same
journal, where it resumes and reconciles with the exchange.

After each kill: the journal is whole (gap-free, SQLite quick_check ok), no trade booked twice, no
order at the exchange twice or unknown to the journal, never two orders for one intent. After each
restart, once the venue has caught up: every trade of ours at the exchange is in the journal
exactly once. At the end, with the market paused and one last engine settled: the engine's
balances and positions equal the exchange's exactly, and the journal of every session replays
with ``--verify``. A ReconcileMismatch, an order sent before the venue caught up and reconciled
after a restart, or a traceback in an engine's log fails the campaign too.

Size (tests/support/reliability.py): ``make test`` runs one campaign of 20 kills with orders sent
over REST and one of 10 with orders over the WebSocket API (``venue.order_transport =
"websocket"``), and a slow-marked one of 20 more over the WebSocket API (another seed); ``make
reliability`` runs 200 kills over REST and 100 over the WebSocket API as campaigns of 25, each
with its own exchange, journal and seed, which pytest-xdist runs side by side. Each campaign
records what it measured at its end (kills, duplicate orders, lost fills, journal gaps,
tracebacks), before it asserts."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from ballast.engine.kernel.config import OrderTransport
from ballast.engine.kernel.events import SessionStarted
from tests.support.cli import ballast
from tests.support.live_counts import recorded, tracebacks
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
    orders_before_caught_up,
    read_journal,
    repeated_fills,
    until_settled,
)
from tests.support.paper_config import Overrides
from tests.support.reliability import size
from tests.support.waiting import eventually

STEP_S = 0.05
TRADING: Overrides = {
    "paper": {"start": "2022-05-01"},  # the falls of May and June 2022 first
    "bands": {"abs_pp": 0.5},
    "execution": {"cooldown_s": 0.3, "check_interval_s": 0.3},
    # the drawdown kill switch (20 % by default) would end the trading a few kills in: the
    # campaign is about restarts while trading, so it trades on to the end
    "risk": {"stale_after_s": 2, "drawdown_limit": 0.9},
}

SEED = int(os.environ.get("BALLAST_KILL_SEED", "11"))
"""The first campaign's seed (``BALLAST_KILL_SEED=N`` runs other plans; campaign i adds 1100 i)."""

KILLS = size(20, 200)
CAMPAIGNS = size(1, 8)
"""The kills are split into this many independent campaigns (one exchange each): the cost of a
kill is mostly the restarted engine's start (~2 s: imports, markets, catch-up), which two cores
overlap better across campaigns than one after the other."""
WS_KILLS = size(10, 100)
WS_CAMPAIGNS = size(1, 4)
"""The same with orders over the WebSocket API (fewer: its order path is the only difference)."""
WS_SLOW_KILLS = 20
WS_SEED_OFFSET = 50_000
"""The WebSocket campaigns' seeds: ``SEED + WS_SEED_OFFSET + 1100 i`` (the slow one: ``+ 550``)."""

WEIGHT_LIMIT = 24_000
"""Ten times Binance's futures limit: a restart costs ~250 weight, the campaign restarts every
few seconds; the engine budgets the limit the exchange advertises in its exchangeInfo, so with
Binance's the campaign would wait for the next minute window every few restarts)."""

KillPoint = Literal["random", "after_submit", "after_fill"]


@dataclass(frozen=True)
class Kill:
    point: KillPoint
    delay_s: float


def plan(kills: int, seed: int) -> list[Kill]:
    """Half at a random moment 0.2–1 s after the restart caught up, a quarter just after an order
    was journaled (before or while it is sent), a quarter just after a fill was journaled."""
    rng = random.Random(seed)
    points: list[KillPoint] = ["random", "random", "after_submit", "after_fill"]
    out = []
    for _ in range(kills):
        point = rng.choice(points)
        delay = rng.uniform(0.2, 1.0) if point == "random" else rng.uniform(0, 0.05)
        out.append(Kill(point, delay))
    return out


def always(journal: JournalView, state: ExchangeState) -> list[str]:
    """What holds at any moment, even right after a kill."""
    return [*journal_problems(journal), *repeated_fills(journal), *duplicate_orders(journal, state)]


def after_catch_up(journal: JournalView, state: ExchangeState) -> list[str]:
    return [*always(journal, state), *lost_fills(journal, state)]


def at_rest(journal: JournalView, state: ExchangeState) -> list[str]:
    open_orders = [f"open at the exchange: {o.client_order_id}" for o in state.open_orders()]
    return [*open_orders, *after_catch_up(journal, state), *book_differences(journal, state)]


@dataclass
class Campaign:
    """Where each kill landed, and the symptoms seen (mismatches, orders before the venue caught
    up, tracebacks; the campaign fails on any, at its end); every other check fails at once."""

    landed: list[str]
    known: list[str]
    ws_api_orders: int = 0
    """Orders the exchange received over its WebSocket API."""


async def kill_at(kill: Kill, journal_path: Path, since_seq: int, engine: Engine) -> str:
    """Wait for the planned point (at most 5 s for an order or a fill), then SIGKILL.
    Returns where it landed."""
    landed = kill.point
    if kill.point != "random":
        kind = "SubmitOrder" if kill.point == "after_submit" else "OrderFilled"
        try:
            await eventually(
                lambda: count_in(journal_path, kind, since_seq=since_seq) > 0,
                within_s=5,
                what=kind,
            )
        except AssertionError:
            landed = "random"  # nothing traded in time: a kill at a random moment then
    await asyncio.sleep(kill.delay_s)
    assert engine.proc.returncode is None, f"engine exited by itself: {engine.stderr()}"
    engine.kill()
    assert await engine.proc.wait() == -signal.SIGKILL
    return landed


def trading(transport: OrderTransport) -> Overrides:
    return {**TRADING, "venue": {"order_transport": transport}}


async def campaign(
    tmp_path: Path, *, kills: int, seed: int, transport: OrderTransport = "rest"
) -> Campaign:
    """Run the campaign (every hard check asserted on the way), orders sent over
    ``transport``."""
    journal_path = tmp_path / "journal.db"
    sections = trading(transport)
    part = "kills" if transport == "rest" else f"kills_{transport}"
    served = live_config(tmp_path, name="exchange.toml", sections=sections)
    result = Campaign([], [])
    async with exchange_serving(
        tmp_path, served, step_s=STEP_S, weight_limit=WEIGHT_LIMIT
    ) as exchange:
        config = live_config(
            tmp_path, rest_url=exchange.rest_url, ws_url=exchange.ws_url, sections=sections
        )
        async with recorded(part, journal_path, exchange, "engine-*.log") as counts:
            counts["kills"] = 0
            for index, kill in enumerate(plan(kills, seed)):
                before = last_seq(journal_path)
                async with engine_running(tmp_path, config, log=f"engine-{index}.log") as engine:
                    await caught_up(journal_path, before, engine)
                    if index:  # a restart: it caught up on what the exchange did meanwhile
                        await until_settled(
                            journal_path,
                            exchange,
                            after_catch_up,
                            within_s=15,
                            what=f"restart {index}",
                        )
                    result.landed.append(
                        await kill_at(kill, journal_path, last_seq(journal_path), engine)
                    )
                    counts["kills"] = len(result.landed)
                result.known += [f"run {index}: {t}" for t in tracebacks(engine.stderr())]
                journal = await read_journal(journal_path)
                problems = always(journal, await exchange.state())
                assert not problems, f"after kill {index} ({kill}): {problems}"
            result.known += await finish(tmp_path, exchange, config, kills)
        result.ws_api_orders = (await exchange.state()).raw["ws_api_orders"]
    return result


async def finish(tmp_path: Path, exchange: Exchange, config: Path, kills: int) -> list[str]:
    """Pause the market, run the engine once more until it settles, stop it, check the book
    and replay every session. Returns the symptoms seen."""
    journal_path = tmp_path / "journal.db"
    await exchange.pause()
    before = last_seq(journal_path)
    async with engine_running(tmp_path, config, log="engine-last.log") as engine:
        await caught_up(journal_path, before, engine)
        await until_settled(journal_path, exchange, at_rest, within_s=30, what="the last run")
        assert await engine.stop(signal.SIGTERM) == 0, engine.stderr()
    journal = await read_journal(journal_path)
    assert at_rest(journal, await exchange.state()) == []
    assert len(journal.of(SessionStarted)) == kills + 1
    assert len(journal.fills) >= kills // 10  # it did trade between the kills
    verified = ballast("replay", "--verify", str(journal_path), cwd=tmp_path, timeout_s=300)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    return [
        *mismatches(journal),
        *orders_before_caught_up(journal),
        *(f"last run: {t}" for t in tracebacks(engine.stderr())),
    ]


def assert_kills_landed_while_trading(landed: list[str], planned: list[Kill]) -> None:
    """Kills landed at a random moment, right after an order was journaled and right after a
    fill, each at least once; and the engine traded throughout: at least three quarters of the
    kills planned on an order or a fill found one within 5 s of their restart."""
    missing = {"random", "after_submit", "after_fill"} - set(landed)
    assert not missing, landed
    on_trades = [
        (k.point, got) for k, got in zip(planned, landed, strict=True) if k.point != "random"
    ]
    hit = sum(point == got for point, got in on_trades)
    assert hit * 4 >= len(on_trades) * 3, f"{hit} of {len(on_trades)} landed: {landed}"


def report(result: Campaign) -> None:
    """The hard checks passed; what remains must be nothing: a reconcile mismatch after a restart,
    an order sent before the session's venue caught up and reconciled, or a traceback in an
    engine's output each fail the campaign (each kind once, with how often it was seen and its
    first occurrence)."""
    kinds: dict[str, list[str]] = {}
    for symptom in result.known:
        kind = re.sub(r"\b(run \d+|last run|seq \d+|bl-[\w-]+)\b", "…", symptom)
        kinds.setdefault(kind, []).append(symptom)
    shown = "; ".join(f"{len(seen)}× {seen[0]}" for seen in kinds.values())
    assert not kinds, shown


@pytest.mark.reliability
@pytest.mark.parametrize("part", range(CAMPAIGNS))
async def test_the_engine_killed_while_trading_loses_and_doubles_nothing(
    tmp_path: Path, part: int
) -> None:
    kills, seed = KILLS // CAMPAIGNS, SEED + 1100 * part
    result = await campaign(tmp_path, kills=kills, seed=seed)
    report(result)
    assert_kills_landed_while_trading(result.landed, plan(kills, seed))
    assert result.ws_api_orders == 0


async def websocket_campaign(tmp_path: Path, kills: int, seed: int) -> None:
    result = await campaign(tmp_path, kills=kills, seed=seed, transport="websocket")
    report(result)
    assert_kills_landed_while_trading(result.landed, plan(kills, seed))
    assert result.ws_api_orders >= kills // 4  # the orders went over the WS-API


@pytest.mark.reliability
@pytest.mark.parametrize("part", range(WS_CAMPAIGNS))
async def test_killed_while_trading_over_the_ws_api_it_loses_and_doubles_nothing(
    tmp_path: Path, part: int
) -> None:
    seed = SEED + WS_SEED_OFFSET + 1100 * part
    await websocket_campaign(tmp_path, WS_KILLS // WS_CAMPAIGNS, seed)


@pytest.mark.slow
async def test_killed_more_often_while_trading_over_the_ws_api(tmp_path: Path) -> None:
    await websocket_campaign(tmp_path, WS_SLOW_KILLS, SEED + WS_SEED_OFFSET + 550)
