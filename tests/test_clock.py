"""Clocks: one interface, two implementations. Timers fire in deadline order (ties by creation
order) with their deadline, stay on their grid, stop, cancel; the simulated clock moves only when
told, the live one runs timers on the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from ballast.engine.kernel.clock import (
    NS_PER_HOUR,
    NS_PER_MINUTE,
    NS_PER_SECOND,
    Clock,
    LiveClock,
    SimulatedClock,
)
from tests.conftest import START_NS
from tests.support.waiting import eventually

MS = 1_000_000

Fired = list[tuple[str, int]]


def recorder(
    fired: Fired, clock: Clock | None = None, now: list[int] | None = None
) -> Callable[[str, int], None]:
    def callback(name: str, deadline: int) -> None:
        fired.append((name, deadline))
        if clock is not None and now is not None:
            now.append(clock.now_ns())

    return callback


def utc_ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * NS_PER_SECOND


# ------------------------------------------------------------------ the shared contract


class Driver:
    """Runs a clock until a condition holds: the simulated clock by advancing it from deadline to
    deadline, the live clock by letting the event loop run."""

    def __init__(self, clock: Clock, step_ns: int) -> None:
        self.clock = clock
        self.step_ns = step_ns

    async def run_until(self, condition: Callable[[], bool]) -> None:
        clock = self.clock
        if isinstance(clock, SimulatedClock):
            for _ in range(10_000):
                if condition():
                    return
                nxt = clock.next_deadline_ns()
                assert nxt is not None, "no timer left to fire"
                clock.advance_to(nxt)
            raise AssertionError("condition not met after 10000 deadlines")
        await eventually(condition)


@pytest.fixture(params=["simulated", "live"])
async def driver(request: pytest.FixtureRequest) -> AsyncIterator[Driver]:
    if request.param == "simulated":
        clock: Clock = SimulatedClock(START_NS)
        step = NS_PER_HOUR
    else:
        clock = LiveClock()
        step = 2 * MS
    yield Driver(clock, step)
    clock.cancel_all()


async def test_contract_every_fires_on_its_grid_with_the_deadline(driver: Driver) -> None:
    clock, step = driver.clock, driver.step_ns
    fired: Fired = []
    start = clock.now_ns() + step
    clock.every("grid", step, recorder(fired), start_ns=start)
    assert clock.timer_names == ["grid"]
    await driver.run_until(lambda: len(fired) >= 4)
    assert fired[:4] == [("grid", start + k * step) for k in range(4)]


async def test_contract_every_defaults_to_one_interval_from_now(driver: Driver) -> None:
    clock, step = driver.clock, driver.step_ns
    fired: Fired = []
    before = clock.now_ns()
    clock.every("tick", step, recorder(fired))
    after = clock.now_ns()
    await driver.run_until(lambda: len(fired) >= 2)
    first = fired[0][1]
    assert before + step <= first <= after + step
    assert fired[1][1] == first + step


async def test_contract_deadline_order_is_not_creation_order(driver: Driver) -> None:
    clock, step = driver.clock, driver.step_ns
    fired: Fired = []
    now = clock.now_ns()
    clock.at("third", now + 3 * step, recorder(fired))
    clock.at("first", now + step, recorder(fired))
    clock.at("second", now + 2 * step, recorder(fired))
    await driver.run_until(lambda: len(fired) == 3)
    assert [name for name, _ in fired] == ["first", "second", "third"]


async def test_contract_at_fires_once(driver: Driver) -> None:
    clock, step = driver.clock, driver.step_ns
    fired: Fired = []
    sentinel: Fired = []
    deadline = clock.now_ns() + step
    clock.at("once", deadline, recorder(fired))
    clock.at("sentinel", deadline + 3 * step, recorder(sentinel))
    await driver.run_until(lambda: bool(sentinel))
    assert fired == [("once", deadline)]
    assert clock.timer_names == []


async def test_contract_stop_ns_is_the_last_deadline(driver: Driver) -> None:
    clock, step = driver.clock, driver.step_ns
    fired: Fired = []
    start = clock.now_ns() + step
    clock.every("bounded", step, recorder(fired), start_ns=start, stop_ns=start + 2 * step)
    clock.at("later", start + 100 * step, recorder([]))  # keeps the simulated clock going
    await driver.run_until(lambda: "bounded" not in clock.timer_names)
    assert fired == [("bounded", start), ("bounded", start + step), ("bounded", start + 2 * step)]


async def test_contract_cancel_stops_a_repeating_timer(driver: Driver) -> None:
    clock, step = driver.clock, driver.step_ns
    fired: Fired = []
    clock.every("rep", step, recorder(fired))
    await driver.run_until(lambda: len(fired) >= 2)
    clock.cancel("rep")
    count = len(fired)
    assert clock.timer_names == []
    # had it survived, it would fire (several times) before a sentinel 4 intervals away
    sentinel: Fired = []
    clock.at("sentinel", clock.now_ns() + 4 * step, recorder(sentinel))
    await driver.run_until(lambda: bool(sentinel))
    assert len(fired) == count


async def test_contract_due_by_tells_whether_a_timer_up_to_then_has_yet_to_fire(
    driver: Driver,
) -> None:
    clock, step = driver.clock, driver.step_ns
    fired: Fired = []
    start = clock.now_ns()
    clock.at("once", start + step, recorder(fired))
    clock.every("rep", 500 * step, recorder(fired), start_ns=start + 2 * step)
    assert not clock.due_by(start)
    assert clock.due_by(start + step)
    await driver.run_until(lambda: len(fired) == 2)
    assert not clock.due_by(start + 2 * step)  # the repeating one is armed again, further on
    assert clock.due_by(start + 502 * step)
    clock.cancel("rep")
    assert not clock.due_by(start + 1000 * step)


async def test_contract_a_callback_may_cancel_its_own_timer(driver: Driver) -> None:
    clock, step = driver.clock, driver.step_ns
    fired: Fired = []

    def once_then_cancel(name: str, deadline: int) -> None:
        fired.append((name, deadline))
        clock.cancel(name)

    clock.every("self", step, once_then_cancel)
    await driver.run_until(lambda: bool(fired))
    assert clock.timer_names == []
    sentinel: Fired = []
    clock.at("sentinel", clock.now_ns() + 5 * step, recorder(sentinel))
    await driver.run_until(lambda: bool(sentinel))
    assert len(fired) == 1


async def test_contract_names_validation_and_cancel_all(driver: Driver) -> None:
    clock, step = driver.clock, driver.step_ns
    noop = recorder([])
    with pytest.raises(ValueError, match="interval must be positive"):
        clock.every("zero", 0, noop)
    with pytest.raises(ValueError, match="interval must be positive"):
        clock.every("negative", -step, noop)
    clock.every("b", step, noop)
    clock.at("a", clock.now_ns() + 10 * step, noop)
    with pytest.raises(ValueError, match="already exists"):
        clock.every("b", step, noop)
    with pytest.raises(ValueError, match="already exists"):
        clock.at("a", clock.now_ns(), noop)
    assert clock.timer_names == ["a", "b"]
    clock.cancel("missing")  # unknown names are ignored
    clock.cancel_all()
    assert clock.timer_names == []
    clock.every("b", step, noop)  # a cancelled name can be reused
    assert clock.timer_names == ["b"]


async def test_contract_time_is_integer_epoch_nanoseconds(driver: Driver) -> None:
    now = driver.clock.now_ns()
    assert isinstance(now, int)
    assert now > utc_ns("2020-01-01T00:00:00")
    assert driver.clock.kind == type(driver.clock).__name__


# ------------------------------------------------------------------ simulated clock


def test_simulated_timers_fire_in_deadline_order_ties_by_creation(
    sim_clock: SimulatedClock,
) -> None:
    fired: Fired = []
    cb = recorder(fired)
    t = START_NS
    sim_clock.at("late", t + 30, cb)
    sim_clock.at("tie-1", t + 10, cb)
    sim_clock.every("tie-2", 10, cb, start_ns=t + 10)
    sim_clock.at("tie-3", t + 10, cb)
    sim_clock.at("early", t + 5, cb)
    assert sim_clock.advance_to(t + 30) == 1 + 3 + 1 + 2  # tie-2 also fires at +20 and +30
    assert fired == [
        ("early", t + 5),
        ("tie-1", t + 10),
        ("tie-2", t + 10),
        ("tie-3", t + 10),
        ("tie-2", t + 20),
        ("late", t + 30),  # created before tie-2 was
        ("tie-2", t + 30),
    ]


def test_simulated_repeating_timers_keep_their_creation_order_on_ties(
    sim_clock: SimulatedClock,
) -> None:
    """An 8 h and a 24 h timer on the same grid: at every common deadline the one created first
    fires first, however often either has fired before."""
    fired: Fired = []
    start = utc_ns("2024-01-02T00:00:00")
    sim_clock.every("funding", 8 * NS_PER_HOUR, recorder(fired), start_ns=start)
    sim_clock.every("daily", 24 * NS_PER_HOUR, recorder(fired), start_ns=start)
    sim_clock.advance_to(start + 3 * 24 * NS_PER_HOUR)
    common = [(name, at) for name, at in fired if (at - start) % (24 * NS_PER_HOUR) == 0]
    assert common == [
        (name, start + day * 24 * NS_PER_HOUR) for day in range(4) for name in ("funding", "daily")
    ]


def test_simulated_funding_grid_at_00_08_16_utc() -> None:
    clock = SimulatedClock(utc_ns("2024-03-01T05:13:27"))
    fired: Fired = []
    first = utc_ns("2024-03-01T08:00:00")
    clock.every("funding", 8 * NS_PER_HOUR, recorder(fired), start_ns=first)
    clock.advance_to(utc_ns("2024-03-03T23:59:59"))
    hours = [datetime.fromtimestamp(at // NS_PER_SECOND, tz=UTC) for _, at in fired]
    assert [h.strftime("%d %H:%M:%S") for h in hours] == [
        "01 08:00:00",
        "01 16:00:00",
        "02 00:00:00",
        "02 08:00:00",
        "02 16:00:00",
        "03 00:00:00",
        "03 08:00:00",
        "03 16:00:00",
    ]


def test_simulated_advance_sets_the_time_to_each_deadline_first(
    sim_clock: SimulatedClock,
) -> None:
    fired: Fired = []
    seen_now: list[int] = []
    sim_clock.every("t", 7, recorder(fired, sim_clock, seen_now))
    target = START_NS + 30
    assert sim_clock.advance_to(target) == 4
    assert seen_now == [at for _, at in fired] == [START_NS + 7 * k for k in range(1, 5)]
    assert sim_clock.now_ns() == target
    assert sim_clock.next_deadline_ns() == START_NS + 35


def test_simulated_time_moves_only_forward(sim_clock: SimulatedClock) -> None:
    sim_clock.set_time(START_NS + 100)
    sim_clock.set_time(START_NS + 50)
    assert sim_clock.now_ns() == START_NS + 100
    assert sim_clock.advance_to(START_NS) == 0
    assert sim_clock.now_ns() == START_NS + 100


def test_simulated_set_time_fires_nothing(sim_clock: SimulatedClock) -> None:
    fired: Fired = []
    sim_clock.at("x", START_NS + 10, recorder(fired))
    sim_clock.set_time(START_NS + 100)
    assert fired == []
    # an overdue deadline fires at the next advance, with its own deadline; time stays put
    seen_now: list[int] = []
    sim_clock.cancel("x")
    sim_clock.at("x", START_NS + 10, recorder(fired, sim_clock, seen_now))
    assert sim_clock.advance_to(START_NS + 100) == 1
    assert fired == [("x", START_NS + 10)]
    assert seen_now == [START_NS + 100]


def test_simulated_timer_armed_by_a_callback_fires_in_the_same_advance(
    sim_clock: SimulatedClock,
) -> None:
    fired: Fired = []
    cb = recorder(fired)

    def chain(name: str, deadline: int) -> None:
        fired.append((name, deadline))
        sim_clock.at("follow-up", deadline + 5, cb)
        sim_clock.at("same-time", deadline, cb)
        sim_clock.at(name, deadline + 100, cb)  # a fired one-shot's name is free again

    sim_clock.at("start", START_NS + 10, chain)
    sim_clock.advance_to(START_NS + 50)
    assert fired == [
        ("start", START_NS + 10),
        ("same-time", START_NS + 10),
        ("follow-up", START_NS + 15),
    ]
    assert sim_clock.timer_names == ["start"]


def test_simulated_cancel_from_a_callback_at_the_same_deadline(
    sim_clock: SimulatedClock,
) -> None:
    fired: Fired = []

    def cancel_other(name: str, deadline: int) -> None:
        fired.append((name, deadline))
        sim_clock.cancel("victim")

    sim_clock.at("killer", START_NS + 10, cancel_other)
    sim_clock.every("victim", 10, recorder(fired), start_ns=START_NS + 10)
    assert sim_clock.advance_to(START_NS + 100) == 1
    assert fired == [("killer", START_NS + 10)]
    assert sim_clock.next_deadline_ns() is None


def test_simulated_clock_without_timers_never_fires() -> None:
    clock = SimulatedClock(START_NS, timers=False)
    fired: Fired = []
    clock.every("e", 10, recorder(fired), start_ns=START_NS)
    clock.at("a", START_NS + 5, recorder(fired))
    assert clock.timer_names == ["a", "e"]  # accepted, as a replayed actor expects
    assert clock.next_deadline_ns() is None
    assert clock.advance_to(START_NS + 10_000) == 0
    assert fired == []
    assert clock.now_ns() == START_NS + 10_000
    clock.cancel("e")
    assert clock.timer_names == ["a"]


# ------------------------------------------------------------------ live clock


async def test_live_clock_fires_repeatedly_on_the_running_loop() -> None:
    clock = LiveClock()
    loop = asyncio.get_running_loop()
    fired: Fired = []
    loops: list[asyncio.AbstractEventLoop] = []

    def on_tick(name: str, deadline: int) -> None:
        fired.append((name, deadline))
        loops.append(asyncio.get_running_loop())

    clock.every("tick", MS, on_tick)
    await eventually(lambda: len(fired) >= 5, what="five ticks")
    clock.cancel("tick")
    assert all(running is loop for running in loops)
    deadlines = [at for _, at in fired]
    assert deadlines == [deadlines[0] + k * MS for k in range(len(deadlines))]
    assert all(clock.now_ns() >= at for at in deadlines)  # never early


async def test_live_clock_cancel_stops_it() -> None:
    clock = LiveClock()
    fired: Fired = []
    clock.every("tick", MS, recorder(fired))
    await eventually(lambda: len(fired) >= 2)
    clock.cancel("tick")
    count = len(fired)
    sentinel: Fired = []
    clock.at("sentinel", clock.now_ns() + 10 * MS, recorder(sentinel))
    await eventually(lambda: bool(sentinel))
    assert len(fired) == count
    assert clock.timer_names == []


async def test_live_clock_overdue_deadline_fires_at_once_with_its_deadline() -> None:
    clock = LiveClock()
    fired: Fired = []
    past = clock.now_ns() - NS_PER_MINUTE
    clock.at("overdue", past, recorder(fired))
    await eventually(lambda: bool(fired))
    assert fired == [("overdue", past)]


def test_live_clock_never_fires_before_its_deadline_on_uvloop() -> None:
    """uvloop's timers have millisecond resolution and run on the monotonic clock while deadlines
    are wall-clock epoch ns: a timer may come due a little early, and must then wait the rest."""
    import uvloop

    async def scenario() -> list[tuple[int, int]]:
        clock = LiveClock()
        seen: list[tuple[int, int]] = []
        start = clock.now_ns()
        for k in range(200):
            clock.at(f"t{k}", start + k * 137_000, lambda _, at: seen.append((at, clock.now_ns())))
        await eventually(lambda: len(seen) == 200, what="every timer fired")
        return seen

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        seen = runner.run(scenario())
    early = [(deadline, now) for deadline, now in seen if now < deadline]
    assert early == []
