"""The session's start of a live venue: ``Venue.start()`` after the instruments (and, on a fresh
start, the account) are published; on a resume with ``account_on_resume=False`` the account is
left to ``start()`` (fills first, then the statement), and the router's order lookups run after
it. On a real journal with the in-memory venue."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from ballast.engine.app.catch_up import CatchUpClock, GatedVenue
from ballast.engine.app.live_run import wind_down
from ballast.engine.app.session import Session
from ballast.engine.kernel.clock import LiveClock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import Config
from ballast.engine.kernel.events import (
    BalanceUpdated,
    InstrumentsLoaded,
    IntentApproved,
    Message,
    OrderIntent,
    OrderStatusReported,
    QuoteTick,
    VenueConnectionChanged,
)
from ballast.engine.kernel.instruments import binance_defaults
from ballast.engine.kernel.journal import Journal, JournalReader
from ballast.engine.trading.venue import OrderStatus, VenueStats
from tests.support.memory_venue import InMemoryVenue

D = Decimal
INSTRUMENTS = tuple(binance_defaults(["BTC", "ETH"]))


class StartingVenue(InMemoryVenue):
    """Records what the session had published when ``start()`` and each lookup came; its
    ``start()`` reports the account, then ``caught_up`` (as a live venue does)."""

    def __init__(self, clock: LiveClock) -> None:
        super().__init__(INSTRUMENTS, {"USDT": D(1000)}, clock)
        self.log: list[str] = []
        self.seen: list[Message] = []

    async def start(self) -> None:
        venue_facts = [m for m in self.seen if isinstance(m, InstrumentsLoaded | BalanceUpdated)]
        self.log.append(f"start after {[type(m).__name__ for m in venue_facts]}")
        for event in await self.account():
            await self.emit(event)
        now = self.clock.now_ns()
        await self.emit(VenueConnectionChanged(now, now, self.name, "rest", "caught_up"))

    async def order_status(self, client_order_id: str, symbol: str) -> OrderStatus | None:
        self.log.append(f"lookup {client_order_id}")
        return await super().order_status(client_order_id, symbol)

    def stats(self) -> VenueStats:
        return VenueStats(connected={}, reconnects=0, weight_used=1, weight_limit=2)


async def test_a_fresh_session_starts_the_venue_after_instruments_and_account(
    tmp_path: Path,
) -> None:
    clock = CatchUpClock()
    venue = StartingVenue(clock)
    async with Journal(tmp_path / "j.db", kind="live") as journal:
        session = Session(Config(), clock, journal=journal, venue=venue)
        session.bus.subscribe_all(venue.seen.append)
        async with session:
            pass
    assert venue.log == [
        "start after ['InstrumentsLoaded', 'BalanceUpdated']",
    ]
    async with JournalReader(tmp_path / "j.db") as reader:
        kinds = [type(m).__name__ for m in await reader.messages()]
    assert kinds.count("BalanceUpdated") == 2  # the session's snapshot, then start()'s
    assert kinds.index("VenueConnectionChanged") > kinds.index("InstrumentsLoaded")


async def test_a_resumed_live_session_leaves_the_account_to_start_then_looks_orders_up(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    clock = CatchUpClock()
    first = StartingVenue(clock)
    async with Journal(path, kind="live") as journal:
        async with Session(Config(), clock, journal=journal, venue=first) as session:
            # an order the venue reported open (then the engine went down)
            now = clock.now_ns()
            await session.bus.publish_durable(
                OrderStatusReported(
                    now, now, "c-1", "v-1", "BTC/USDT", "buy", D("0.001"), D(0), None, "open"
                )
            )
        last_seq = journal.last_seq

    clock = CatchUpClock()
    second = StartingVenue(clock)
    async with Journal(path, kind="live") as journal:
        session = Session(
            Config(),
            clock,
            journal=journal,
            venue=second,
            resume_from=last_seq,
            account_on_resume=False,
        )
        session.bus.subscribe_all(lambda m: None if clock.replaying else second.seen.append(m))
        async with session:
            assert isinstance(session.actors[-1].venue, GatedVenue)  # type: ignore[attr-defined]
            assert session.actors[-1].venue.stats() == second.stats()  # type: ignore[attr-defined]
    # instruments, no account before start(); the lookup after start()
    assert second.log[0] == "start after ['InstrumentsLoaded']"
    assert second.log[1:] == ["lookup c-1"]
    async with JournalReader(path) as reader:
        resumed = (await reader.messages())[last_seq:]
    kinds = [type(m).__name__ for m in resumed]
    assert kinds.index("InstrumentsLoaded") < kinds.index("BalanceUpdated")
    assert kinds.index("VenueConnectionChanged") < kinds.index("OrderRejected")
    assert isinstance(resumed[kinds.index("BalanceUpdated")], BalanceUpdated)
    assert isinstance(resumed[kinds.index("InstrumentsLoaded")], InstrumentsLoaded)


class SlowVenue(InMemoryVenue):
    """Its submits wait for ``release`` (an order on the wire when the stop comes)."""

    def __init__(self, clock: LiveClock) -> None:
        super().__init__(INSTRUMENTS, {"USDT": D(100_000)}, clock, prices={"BTC/USDT": D(40_000)})
        self.release = asyncio.Event()
        self.sending = asyncio.Event()

    async def submit(self, order: SubmitOrder) -> None:
        self.sending.set()
        await self.release.wait()
        await super().submit(order)


def approve(session: Session) -> None:
    now = session.clock.now_ns()
    intent = OrderIntent("i-1", "BTC/USDT", "buy", D("0.01"), "market", None, False, "test")
    session.bus.publish(IntentApproved(now, now, intent, ""))


async def test_a_graceful_stop_lets_the_order_being_sent_finish(tmp_path: Path) -> None:
    clock = CatchUpClock()
    venue = SlowVenue(clock)
    journal = Journal(tmp_path / "j.db", kind="live")
    async with journal, Session(Config(), clock, journal=journal, venue=venue) as session:
        approve(session)
        await venue.sending.wait()
        asyncio.get_running_loop().call_later(0.05, venue.release.set)
        await wind_down(session, 10)
        assert session.market_muted
    async with JournalReader(tmp_path / "j.db") as reader:
        kinds = [type(m).__name__ for m in await reader.messages()]
    assert kinds.index("SubmitOrder") < kinds.index("OrderFilled") < kinds.index("SessionStopped")


async def test_a_graceful_stop_waits_for_an_order_being_sent_no_longer_than_its_bound(
    tmp_path: Path,
) -> None:
    clock = CatchUpClock()
    venue = SlowVenue(clock)
    journal = Journal(tmp_path / "j.db", kind="live")
    async with journal, Session(Config(), clock, journal=journal, venue=venue) as session:
        approve(session)
        await venue.sending.wait()
        await wind_down(session, 0.05)  # never released: given up, looked up on restart
    async with JournalReader(tmp_path / "j.db") as reader:
        kinds = [type(m).__name__ for m in await reader.messages()]
    assert "SubmitOrder" in kinds
    assert "OrderFilled" not in kinds
    assert kinds[-1] == "SessionStopped"


async def test_a_venue_delivers_market_data_synchronously_and_the_rest_through_its_sink(
    tmp_path: Path,
) -> None:
    """``Venue.emit_market_now``: a stream handler hands a quote to the session in its own
    callback (journaled and dispatched before it returns, no loop iteration); an order or account
    event is refused there (it must be durable before anything acts on it: ``emit``), and so is
    market data while the journal is backlogged (``emit`` waits for it); a muted session drops
    market data, as its sink does."""
    clock = CatchUpClock()
    venue = StartingVenue(clock)
    async with Journal(tmp_path / "j.db", kind="live") as journal:
        session = Session(Config(), clock, journal=journal, venue=venue)
        async with session:
            seen: list[Message] = []
            session.bus.subscribe_all(seen.append)
            now = clock.now_ns()
            quote = QuoteTick(now, now, "BTC/USDT", D(50_000), D(50_001), D(1), D(1))
            before = session.bus.last_seq
            assert venue.emit_market_now(quote)
            assert seen == [quote]
            assert session.bus.last_seq == before + 1

            balance = BalanceUpdated(now, now, "spot", "USDT", D(1000), D(0))
            assert not venue.emit_market_now(balance)
            assert seen == [quote]

            journal.high_water = 0
            journal.append(quote)  # one record waiting for its group commit: backlogged
            assert not venue.emit_market_now(quote)
            await journal.commit()
            assert venue.emit_market_now(quote)

            session.mute_market()
            count = len(seen)
            assert venue.emit_market_now(quote)  # taken, and dropped
            assert len(seen) == count
    assert not InMemoryVenue(INSTRUMENTS, {}, clock).emit_market_now(quote)  # no session attached
