"""Session.busy: the synchronous check a driver makes before awaiting ``session.idle()`` (the
backtest driver awaits only when it is True), so it must say True exactly when idle() would wait."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from ballast.engine.app.session import Session
from ballast.engine.kernel.actor import Actor
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import Clock, SimulatedClock
from ballast.engine.kernel.config import Config, parse_config
from ballast.engine.kernel.events import DataRejected, QuoteTick
from ballast.engine.kernel.journal import Journal, JournalReader
from tests.conftest import START_NS


class Chore(Actor):
    """On a quote, spawns background work that publishes once it is released."""

    def __init__(self, bus: Bus, clock: Clock) -> None:
        super().__init__(bus, clock)
        self.release = asyncio.Event()
        self.subscribe(QuoteTick, self.on_quote)

    def on_quote(self, _: QuoteTick) -> None:
        self.spawn(self.work(), name="chore")

    async def work(self) -> None:
        await self.release.wait()
        now = self.now()
        self.publish(DataRejected(now, now, "*", "out_of_order", "chore done"))


def busy(session: Session) -> bool:
    """``session.busy`` read afresh (not narrowed by an earlier assert)."""
    return session.busy


def chores(_: Config, bus: Bus, clock: Clock) -> list[Actor]:
    return [Chore(bus, clock)]


def quote() -> QuoteTick:
    one = Decimal(1)
    return QuoteTick(START_NS, START_NS, "BTC/USDT", Decimal(100), Decimal(101), one, one)


async def test_busy_while_an_actor_has_background_work_and_idle_after_it(
    tmp_path: Path, sim_clock: SimulatedClock
) -> None:
    config = parse_config("")
    async with Journal(tmp_path / "j.db") as journal:
        async with Session(config, sim_clock, journal=journal, actors=chores) as session:
            assert not busy(session)
            session.bus.publish(quote())
            assert busy(session)  # the chore's task is running: idle() would wait
            waiting = asyncio.create_task(session.idle())
            await asyncio.sleep(0)
            assert not waiting.done()
            chore = session.actors[0]
            assert isinstance(chore, Chore)
            chore.release.set()
            await waiting
            assert not busy(session)
        await journal.sync()
    async with JournalReader(tmp_path / "j.db") as reader:
        kinds = [type(m).__name__ for m in await reader.messages()]
    assert kinds.index("QuoteTick") < kinds.index("DataRejected")


def no_actors(_: Config, bus: Bus, clock: Clock) -> list[Actor]:
    return []


async def test_busy_while_the_bus_has_messages_queued(sim_clock: SimulatedClock) -> None:
    seen: list[tuple[str, bool]] = []
    async with Session(parse_config(""), sim_clock, journal=None, actors=no_actors) as session:

        def look(event: DataRejected) -> None:  # while its message is being dispatched
            seen.append((event.detail, session.busy))

        def twice(_: QuoteTick) -> None:
            session.bus.publish(DataRejected(START_NS, START_NS, "*", "out_of_order", "one"))
            session.bus.publish(DataRejected(START_NS, START_NS, "*", "out_of_order", "two"))

        session.bus.subscribe(DataRejected, look)
        session.bus.subscribe(QuoteTick, twice)
        session.bus.publish(quote())
        assert not busy(session)
    assert seen == [("one", True), ("two", False)]  # "two" was still queued behind "one"
