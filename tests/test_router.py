"""OrderRouter: approved intents become exactly one durable, idempotent order each.

Given a real bus journaling into a real SQLite file and an InMemoryVenue reporting through
``bus.publish_durable`` → when an intent is approved (or the transport fails, or the engine
restarts) → then the commands and events on the bus, and the orders the venue holds.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import pytest

from ballast.adapters.silent_venue import SilentVenue
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import SimulatedClock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import parse_config
from ballast.engine.kernel.events import (
    IntentApproved,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderStatusReported,
    OrderSubmitted,
    OrderType,
    Side,
)
from ballast.engine.kernel.instruments import binance_defaults
from ballast.engine.kernel.journal import Journal, JournalReader
from ballast.engine.kernel.order_state import ReportedOrderState
from ballast.engine.kernel.redaction import register_secret
from ballast.engine.trading.order_tracker import is_valid_client_order_id
from ballast.engine.trading.router import OrderRouter
from tests.conftest import START_NS
from tests.support.memory_venue import InMemoryVenue
from tests.support.waiting import eventually

SPOT = "BTC/USDT"
PERP = "BTC/USDT:USDT"
PRICE = Decimal(50_000)
INSTRUMENTS = binance_defaults(["BTC", "ETH"])
M = TypeVar("M", bound=Message)


class DurabilityProbe:
    """The venue's sink: notes what the journal held durably when the venue reported a
    submission, then publishes durably like the session does."""

    def __init__(self, bus: Bus, journal: Journal) -> None:
        self.bus = bus
        self.journal = journal
        self.durable_at_submission: dict[str, int] = {}
        self.commands_on_disk: dict[str, list[str]] = {}

    async def __call__(self, event: Message) -> int:
        if isinstance(event, OrderSubmitted):
            self.durable_at_submission[event.client_order_id] = self.journal.durable_seq
            async with JournalReader(self.journal.path) as reader:
                on_disk = await reader.messages(types=["SubmitOrder"])
            self.commands_on_disk[event.client_order_id] = [
                m.client_order_id for m in on_disk if isinstance(m, SubmitOrder)
            ]
        return await self.bus.publish_durable(event)


class World:
    def __init__(self, journal: Journal, venue: InMemoryVenue, *, backoff: float = 0.0) -> None:
        self.clock = SimulatedClock(START_NS)
        self.journal = journal
        self.bus = Bus(self.clock, journal)
        self.seen: list[Message] = []
        self.bus.subscribe_all(self.seen.append, name="test.capture")
        self.venue = venue
        self.probe = DurabilityProbe(self.bus, journal)
        venue.attach(self.probe)
        self.router = OrderRouter(self.bus, self.clock, venue, retry_backoff_s=backoff)

    def of(self, kind: type[M]) -> list[M]:
        return [m for m in self.seen if isinstance(m, kind)]

    async def approve(self, *intents: OrderIntent) -> None:
        """Approve ``intents`` one after the other in one go, as the risk actor approves a
        decision's intents, then wait for the router."""
        for intent in intents:
            self.bus.publish(IntentApproved(START_NS, START_NS, intent=intent, cut_reason=""))
        await self.router.idle()


def intent(
    intent_id: str = "d1-0",
    *,
    symbol: str = SPOT,
    side: Side = "buy",
    qty: str = "0.1",
    order_type: OrderType = "market",
    price: str | None = None,
    reduce_only: bool = False,
) -> OrderIntent:
    return OrderIntent(
        intent_id=intent_id,
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        order_type=order_type,
        price=None if price is None else Decimal(price),
        reduce_only=reduce_only,
        reason="test",
    )


def memory_venue(
    *, fail_next_submits: int = 0, fail_after_recording: bool = True, fail_next_lookups: int = 0
) -> InMemoryVenue:
    return InMemoryVenue(
        INSTRUMENTS,
        {"USDT": Decimal(100_000), "BTC": Decimal(1)},
        SimulatedClock(START_NS),
        prices={SPOT: PRICE, PERP: PRICE},
        fail_next_submits=fail_next_submits,
        fail_after_recording=fail_after_recording,
        fail_next_lookups=fail_next_lookups,
    )


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    # Never flushes on its own: only an explicit sync makes anything durable.
    async with Journal(tmp_path / "journal.db", flush_interval_s=3600.0) as journal:
        yield journal


@pytest.fixture
async def world(journal: Journal) -> AsyncIterator[World]:
    w = World(journal, memory_venue())
    async with w.router:
        yield w


# ---------------------------------------------------------------------------------- sending


async def test_an_approved_intent_is_journaled_durably_before_the_venue_sees_it(
    world: World,
) -> None:
    await world.approve(intent("d1-0"))

    [cmd] = world.of(SubmitOrder)
    async with JournalReader(world.journal.path) as reader:
        records = [r async for r in reader.records(types=["SubmitOrder"])]
    assert [r.message for r in records] == [cmd]
    assert world.probe.durable_at_submission["bl-d1-0"] >= records[0].seq
    assert world.probe.commands_on_disk["bl-d1-0"] == ["bl-d1-0"]
    assert [o.client_order_id for o in world.venue.orders()] == ["bl-d1-0"]


async def test_the_command_carries_the_intent(world: World) -> None:
    await world.approve(intent("d3-1", symbol=PERP, side="sell", qty="0.25"))

    [cmd] = world.of(SubmitOrder)
    assert (cmd.intent_id, cmd.client_order_id, cmd.symbol, cmd.side, cmd.qty) == (
        "d3-1",
        "bl-d3-1",
        PERP,
        "sell",
        Decimal("0.25"),
    )
    assert (cmd.order_type, cmd.price, cmd.reduce_only, cmd.post_only) == (
        "market",
        None,
        False,
        False,
    )


async def test_the_order_is_tracked_through_to_filled(world: World) -> None:
    await world.approve(intent("d1-0"))

    order = world.router.orders.for_intent("d1-0")
    assert order is not None
    assert (order.state, order.filled_qty, order.avg_price) == ("filled", Decimal("0.1"), PRICE)
    assert [type(m) for m in world.seen if not isinstance(m, SubmitOrder)][:4] == [
        IntentApproved,
        OrderSubmitted,
        OrderAccepted,
        OrderFilled,
    ]


async def test_the_same_intent_approved_twice_sends_one_order(world: World) -> None:
    await world.approve(intent("d1-0"))

    await world.approve(intent("d1-0"))

    assert len(world.of(SubmitOrder)) == 1
    assert len(world.venue.received) == 1
    assert len(world.venue.orders()) == 1


async def test_an_intent_approved_again_while_its_order_rests_is_not_resent(
    world: World,
) -> None:
    resting = intent("d1-0", order_type="limit", price="49000")
    await world.approve(resting)

    await world.approve(resting)

    assert len(world.of(SubmitOrder)) == 1
    live = world.router.orders.live_for_intent("d1-0")
    assert live is not None
    assert live.state == "open"


async def test_two_intents_make_two_orders(world: World) -> None:
    await world.approve(intent("d1-0"))
    await world.approve(intent("d1-1", side="sell"))

    assert [o.client_order_id for o in world.venue.orders()] == ["bl-d1-0", "bl-d1-1"]


# ---------------------------------------------------------------------------------- transport


async def test_timeout_after_the_venue_got_the_order_is_looked_up_not_resent(
    journal: Journal,
) -> None:
    world = World(journal, memory_venue(fail_next_submits=1, fail_after_recording=True))

    await world.approve(intent("d1-0"))

    [report] = world.of(OrderStatusReported)
    assert (report.client_order_id, report.state, report.filled_qty) == (
        "bl-d1-0",
        "filled",
        Decimal("0.1"),
    )
    assert len(world.venue.received) == 1
    assert len(world.venue.orders()) == 1
    assert world.of(OrderRejected) == []
    order = world.router.orders.for_intent("d1-0")
    assert order is not None
    assert order.state == "filled"


async def test_timeout_before_the_venue_got_the_order_resends_the_same_id(
    journal: Journal,
) -> None:
    world = World(journal, memory_venue(fail_next_submits=1, fail_after_recording=False))

    await world.approve(intent("d1-0"))

    [report] = world.of(OrderStatusReported)
    assert (report.client_order_id, report.state) == ("bl-d1-0", "unknown")
    assert [c.client_order_id for c in world.venue.received] == ["bl-d1-0"]
    assert [o.client_order_id for o in world.venue.orders()] == ["bl-d1-0"]
    assert len(world.of(SubmitOrder)) == 1  # the resend is not a new command
    order = world.router.orders.for_intent("d1-0")
    assert order is not None
    assert order.state == "filled"


async def test_a_failed_lookup_resends_and_the_venue_ignores_the_duplicate(
    journal: Journal,
) -> None:
    venue = memory_venue(fail_next_submits=1, fail_after_recording=True, fail_next_lookups=1)
    world = World(journal, venue)

    await world.approve(intent("d1-0"))

    assert [c.client_order_id for c in venue.received] == ["bl-d1-0", "bl-d1-0"]
    assert len(venue.orders()) == 1
    assert len(world.of(OrderFilled)) == 1
    assert world.of(OrderRejected) == []


async def test_permanent_failure_is_rejected_after_max_attempts(journal: Journal) -> None:
    world = World(journal, memory_venue(fail_next_submits=99, fail_after_recording=False))

    await world.approve(intent("d1-0"))

    reports = world.of(OrderStatusReported)
    assert [r.state for r in reports] == ["unknown"] * 3
    [rejected] = world.of(OrderRejected)
    assert rejected.client_order_id == "bl-d1-0"
    assert rejected.reason.startswith("transport: no answer after 3 attempts")
    assert world.venue.orders() == []
    order = world.router.orders.for_intent("d1-0")
    assert order is not None
    assert order.state == "rejected"


async def test_transport_reasons_are_redacted(journal: Journal) -> None:
    register_secret("memory")  # the venue's name appears in its error text
    world = World(journal, memory_venue(fail_next_submits=99, fail_after_recording=False))

    await world.approve(intent("d1-0"))

    [rejected] = world.of(OrderRejected)
    assert "memory" not in rejected.reason
    assert "***" in rejected.reason


async def test_an_intent_whose_order_gave_up_is_not_retried_by_a_repeat_approval(
    journal: Journal,
) -> None:
    world = World(journal, memory_venue(fail_next_submits=3, fail_after_recording=False))
    await world.approve(intent("d1-0"))

    await world.approve(intent("d1-0"))

    assert len(world.of(SubmitOrder)) == 1
    assert world.venue.orders() == []


# ---------------------------------------------------------------------------------- restart


async def test_after_a_restart_a_live_order_is_adopted_not_resubmitted(
    tmp_path: Path, journal: Journal
) -> None:
    venue = memory_venue()
    first = World(journal, venue)
    await first.approve(intent("d1-0", order_type="limit", price="49000"))
    async with Journal(tmp_path / "second.db", flush_interval_s=3600.0) as journal2:
        second = World(journal2, venue)

        async with second.router:
            await second.approve(intent("d1-0", order_type="limit", price="49000"))

        [report] = second.of(OrderStatusReported)
        assert (report.client_order_id, report.state) == ("bl-d1-0", "open")
        assert second.of(SubmitOrder) == []
        assert len(venue.received) == 1
        live = second.router.orders.live_for_intent("d1-0")
        assert live is not None
        assert live.venue_order_id == venue.orders()[0].venue_order_id


async def test_an_adopted_order_is_tracked_to_its_fill(tmp_path: Path, journal: Journal) -> None:
    venue = memory_venue()
    await World(journal, venue).approve(intent("d1-0", order_type="limit", price="49000"))
    async with Journal(tmp_path / "second.db", flush_interval_s=3600.0) as journal2:
        second = World(journal2, venue)
        async with second.router:
            await venue.set_price(SPOT, Decimal(48_000))

        order = second.router.orders.for_intent("d1-0")
        assert order is not None
        assert (order.state, order.avg_price) == ("filled", Decimal(49_000))


# ---------------------------------------------------------------------------------- lifecycle


async def test_lifecycle_is_tracked_through_partial_fills(world: World) -> None:
    await world.approve(intent("d1-0", qty="1", order_type="limit", price="40000"))
    states = []

    for n, (qty, price) in enumerate([("0.25", "40000"), ("0.25", "39000"), ("0.5", "40000")]):
        world.bus.publish(
            OrderFilled(
                START_NS,
                START_NS,
                client_order_id="bl-d1-0",
                venue_order_id="m1",
                trade_id=f"x{n}",
                symbol=SPOT,
                side="buy",
                qty=Decimal(qty),
                price=Decimal(price),
                fee=Decimal(0),
                fee_asset="USDT",
                liquidity="maker",
            )
        )
        order = world.router.orders.for_intent("d1-0")
        assert order is not None
        states.append((order.state, order.filled_qty))

    assert states == [
        ("partially_filled", Decimal("0.25")),
        ("partially_filled", Decimal("0.5")),
        ("filled", Decimal(1)),
    ]
    order = world.router.orders.for_intent("d1-0")
    assert order is not None
    assert order.avg_price == Decimal("39750")


# ---------------------------------------------------------------------------------- ids, config


async def test_client_order_ids_are_deterministic_and_valid_for_binance(
    tmp_path: Path, world: World
) -> None:
    awkward = "decision #12 / overlay short BTC/USDT:USDT — leg 3 of 4"
    await world.approve(intent(awkward))
    await world.approve(intent("d2-0"))
    async with Journal(tmp_path / "again.db", flush_interval_s=3600.0) as journal2:
        again = World(journal2, memory_venue())
        await again.approve(intent(awkward))

    ids = [c.client_order_id for c in world.of(SubmitOrder)]
    assert ids[1] == "bl-d2-0"
    assert all(is_valid_client_order_id(i) for i in ids)
    assert again.of(SubmitOrder)[0].client_order_id == ids[0]


async def test_from_config_takes_the_execution_settings(world: World) -> None:
    config = parse_config("[execution]\nsubmit_attempts = 5\nsubmit_retry_backoff_s = 0.25\n")

    router = OrderRouter.from_config(config, world.bus, world.clock, world.venue)

    assert (router.max_attempts, router.retry_backoff_s) == (5, 0.25)


async def test_backoff_between_attempts_still_reaches_the_venue(journal: Journal) -> None:
    world = World(
        journal, memory_venue(fail_next_submits=1, fail_after_recording=False), backoff=0.001
    )

    world.bus.publish(IntentApproved(START_NS, START_NS, intent=intent("d1-0"), cut_reason=""))
    await eventually(lambda: len(world.venue.orders()) == 1, what="resend after backoff")

    await world.router.idle()
    assert len(world.of(OrderFilled)) == 1


async def test_with_the_silent_venue_only_the_command_is_published(journal: Journal) -> None:
    clock = SimulatedClock(START_NS)
    bus = Bus(clock, journal)
    seen: list[Message] = []
    bus.subscribe_all(seen.append, name="test.capture")
    venue = SilentVenue()
    router = OrderRouter(bus, clock, venue)

    async with router:
        bus.publish(IntentApproved(START_NS, START_NS, intent=intent("d1-0"), cut_reason=""))
        await router.idle()

    assert [type(m) for m in seen] == [IntentApproved, SubmitOrder]
    assert [c.client_order_id for c in venue.submitted] == ["bl-d1-0"]


# ---------------------------------------------------------------------------------- out of order


async def test_late_updates_after_the_fill_are_ignored_quietly_and_counted(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A live venue's streams and REST answers race: an order's acknowledgement or a status
    lookup may arrive after its fill was booked. They never move the order back, and they are
    counted, not warned about."""
    await world.approve(intent("d1-0"))
    assert world.router.stale_updates == 0

    def report(state: ReportedOrderState, filled: str) -> OrderStatusReported:
        return OrderStatusReported(
            START_NS,
            START_NS,
            "bl-d1-0",
            "v1",
            SPOT,
            "buy",
            Decimal("0.1"),
            Decimal(filled),
            None,
            state,
        )

    with caplog.at_level(logging.DEBUG):
        world.bus.publish(OrderAccepted(START_NS, START_NS, "bl-d1-0", "v1", SPOT))
        world.bus.publish(report("open", "0"))
        world.bus.publish(report("open", "0.05"))  # a partial fill, seen by a slow lookup

    order = world.router.orders.for_intent("d1-0")
    assert order is not None
    assert (order.state, order.filled_qty) == ("filled", Decimal("0.1"))
    assert world.router.stale_updates == 3
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert sum("illegal transition filled ->" in r.getMessage() for r in caplog.records) == 3


async def test_a_cancel_after_the_fill_is_still_a_warning(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Only an earlier state arriving late is stale; a contradicting end is not."""
    await world.approve(intent("d1-0"))

    with caplog.at_level(logging.DEBUG):
        world.bus.publish(OrderCanceled(START_NS, START_NS, "bl-d1-0", SPOT, "expired"))

    order = world.router.orders.for_intent("d1-0")
    assert order is not None
    assert order.state == "filled"
    assert world.router.stale_updates == 0
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "illegal transition filled -> canceled" in warning.getMessage()
