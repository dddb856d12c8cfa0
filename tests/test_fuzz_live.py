"""Fuzzing the live path (issue 14): raw frames a Binance client should never get, put on the
loopback exchange's sockets, read by the real ccxt.pro client, through the venue adapter, onto the
bus, into the market gate and the actors of one running engine (:mod:`tests.support.live_rig`).

Market data (spot and futures bookTicker, markPrice with funding): NaN, infinities, zero and
negative prices, crossed quotes, spikes, times in the future, backwards or beyond range, unknown
symbols, wrong types, missing fields, malformed JSON. Each example injects a batch, then true
prices behind it on the same sockets, and waits until the engine has them. Measured, over the
whole run: a quarantine (``DataRejected`` or ``VenueMessageRejected``) for every bad frame, each
counted in the metrics; no market data delivered to the actors at a price other than the true
one; no valuation and no order on one (the book is on its target at the true price: any order
would be on bad data); no crash (nothing reached the loop's exception handler, no actor failed,
no stream dropped); the true prices after every batch arrive (a bad frame froze nothing).

User streams (spot ``executionReport`` / ``outboundAccountPosition`` over the WS-API, futures
``ORDER_TRADE_UPDATE`` / ``ACCOUNT_UPDATE`` over the listenKey socket): garbage fields, missing
fields, unknown order ids, malformed JSON: each unreadable one is a journaled
``VenueMessageRejected`` naming what was wrong, followed by a REST catch-up; nothing is booked
from them (the journal's fills are the exchange's trades, its book the exchange's).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings

from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.events import (
    DataRejected,
    HandlerFailed,
    MarkPriceUpdated,
    Message,
    PortfolioSnapshot,
    QuoteTick,
    StrategyFailed,
    VenueConnectionChanged,
    VenueMessageRejected,
)
from tests.support.live_exchange import (
    ExchangeState,
    book_differences,
    duplicate_orders,
    lost_fills,
    read_journal,
)
from tests.support.live_rig import NOT_BOOKED, TRUE_NAV, LiveRig
from tests.support.reliability import full, record, size
from tests.support.wire_fuzz import (
    BASE_ASK,
    BASE_BID,
    BASE_MARK,
    Frame,
    every_kind_of_rejection,
    market_batches,
    user_batches,
)

pytestmark = pytest.mark.reliability

MARKET_EXAMPLES = size(80, 2000)
USER_EXAMPLES = size(30, 500)


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=not full(),
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRig]:
    with LiveRig(tmp_path_factory.mktemp("fuzz-live")) as live:
        yield live


def quarantines(window: list[Message]) -> list[DataRejected | VenueMessageRejected]:
    return [m for m in window if isinstance(m, DataRejected | VenueMessageRejected)]


def untrue(message: Message) -> bool:
    """Market data delivered at a price other than the true one."""
    if isinstance(message, QuoteTick):
        return (message.bid, message.ask) != (BASE_BID, BASE_ASK)
    if isinstance(message, MarkPriceUpdated):
        return message.mark != BASE_MARK or not message.funding_rate.is_finite()
    return False


def crashes(rig: LiveRig) -> list[str]:
    died = [f"{type(m).__name__}: {m}" for m in rig.seen if isinstance(m, HandlerFailed)]
    died += [f"{type(m).__name__}: {m}" for m in rig.seen if isinstance(m, StrategyFailed)]
    return died + [f"loop: {e}" for e in rig.loop_errors]


def drops(rig: LiveRig) -> list[VenueConnectionChanged]:
    return [
        m for m in rig.seen if isinstance(m, VenueConnectionChanged) and m.state == "disconnected"
    ]


class Tally:
    def __init__(self) -> None:
        self.cases = 0
        self.bad = 0
        self.unquarantined: list[str] = []


# ---------------------------------------------------------------------------------- market data


def test_market_data_anomalies_on_the_wire_are_quarantined_counted_and_never_traded_on(
    rig: LiveRig,
) -> None:
    start = len(rig.seen)
    tally = Tally()

    @fuzz_settings(MARKET_EXAMPLES)
    @example(batch=every_kind_of_rejection())
    @given(batch=market_batches())
    def one_batch(batch: list[Frame]) -> None:
        begin = len(rig.seen)
        for frame in batch:
            assert rig.run(rig.inject(frame)) == 1, frame
        rig.run(rig.settle())
        window = rig.seen[begin:]
        tally.cases += len(batch)
        expected = sum(f.bad for f in batch)
        tally.bad += expected
        got = len(quarantines(window))
        if got < expected:
            tally.unquarantined.append(f"{[f.what for f in batch]}: {got} of {expected}")
        assert got >= expected, [f.what for f in batch]
        assert not [m for m in window if untrue(m)], [f.what for f in batch]
        assert not crashes(rig)

    one_batch()
    fuzzed = rig.seen[start:]
    orders = [m for m in fuzzed if isinstance(m, SubmitOrder)]
    valued = [m for m in fuzzed if isinstance(m, PortfolioSnapshot) and m.nav != TRUE_NAV]
    taken = [m for m in fuzzed if untrue(m)]
    rejected = [m for m in fuzzed if isinstance(m, DataRejected)]
    unreadable = [m for m in fuzzed if isinstance(m, VenueMessageRejected)]
    assert rig.exporter is not None
    registry = rig.exporter.registry
    counted_rejected = sum(
        registry.get_sample_value("ballast_data_rejected_total", {"reason": r}) or 0
        for r in {m.reason for m in rejected}
    )
    counted_unreadable = sum(
        registry.get_sample_value(
            "ballast_venue_messages_rejected_total",
            {"venue": "binance", "channel": m.channel, "reason": m.reason},
        )
        or 0
        for m in {(m.channel, m.reason): m for m in unreadable}.values()
    )
    record(
        "fuzz_live_market",
        fuzz_cases=tally.cases,
        crashes=len(crashes(rig)) + len(drops(rig)),
        orders_on_bad_data=len(orders),
        bad_data_taken=len(taken),
        valuations_on_bad_data=len(valued),
        unquarantined=len(tally.unquarantined),
        data_rejected=len(rejected),
        venue_messages_rejected=len(unreadable),
    )
    assert tally.cases >= MARKET_EXAMPLES
    assert tally.unquarantined == []
    assert orders == []
    assert valued == []
    assert taken == []
    assert crashes(rig) == []
    assert drops(rig) == []
    # every quarantine is counted in the metrics (the rig's warm-up rejected nothing)
    assert counted_rejected >= len(rejected) > 0
    assert counted_unreadable >= len(unreadable) > 0
    assert {m.reason for m in rejected} >= {
        "non_positive_price",
        "crossed_quote",
        "out_of_order",
        "price_jump",
        "implausible_funding_rate",
        "future_timestamp",
    }


# ---------------------------------------------------------------------------------- user streams


def test_malformed_user_stream_messages_are_reported_caught_up_and_never_booked(
    rig: LiveRig,
) -> None:
    start = len(rig.seen)
    tally = Tally()

    @fuzz_settings(USER_EXAMPLES)
    @given(batch=user_batches())
    def one_batch(batch: list[Frame]) -> None:
        begin = len(rig.seen)
        for frame in batch:
            assert rig.run(rig.inject(frame)) == 1, frame
        expected = sum(f.bad for f in batch)
        tally.cases += len(batch)
        tally.bad += expected
        rig.run(rig.caught_up_after(begin, expected))
        rig.run(rig.settle())
        window = rig.seen[begin:]
        got = [m for m in window if isinstance(m, VenueMessageRejected)]
        if len(got) < expected:
            tally.unquarantined.append(f"{[f.what for f in batch]}: {len(got)} of {expected}")
        assert len(got) >= expected, [f.what for f in batch]
        assert all(m.channel.startswith("user:") and m.detail for m in got)
        assert not crashes(rig)

    one_batch()
    fuzzed = rig.seen[start:]
    reported = [m for m in fuzzed if isinstance(m, VenueMessageRejected)]
    catch_ups = [
        m
        for m in fuzzed
        if isinstance(m, VenueConnectionChanged)
        and m.state == "caught_up"
        and NOT_BOOKED in m.reason
    ]
    journal = rig.run(read_journal_now(rig))
    state = rig.run(exchange_state(rig))
    wrong = duplicate_orders(journal, state) + lost_fills(journal, state)
    wrong += book_differences(journal, state)
    record(
        "fuzz_live_user",
        fuzz_cases=tally.cases,
        crashes=len(crashes(rig)) + len(drops(rig)),
        wrong_bookings=len(wrong),
        unquarantined=len(tally.unquarantined),
        venue_messages_rejected=len(reported),
        catch_ups=len(catch_ups),
    )
    assert tally.unquarantined == []
    assert reported, "no malformed message was reported"
    assert catch_ups, "no catch-up after a malformed message"
    assert wrong == []
    assert crashes(rig) == []
    assert drops(rig) == []


async def read_journal_now(rig: LiveRig) -> Any:
    return await read_journal(rig.journal_path)


async def exchange_state(rig: LiveRig) -> ExchangeState:
    assert rig.lb is not None
    return ExchangeState.from_json(json.loads(json.dumps(await rig.lb.state())))
