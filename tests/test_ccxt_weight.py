"""The ccxt venue's own request-weight budget: a burst is spread over windows instead of meeting
HTTP 429, the exchange's count (``X-MBX-USED-WEIGHT-1M``) resyncs it, and a 429's
``Retry-After`` is obeyed.

The budget's windows follow the venue's clock: the unit tests move a simulated clock. The
loopback exchange counts weight per wall-clock minute, so the end-to-end burst and 429 tests wait
for a real minute boundary (``slow``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from ballast.adapters.ccxt import BINANCE, CcxtVenue, ExchangeSpec
from ballast.adapters.ccxt.weight import WeightBudget
from ballast.engine.kernel.clock import (
    NS_PER_MINUTE,
    NS_PER_SECOND,
    Clock,
    LiveClock,
    SimulatedClock,
)
from ballast.engine.trading.venue import VenueError
from tests.conftest import START_NS
from tests.support.loopback import API_KEY, SECRET, Loopback, loopback_exchange
from tests.support.waiting import eventually

SPOT = "BTC/USDT"
PERP = "BTC/USDT:USDT"


# ---------------------------------------------------------------------------------- the budget


async def test_a_burst_beyond_the_budget_waits_for_the_next_window() -> None:
    clock = SimulatedClock(START_NS - START_NS % NS_PER_MINUTE)
    budget = WeightBudget(100, 0.8, clock)
    done: list[int] = []

    async def call(n: int) -> None:
        await budget.acquire(10)
        done.append(n)

    tasks = [asyncio.create_task(call(n)) for n in range(10)]
    await eventually(lambda: len(done) == 8, what="the budget's eight calls")
    await asyncio.sleep(0.05)
    assert len(done) == 8  # the rest wait: 80 of 100 is the budget
    assert budget.waits == 2

    clock.advance_to(clock.now_ns() + NS_PER_MINUTE)
    await asyncio.gather(*tasks)
    assert sorted(done) == list(range(10))
    assert budget.current() == 20


async def test_the_exchange_count_resyncs_the_budget() -> None:
    clock = SimulatedClock(START_NS)
    budget = WeightBudget(100, 0.8, clock)
    budget.observe(75)  # other clients of the key spent weight this window
    assert budget.current() == 75
    budget.observe(10)  # never below what we counted
    assert budget.current() == 75
    waiting = asyncio.create_task(budget.acquire(10))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    clock.advance_to(clock.now_ns() + NS_PER_MINUTE)
    await waiting


async def test_a_retry_after_blocks_every_call_until_it_passed() -> None:
    clock = SimulatedClock(START_NS - START_NS % NS_PER_MINUTE)
    budget = WeightBudget(100, 0.8, clock)
    budget.block(90)  # a 429 said: come back in 90 s (past the next window)
    waiting = asyncio.create_task(budget.acquire(1))
    clock.advance_to(clock.now_ns() + NS_PER_MINUTE)
    await asyncio.sleep(0.05)
    assert not waiting.done()
    clock.advance_to(clock.now_ns() + 30 * NS_PER_SECOND)
    await waiting
    assert budget.rate_limited == 1


def test_a_budget_needs_a_positive_limit() -> None:
    with pytest.raises(ValueError, match="positive"):
        WeightBudget(0, 0.8, SimulatedClock(START_NS))


# ---------------------------------------------------------------------------------- end to end


def limited(limit: int) -> ExchangeSpec:
    return dataclasses.replace(
        BINANCE, weight_limit_per_minute=limit, spot_weight_limit_per_minute=limit
    )


def venue_on(lb: Loopback, spec: ExchangeSpec, clock: Clock) -> CcxtVenue:
    return CcxtVenue(
        spec,
        spot=[SPOT],
        perp=[PERP],
        api_key=API_KEY,
        api_secret=SECRET,
        clock=clock,
        rest_url=lb.server.rest_url,
        ws_url=lb.server.ws_url,
    )


@pytest.fixture
async def small_exchange() -> AsyncIterator[Loopback]:
    async with loopback_exchange(weight_limit=200, spot_weight_limit=200) as lb:
        yield lb


async def test_the_venue_reads_the_weight_the_exchange_counted(small_exchange: Loopback) -> None:
    venue = venue_on(small_exchange, BINANCE, LiveClock())
    async with venue:
        await venue.connect()  # the fixture's own client loaded markets too (same IP)
        assert await venue.order_status("bl-none", SPOT) is None
        server = small_exchange.server.used_weight("spot")
        assert venue.budgets["spot"].current() >= server > 0
        stats = venue.stats()
        assert stats.weight_limit in (1920, 4800)
        assert stats.weight_used >= 0


async def test_a_429_is_obeyed_before_any_further_call(small_exchange: Loopback) -> None:
    """The exchange refuses (its limit is below what the venue believes): the venue waits the
    Retry-After on its clock before it calls again, and reports a VenueError when still refused."""
    clock = SimulatedClock(START_NS)
    venue = venue_on(small_exchange, BINANCE, clock)
    async with venue:
        await venue.connect()
        lookups = asyncio.create_task(_until_refused(venue))
        await eventually(lambda: venue.budgets["spot"].rate_limited == 1, what="a 429")
        requests = small_exchange.server.requests
        await asyncio.sleep(0.1)
        assert small_exchange.server.requests == requests  # nothing while Retry-After runs
        for _ in range(100):  # each retry waits its Retry-After again
            if lookups.done():
                break
            clock.advance_to(clock.now_ns() + NS_PER_MINUTE)
            await asyncio.sleep(0.05)
        with pytest.raises(VenueError, match="rate limited"):
            await lookups


async def _until_refused(venue: CcxtVenue) -> None:
    for n in range(100):
        await venue.order_status(f"bl-{n}", SPOT)


@pytest.mark.slow
async def test_a_burst_is_spread_over_windows_and_never_meets_a_429(
    small_exchange: Loopback,
) -> None:
    venue = venue_on(small_exchange, limited(200), LiveClock())
    async with venue:
        await venue.connect()
        answers = await asyncio.wait_for(
            asyncio.gather(*(venue.order_status(f"bl-{n}", SPOT) for n in range(50))), 130
        )
        assert answers == [None] * 50  # 200 weight beyond the 160 budget: spread, all answered
        budget = venue.budgets["spot"]
        assert budget.rate_limited == 0
        assert budget.waits >= 1


@pytest.mark.slow
async def test_a_429_is_waited_out_and_the_call_then_succeeds(small_exchange: Loopback) -> None:
    venue = venue_on(small_exchange, BINANCE, LiveClock())  # believes in 2400: meets the 200
    async with venue:
        await venue.connect()
        answers = await asyncio.wait_for(
            asyncio.gather(*(venue.order_status(f"bl-{n}", SPOT) for n in range(50))), 130
        )
        assert answers == [None] * 50
        assert venue.budgets["spot"].rate_limited >= 1
