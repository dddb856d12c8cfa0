"""The live fault campaign shared by the REST and the WS-API order paths
(tests/test_faults_rest.py, tests/test_faults_ws_api.py).

One ``ballast venue serve --faults skew_ms=-3000 --fault-seed N`` exchange (its clock 3 s behind
the engine's) and one ``ballast run`` trading on it. Once the engine caught up and its start's
account check agreed, the campaign switches the exchange's fault plan (``POST
/_loopback/faults``) phase by phase: a phase ends when each of its kinds was injected (counted
under :attr:`FaultCampaign.counted`'s name), and fails when :data:`PHASE_ORDERS` orders went out
without, or after :data:`PHASE_S` (a stalled engine). The full size (``make reliability``) then
runs every kind at once for :data:`MIXED_S`. Then the faults go off, the market pauses, the book
must settle at rest (no order open or in flight, the journal whole, no duplicate order, no lost
fill, the engine's book the exchange's), the engine stops on SIGTERM with 0, and the exchange's
state read after the stop is checked again. What the exchange injected and what was found is
recorded for the campaign's table (tests/support/reliability.py) before the asserts."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from ballast.engine.kernel.config import OrderTransport
from ballast.engine.trading.order_tracker import OrderTracker
from tests.support.live_exchange import (
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
    live_config,
    lost_fills,
    read_journal,
    until_settled,
)
from tests.support.paper_config import Overrides
from tests.support.reliability import record, size
from tests.support.waiting import eventually

STEP_S = 0.05
TRADING: Overrides = {
    "paper": {"start": "2022-05-01"},  # the falls of May and June 2022: it trades
    "bands": {"abs_pp": 0.5},
    "execution": {"cooldown_s": 0.3, "check_interval_s": 0.3},
    "risk": {"stale_after_s": 2, "drawdown_limit": 0.9},
    # a held answer (hold_s) outlasts request_timeout_s: a real timeout; each campaign names
    # its order transport
    "venue": {"request_timeout_s": 2},
}
WEIGHT_LIMIT = 24_000
SEED = 14
SKEW = "skew_ms=-3000"
"""The exchange's clock 3 s behind the engine's: past the 1 s Binance allows ahead."""
TIMING = "hold_s=2.5,slow_ms=150,retry_after_s=1"
"""A held answer outlasts the engine's ``venue.request_timeout_s`` (2 s): the client times out."""
PHASES: tuple[tuple[str, ...], ...] = (
    ("rest_5xx=0.25", "slow=0.2"),
    ("rest_429=0.15", "rest_418=0.15"),
    ("rest_5xx_after=0.3", "timeout_after=0.25", "timeout=0.25"),
    ("reject_margin=0.25", "reject_notional=0.25", "reject_precision=0.25"),
)
"""Each phase until every one of its kinds was injected: the fast size covers every kind the
engine's order requests can meet; the full size then runs them all at once for :data:`MIXED_S`.
The refusals that hold every call for ``retry_after_s`` (429, 418) have a phase of their own at
0.15 each: beside the 5xx at 0.03 and 0.05 (as they were), the rarer took ~33 orders on average
(15 s alone, a minute under load over the WS-API, where only orders draw)."""
MIXED = ",".join(
    (
        "rest_5xx=0.05", "rest_5xx_after=0.06", "rest_429=0.02", "rest_418=0.01",
        "timeout=0.02", "timeout_after=0.03", "slow=0.1", "reject_margin=0.03",
        "reject_notional=0.03", "reject_precision=0.03", "reject_reduce_only=0.2",
    )
)  # fmt: skip
PHASE_ORDERS = 200
"""A phase ends when each of its kinds has been injected; it fails when this many orders went out
without (the rarest kinds, at 0.15 per request, are missing after 200 order requests with a chance
below 1e-13; the trading pace, not the faults, sets how long a phase takes)."""
PHASE_S = 240.0
"""A guard against a stalled engine, not a budget: a timeout costs ``request_timeout_s`` (and over
the WS-API a reconnect), and on a loaded 2-core machine a phase takes several times its usual
5-15 s."""
MIXED_S = size(0, 120)
FULL_TIMING = "hold_s=2.5,slow_ms=300,retry_after_s=2"


def trading(transport: OrderTransport) -> Overrides:
    """:data:`TRADING` with orders sent over ``transport``."""
    return {**TRADING, "venue": {**TRADING["venue"], "order_transport": transport}}


@dataclass(frozen=True)
class FaultCampaign:
    """What differs between the order paths."""

    part: str
    """The record's name in the campaign's table (``faults_rest``, ``faults_ws_api``)."""
    sections: Overrides
    """The engine's (and the exchange's) configuration: :func:`trading`."""
    counted: Callable[[str], str]
    """A kind's name (``rest_5xx``) -> the name the exchange counts it under on this path."""
    orders: Callable[[Exchange, Path], Awaitable[int]]
    """Orders sent on this path so far (the exchange, the engine's journal)."""


@dataclass(frozen=True)
class CampaignResult:
    counts: dict[str, int]
    """What the exchange injected, by the name it counts each kind under."""
    traded: int
    """Orders the engine journaled while the faults were on."""


def in_flight(journal: JournalView) -> list[str]:
    """Orders the journal holds as sent and not ended (the router may still send or look one
    up: the exchange's state read now may miss it)."""
    tracker = OrderTracker()
    for message in journal.messages:
        tracker.apply(message)
    return [f"in flight: {o.client_order_id} ({o.state})" for o in tracker.working()]


def at_rest(journal: JournalView, state: ExchangeState) -> list[str]:
    open_orders = [f"open at the exchange: {o.client_order_id}" for o in state.open_orders()]
    return [
        *open_orders,
        *in_flight(journal),
        *journal_problems(journal),
        *duplicate_orders(journal, state),
        *lost_fills(journal, state),
        *book_differences(journal, state),
    ]


async def post_plan(rest_url: str, body: dict[str, Any]) -> tuple[int, str]:
    """``POST /_loopback/faults`` with ``body``: (status, text)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(rest_url + "/_loopback/faults", json=body) as response,
    ):
        return response.status, await response.text()


async def injected(exchange: Exchange) -> dict[str, int]:
    counts: dict[str, int] = (await exchange.request("GET", "/_loopback/faults")).json()["counts"]
    return counts


async def switch(exchange: Exchange, *entries: str) -> None:
    status, text = await post_plan(exchange.rest_url, {"spec": ",".join(entries)})
    assert status == 200, text


def tracebacks(text: str) -> int:
    return text.count("Traceback (most recent call last)")


def kind_of(entry: str) -> str:
    """``rest_5xx=0.25`` -> ``rest_5xx``."""
    return entry.partition("=")[0]


async def run_campaign(tmp_path: Path, campaign: FaultCampaign) -> CampaignResult:
    """Run ``campaign`` (module docstring) and assert what every order path must hold; the
    result for the path's own checks."""
    journal_path = tmp_path / "journal.db"
    served = live_config(tmp_path, name="exchange.toml", sections=campaign.sections)
    args = ("--faults", SKEW, "--fault-seed", str(SEED))
    async with exchange_serving(
        tmp_path, served, step_s=STEP_S, weight_limit=WEIGHT_LIMIT, args=args
    ) as exchange:
        config = live_config(
            tmp_path, rest_url=exchange.rest_url, ws_url=exchange.ws_url, sections=campaign.sections
        )
        async with engine_running(tmp_path, config) as engine:
            await caught_up(journal_path, 0, engine)  # its clock 3 s ahead of the exchange's
            await eventually(  # trading: the start's account check agreed
                lambda: count_in(journal_path, "ReconcileResolved") > 0, within_s=20
            )
            submits = count_in(journal_path, "SubmitOrder")
            for phase in PHASES:
                await switch(exchange, *phase, TIMING, SKEW)
                kinds = [campaign.counted(kind_of(entry)) for entry in phase]
                before = await injected(exchange)
                orders_before = await campaign.orders(exchange, journal_path)
                deadline = time.monotonic() + PHASE_S
                while True:
                    assert engine.proc.returncode is None, engine.stderr()
                    now = await injected(exchange)
                    if all(now.get(k, 0) > before.get(k, 0) for k in kinds):
                        break
                    orders = await campaign.orders(exchange, journal_path) - orders_before
                    assert orders < PHASE_ORDERS, f"{phase}: {orders} orders, injected only {now}"
                    assert time.monotonic() < deadline, f"{phase}: stalled, injected only {now}"
                    await asyncio.sleep(0.2)
            if MIXED_S:
                await switch(exchange, MIXED, FULL_TIMING, SKEW)
                deadline = time.monotonic() + MIXED_S
                while time.monotonic() < deadline:
                    assert engine.proc.returncode is None, engine.stderr()
                    await asyncio.sleep(0.5)
            await switch(exchange, SKEW)
            traded = count_in(journal_path, "SubmitOrder") - submits
            await exchange.pause()
            await until_settled(
                journal_path, exchange, at_rest, within_s=30, what="the book at rest"
            )
            assert await engine.stop(signal.SIGTERM) == 0, engine.stderr()
        # what the exchange holds once the engine stopped (it may have traded on after at_rest:
        # the market is paused, its planner is not)
        state = await exchange.state()
        counts = await injected(exchange)
    journal = await read_journal(journal_path)
    duplicates = duplicate_orders(journal, state)
    lost = lost_fills(journal, state)
    gaps = journal_problems(journal)
    crashes = tracebacks(engine.stderr()) + (engine.proc.returncode != 0)
    record(
        campaign.part,
        **{f"faults.{kind}": n for kind, n in counts.items()},
        duplicate_orders=len(duplicates),
        lost_fills=len(lost),
        journal_gaps=len(gaps),
        crashes=crashes,
    )
    assert (duplicates, lost, gaps, crashes) == ([], [], [], 0), engine.stderr()
    assert book_differences(journal, state) == []  # the journal after the stop too
    assert traded >= len(PHASES), f"only {traded} orders under faults"
    every = {campaign.counted(kind_of(entry)) for phase in PHASES for entry in phase}
    assert every <= counts.keys(), f"not injected: {sorted(every - counts.keys())}"
    return CampaignResult(counts, traded)
