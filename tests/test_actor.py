"""Actors: given events → when an event → then events, on a real bus and the simulated clock;
timers as journaled inputs; lifecycle. (That no actor imports another: test_architecture.py.)"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from ballast.engine.kernel.actor import Actor
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_MINUTE, NS_PER_SECOND, Clock, SimulatedClock
from ballast.engine.kernel.events import DataRejected, HandlerFailed, Message, QuoteTick, TimerFired
from ballast.engine.kernel.journal import Journal, JournalReader
from tests.conftest import START_NS
from tests.support.actors import Heartbeat, QuoteGuard, Recorder
from tests.support.waiting import eventually

D = Decimal


def quote(bid: str, ask: str, ts: int = START_NS) -> QuoteTick:
    return QuoteTick(ts, ts, "BTC/USDT", D(bid), D(ask), D(1), D(1))


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    async with Journal(tmp_path / "journal.db") as j:
        yield j


@pytest.fixture
def bus(journal: Journal, sim_clock: SimulatedClock) -> Bus:
    return Bus(sim_clock, journal)


async def journaled(journal: Journal) -> list[Message]:
    await journal.sync()
    async with JournalReader(journal.path) as reader:
        return await reader.messages()


# --------------------------------------------------------------------- events in, events out


async def test_given_a_guard_when_a_crossed_quote_arrives_then_it_is_rejected(
    bus: Bus, sim_clock: SimulatedClock, journal: Journal
) -> None:
    # given
    async with QuoteGuard(bus, sim_clock) as guard:
        bus.publish(quote("100", "101"))
        # when
        crossed = quote("102", "101", START_NS + 1)
        bus.publish(crossed)
    # then
    assert await journaled(journal) == [
        quote("100", "101"),
        crossed,
        DataRejected(START_NS + 1, START_NS, "BTC/USDT", "crossed_quote", "bid 102 > ask 101"),
    ]
    assert guard.checked == 2


async def test_a_failing_actor_handler_is_reported_under_its_name(
    bus: Bus, sim_clock: SimulatedClock, journal: Journal
) -> None:
    class Fragile(Actor):
        def __init__(self, bus: Bus, clock: Clock, *, name: str) -> None:
            super().__init__(bus, clock, name=name)
            self.subscribe(QuoteTick, self.on_quote)

        def on_quote(self, q: QuoteTick) -> None:
            raise ArithmeticError("division by zero spread")

    async with Fragile(bus, sim_clock, name="pricer"):
        seq = bus.publish(quote("1", "1"))
    failed = (await journaled(journal))[1]
    assert failed == HandlerFailed(
        START_NS,
        START_NS,
        "pricer.on_quote",
        "QuoteTick",
        seq,
        "ArithmeticError: division by zero spread",
    )


# -------------------------------------------------------------------------------- timers


async def test_given_a_timer_when_time_passes_then_journaled_timer_events_drive_the_handler(
    bus: Bus, sim_clock: SimulatedClock, journal: Journal
) -> None:
    # given: an actor whose every() timer was set in __init__
    async with Heartbeat(bus, sim_clock) as heart:
        assert heart.timer == "Heartbeat.beat"
        assert sim_clock.timer_names == ["Heartbeat.beat"]
        # when
        sim_clock.advance_to(START_NS + 150 * NS_PER_SECOND)
    # then: each deadline is a journaled TimerFired, answered right after it
    first, second = START_NS + NS_PER_MINUTE, START_NS + 2 * NS_PER_MINUTE
    assert await journaled(journal) == [
        TimerFired(first, first, "Heartbeat.beat"),
        DataRejected(first, first, "*", "out_of_order", "Heartbeat beat 1"),
        TimerFired(second, second, "Heartbeat.beat"),
        DataRejected(second, second, "*", "out_of_order", "Heartbeat beat 2"),
    ]
    assert sim_clock.timer_names == []


async def test_a_timer_handler_runs_when_its_event_is_dispatched_not_when_the_clock_fires(
    sim_clock: SimulatedClock,
) -> None:
    """What replay relies on: a clock that never fires, and a recorded TimerFired re-fed."""
    clock = SimulatedClock(START_NS, timers=False)
    bus = Bus(clock)
    heart = Heartbeat(bus, clock)
    clock.advance_to(START_NS + 10 * NS_PER_MINUTE)
    assert heart.beats == []
    recorded = TimerFired(START_NS + NS_PER_MINUTE, START_NS + NS_PER_MINUTE, "Heartbeat.beat")
    bus.republish(7, recorded)
    bus.republish(8, TimerFired(START_NS, START_NS, "Someone.else"))
    assert heart.beats == [recorded]


async def test_timers_are_aligned_and_named_per_actor(
    bus: Bus, sim_clock: SimulatedClock, journal: Journal
) -> None:
    hour = 60 * NS_PER_MINUTE
    grid = (START_NS // hour + 1) * hour
    fast = Heartbeat(bus, sim_clock, interval_ns=hour, start_ns=grid, name="fast")
    slow = Heartbeat(bus, sim_clock, interval_ns=2 * hour, start_ns=grid, name="slow")
    async with fast, slow:
        sim_clock.advance_to(grid + 4 * hour)
    assert [b.ts_event for b in fast.beats] == [grid + k * hour for k in range(5)]
    assert [b.ts_event for b in slow.beats] == [grid + k * 2 * hour for k in range(3)]
    assert {b.name for b in fast.beats} == {"fast.beat"}
    timers = [m for m in await journaled(journal) if isinstance(m, TimerFired)]
    assert [t.name for t in timers[:3]] == ["fast.beat", "slow.beat", "fast.beat"]


# ----------------------------------------------------------------------------- lifecycle


class Worker(Actor):
    """Background work, lifecycle hooks and a timer, all observable."""

    def __init__(self, bus: Bus, clock: Clock) -> None:
        super().__init__(bus, clock)
        self.calls: list[str] = []
        self.release = asyncio.Event()

    async def on_start(self) -> None:
        self.calls.append("start")
        self.every("poll", NS_PER_MINUTE, lambda event: self.calls.append("poll"))

    async def on_stop(self) -> None:
        self.calls.append("stop")

    async def wait_then_publish(self) -> None:
        await self.release.wait()
        now = self.now()
        self.publish(DataRejected(now, now, "*", "out_of_order", "background work finished"))

    async def forever(self) -> None:
        await asyncio.Event().wait()


async def test_spawn_and_idle_wait_for_background_work(
    bus: Bus, sim_clock: SimulatedClock, journal: Journal
) -> None:
    async with Worker(bus, sim_clock) as worker:
        task = worker.spawn(worker.wait_then_publish(), name="job")
        assert task.get_name() == "Worker:job"
        idle = asyncio.create_task(worker.idle())
        await asyncio.sleep(0)
        assert not idle.done()
        worker.release.set()
        await idle
        assert task.done()
        assert [type(m).__name__ for m in await journaled(journal)] == ["DataRejected"]


async def test_stop_cancels_timers_and_tasks(bus: Bus, sim_clock: SimulatedClock) -> None:
    worker = Worker(bus, sim_clock)
    await worker.start()
    await worker.start()  # idempotent
    task = worker.spawn(worker.forever(), name="forever")
    sim_clock.advance_to(START_NS + NS_PER_MINUTE)
    assert worker.calls == ["start", "poll"]
    assert sim_clock.timer_names == ["Worker.poll"]

    await worker.stop()
    await worker.stop()  # idempotent

    assert task.cancelled()
    assert sim_clock.timer_names == []
    sim_clock.advance_to(START_NS + 60 * NS_PER_MINUTE)
    assert worker.calls == ["start", "poll", "stop"]
    await asyncio.wait_for(worker.idle(), timeout=5)  # nothing left to wait for


async def test_async_context_manager_stops_on_error(bus: Bus, sim_clock: SimulatedClock) -> None:
    worker = Worker(bus, sim_clock)
    tasks: list[asyncio.Task[None]] = []

    async def fail_inside() -> None:
        async with worker as entered:
            assert entered is worker
            tasks.append(worker.spawn(worker.forever()))
            raise LookupError("boom")

    with pytest.raises(LookupError):
        await fail_inside()
    (task,) = tasks
    assert worker.calls == ["start", "stop"]
    assert task.cancelled()
    assert sim_clock.timer_names == []


async def test_a_failing_on_stop_still_cancels_timers_and_tasks(
    bus: Bus, sim_clock: SimulatedClock
) -> None:
    class BadStop(Worker):
        async def on_stop(self) -> None:
            raise RuntimeError("cannot stop cleanly")

    worker = BadStop(bus, sim_clock)
    await worker.start()
    task = worker.spawn(worker.forever())
    with pytest.raises(RuntimeError, match="cannot stop cleanly"):
        await worker.stop()
    assert sim_clock.timer_names == []
    assert task.cancelled()


async def test_a_failing_background_task_is_logged_and_isolated(
    bus: Bus, sim_clock: SimulatedClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def fail() -> None:
        raise ValueError("feed lost")

    async with Worker(bus, sim_clock) as worker:
        other = worker.spawn(worker.wait_then_publish())
        with caplog.at_level(logging.ERROR, logger="ballast.Worker"):
            failing = worker.spawn(fail(), name="feed")
            await eventually(failing.done)
        assert "background task Worker:feed failed" in caplog.text
        assert "feed lost" in caplog.text
        assert not other.done()
        worker.release.set()
        await worker.idle()
        assert other.done()
        assert not other.cancelled()


async def test_a_recorder_sees_what_the_bus_dispatches(sim_clock: SimulatedClock) -> None:
    bus = Bus(sim_clock)
    async with Recorder(bus, sim_clock) as recorder, QuoteGuard(bus, sim_clock):
        bus.publish(quote("2", "1"))
    assert [type(m).__name__ for m in recorder.seen] == ["QuoteTick", "DataRejected"]
