"""Resource faults on the journal (issue 14): disk full, read-only, a slow disk.

The faults are real: the kernel refuses the writes (:mod:`tests.support.journal_faults`), on real
SQLite files in tmp_path; nothing of Ballast's is patched.

Journal level: a refused write is a state (``writable`` False, the observers told, ``sync``
raises at once, the records stay pending in order and are retried), the records reach the disk
in order once it accepts them again; a journal that cannot keep up holds its producers at the
high-water mark and drops nothing.

Live (engine + ccxt + the loopback exchange): while the journal cannot be written the engine
sends no order, says why (log, metrics, ``/readyz``), keeps what it committed; when the disk
accepts writes again it writes what waited, trades again, and at the end no fill is lost
against the exchange, the journal is gap-free, the book equals the exchange's and the journal
replays with ``--verify``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sqlite3
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import SimulatedClock
from ballast.engine.kernel.errors import JournalUnwritableError
from ballast.engine.kernel.events import JournalWriteChanged, OrderRejected, OrderVetoed, QuoteTick
from ballast.engine.kernel.journal import Journal, JournalReader
from tests.support.cli import ballast
from tests.support.journal_faults import (
    PipedEngine,
    disk_filled,
    engine_piped,
    file_size_limit,
    immutable,
    immutable_supported,
    journal_files,
    mount_supported,
    small_disk,
)
from tests.support.live_exchange import (
    Exchange,
    ExchangeState,
    JournalView,
    book_differences,
    caught_up,
    count_in,
    duplicate_orders,
    exchange_serving,
    journal_problems,
    last_seq,
    live_config,
    lost_fills,
    read_journal,
    until_settled,
)
from tests.support.paper_config import Overrides
from tests.support.reliability import full, record, size
from tests.support.waiting import eventually

pytestmark = pytest.mark.reliability

START_NS = 1_700_000_000_000_000_000


def quote(i: int) -> QuoteTick:
    ts = START_NS + i * 1_000
    return QuoteTick(
        ts,
        ts + 7,
        symbol="BTC/USDT",
        bid=Decimal("37000.10") + i,
        ask=Decimal("37000.20") + i,
        bid_size=Decimal("0.5"),
        ask_size=Decimal("0.7"),
    )


def on_disk(path: Path) -> list[int]:
    """The seqs the file holds, read by another connection (what survives this process)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return [int(r[0]) for r in conn.execute("SELECT seq FROM events ORDER BY seq")]


def require_immutable(folder: Path) -> None:
    reason = immutable_supported(folder)
    if reason is not None:
        pytest.skip(reason)


async def test_a_journal_made_read_only_is_a_state_and_writes_everything_in_order_after(
    tmp_path: Path,
) -> None:
    require_immutable(tmp_path)
    path = tmp_path / "journal.db"
    rounds = size(1, 5)
    states: list[str | None] = []
    async with Journal(path, flush_interval_s=0.01) as journal:
        journal.state_observers.append(states.append)
        n = 0
        for _ in range(rounds):
            for _ in range(20):
                n += 1
                journal.append(quote(n))
            await journal.sync()
            durable = journal.durable_seq
            with immutable(*journal_files(path)):
                for _ in range(30):
                    n += 1
                    journal.append(quote(n))
                with pytest.raises(JournalUnwritableError, match=str(path)):
                    await journal.sync()
                assert not journal.writable
                assert journal.write_error is not None
                assert "SQLITE_IOERR" in journal.write_error, journal.write_error
                failures = journal.write_failures
                await eventually(
                    lambda seen=failures: journal.write_failures > seen,  # type: ignore[misc]
                    within_s=3,
                    what="a retry",
                )
                n += 1
                journal.append(quote(n))  # appends go on while unwritable
                assert on_disk(path)[-1] == durable  # what was committed stays, nothing more
                with pytest.raises(JournalUnwritableError):
                    await journal.sync()  # at once, while unwritable
            await eventually(lambda: journal.writable, within_s=3, what="writable again")
            assert journal.durable_seq == journal.last_seq == n
        assert states == [states[0], None] * rounds
        assert states[0] is not None
        assert "SQLITE_IOERR" in states[0]
    assert on_disk(path) == list(range(1, n + 1))
    async with JournalReader(path) as reader:
        stats = await reader.stats()
        messages = await reader.messages()
    lost = n - len(messages)
    record(
        "journal_faults_unit",
        **{"faults.journal_readonly": rounds},
        journal_gaps=0 if stats.gap_free else 1 + lost,
    )
    assert stats.gap_free
    assert messages == [quote(i) for i in range(1, n + 1)]


async def test_a_journal_closed_while_unwritable_says_what_it_could_not_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopping while the disk still refuses: close tries once more, closes the file, keeps what
    was committed and raises, with the records it could not write logged (a restart resumes from
    the last written record and catches up with the venue)."""
    require_immutable(tmp_path)
    path = tmp_path / "journal.db"
    journal = await Journal(path, flush_interval_s=0.01).open()
    for i in range(1, 6):
        journal.append(quote(i))
    await journal.sync()
    with immutable(*journal_files(path)):
        for i in range(6, 9):
            journal.append(quote(i))
        with pytest.raises(JournalUnwritableError, match=str(path)):
            await journal.close()
    assert on_disk(path) == [1, 2, 3, 4, 5]
    assert "closed with 3 record(s) not written" in caplog.text
    async with Journal(path) as again:  # the next run appends after the last written record
        assert again.last_seq == 5


async def test_an_unwritable_journal_holds_producers_at_the_high_water_mark_and_drops_nothing(
    tmp_path: Path,
) -> None:
    """The slowest journal, one whose commits do not go through, back-pressures the producers
    (``Bus.send`` waits while the backlog is above ``high_water``); when it writes again every
    record reaches the disk, in order."""
    require_immutable(tmp_path)
    path = tmp_path / "journal.db"
    high_water = 50
    total = size(400, 4000)
    async with Journal(path, flush_interval_s=0.01, high_water=high_water) as journal:
        bus = Bus(SimulatedClock(START_NS), journal)
        sent = 0
        max_backlog = 0

        async def produce() -> None:
            nonlocal sent, max_backlog
            for i in range(1, total + 1):
                await bus.send(quote(i))
                sent = i
                max_backlog = max(max_backlog, journal.backlog)

        with immutable(*journal_files(path)):
            producer = asyncio.create_task(produce())
            await eventually(lambda: journal.backlog > high_water, within_s=3)
            held_at = sent
            await asyncio.sleep(0.3)
            assert sent == held_at, "the producer went on while the journal could not write"
            assert not producer.done()
            assert not journal.writable
        started = time.monotonic()
        await asyncio.wait_for(producer, 10)
        drained_s = time.monotonic() - started
        await journal.sync()
    assert max_backlog <= high_water + 1
    assert on_disk(path) == list(range(1, total + 1))
    assert drained_s < 10


# ------------------------------------------------------------------------------ live


STEP_S = 0.05
STALL_S = 0.5
"""How long each fault lasts at least once the engine noticed it (the market moves on
meanwhile); until an intent met one in the run, a fault lasts until one does (at most REFUSAL_S
more)."""
REFUSAL_S = 10.0
VETO_LABEL = '"journal_unwritable"'

TRADING: Overrides = {
    "paper": {"start": "2022-05-01"},  # the falls of May and June 2022: it trades often
    "bands": {"abs_pp": 0.5},
    "execution": {"cooldown_s": 0.3, "check_interval_s": 0.3},
    "risk": {"stale_after_s": 2, "drawdown_limit": 0.9},
}
WEIGHT_LIMIT = 24_000
QUIET_S = 1.0


def after_catch_up(journal: JournalView, state: ExchangeState) -> list[str]:
    return [
        *journal_problems(journal),
        *duplicate_orders(journal, state),
        *lost_fills(journal, state),
    ]


def at_rest(journal: JournalView, state: ExchangeState) -> list[str]:
    open_orders = [f"open at the exchange: {o.client_order_id}" for o in state.open_orders()]
    return [*open_orders, *after_catch_up(journal, state), *book_differences(journal, state)]


def not_durable(journal: JournalView, state: ExchangeState) -> list[str]:
    """Orders of ours at the exchange whose SubmitOrder the journal on disk lacks: sent before
    they were durable."""
    durable = {s.client_order_id for s in journal.submits}
    return [o.client_order_id for o in state.ours() if o.client_order_id not in durable]


def tracebacks(text: str) -> list[str]:
    """The last line of each traceback in a log (what was raised)."""
    lines = text.splitlines()
    found = []
    for index, line in enumerate(lines):
        if line.startswith("Traceback"):
            rest = (x for x in lines[index + 1 :] if not x.startswith((" ", "\t")))
            found.append(next(rest, line).strip())
    return found


async def metric(engine: PipedEngine, name: str, label: str = "") -> float:
    """The value of the first sample of ``name`` whose labels contain ``label``."""
    text = (await engine.get("/metrics")).body.decode()
    pattern = rf"^{name}(?:{{[^}}]*{re.escape(label)}[^}}]*}})? (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    assert found is not None, f"no {name} {label} in /metrics"
    return float(found.group(1))


async def refused_while(engine: PipedEngine, before: float, *, within_s: float) -> bool:
    """Whether an intent was vetoed ``journal_unwritable`` (the engine wanted to trade and sent
    nothing) within ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        if await metric(engine, "ballast_vetoes_total", VETO_LABEL) > before:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)


async def until_metric(engine: PipedEngine, name: str, value: float, *, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while await metric(engine, name) != value:
        assert engine.proc.returncode is None, f"engine exited: {engine.stderr()}"
        assert time.monotonic() < deadline, f"{name} not {value} within {within_s} s"
        await asyncio.sleep(0.05)


FULL_KINDS = ("size_limit", "enospc")
"""The disk refuses the journal's growth: the engine's file size limit lowered under it (EFBIG,
any Linux), a full ext4 image (ENOSPC, SQLite's SQLITE_FULL; where mounting is permitted)."""


@dataclass
class Counts:
    full: int = 0
    readonly: int = 0
    refused: int = 0
    kills: int = 0
    """Faults during which an intent was seen vetoed ``journal_unwritable`` (the first fault
    waits for one; the later ones only look)."""


def fault_of(
    kind: str, engine: PipedEngine, journal_path: Path
) -> contextlib.AbstractContextManager[object]:
    if kind == "size_limit":
        return file_size_limit(engine.proc.pid, 1)
    if kind == "enospc":
        return disk_filled(journal_path.parent)
    return immutable(*journal_files(journal_path))


async def one_fault(
    kind: str, engine: PipedEngine, exchange: Exchange, journal_path: Path, counts: Counts
) -> None:
    """The fault on, until the engine says so; the market runs STALL_S more (and until an intent
    met the fault, at most REFUSAL_S); nothing sent that is
    not durable, nothing committed lost; the fault off; the engine writes again."""
    before = await read_journal(journal_path)
    with fault_of(kind, engine, journal_path):
        await until_metric(engine, "ballast_journal_writable", 0, within_s=10)
        vetoed = await metric(engine, "ballast_vetoes_total", VETO_LABEL)
        await asyncio.sleep(STALL_S)
        # until an intent met a fault once in the run (the later ones last STALL_S)
        if await refused_while(engine, vetoed, within_s=0 if counts.refused else REFUSAL_S):
            counts.refused += 1
        ready = await engine.get("/readyz")
        assert ready.status == 503, ready.body
        assert b"journal_unwritable" in ready.body, ready.body
        state = await exchange.state()
        during = await read_journal(journal_path)
        assert not_durable(during, state) == []
        committed = before.messages
        assert during.messages[: len(committed)] == committed  # what was committed stays
        assert engine.proc.returncode is None, engine.stderr()
    assert engine.logged(f"journal {journal_path} cannot be written"), engine.stderr()
    await until_metric(engine, "ballast_journal_writable", 1, within_s=10)
    assert await metric(engine, "ballast_journal_write_failures_total") >= 1
    if kind in FULL_KINDS:
        counts.full += 1
    else:
        counts.readonly += 1


async def test_a_live_engine_whose_journal_fills_up_or_turns_read_only_sends_nothing_and_resumes(
    tmp_path: Path,
) -> None:
    """Disk full (a file size limit everywhere; a full loop-mounted ext4 where permitted) and
    read-only (``chattr +i``, where permitted), each ``size(1, 3)`` times during one live run; at
    full size (``make reliability``) the engine is then killed during one more disk-full fault
    and restarted (the fills it could not journal come back from the exchange). Skipped at its
    end (after everything else passed) when a kind could not be tested here."""
    mount_skip = mount_supported(tmp_path)
    with contextlib.ExitStack() as stack:
        folder = tmp_path
        if mount_skip is None:
            folder = stack.enter_context(small_disk(tmp_path / "disk", 64))
        readonly_skip = immutable_supported(folder)
        kinds = ["size_limit"]
        kinds += ["enospc"] if mount_skip is None else []
        kinds += ["readonly"] if readonly_skip is None else []
        counts = await live_run(tmp_path, folder / "journal.db", kinds * size(1, 3), kill=full())
    skipped = [reason for reason in (mount_skip, readonly_skip) if reason is not None]
    if skipped:
        pytest.skip(f"tested {counts}; not tested here: {'; '.join(skipped)}")


async def quiet(journal_path: Path, exchange: Exchange) -> JournalView:
    """At rest (no open order, the book equal to the exchange's) and no order sent for QUIET_S:
    a trade vetoed during a fault may still be retried on the paused market (the rebalancer's
    timer), and one sent while the engine stops gets its last account statement on the next
    start only."""
    deadline = time.monotonic() + 30
    while True:
        rested, _ = await until_settled(journal_path, exchange, at_rest, within_s=30, what="rest")
        sent = count_in(journal_path, "SubmitOrder")
        await asyncio.sleep(QUIET_S)
        if count_in(journal_path, "SubmitOrder") == sent:
            return rested
        assert time.monotonic() < deadline, "still trading 30 s after the market paused"


async def rest_and_stop(
    engine: PipedEngine, exchange: Exchange, journal_path: Path
) -> tuple[int, JournalView]:
    """Pause the market, wait until the engine rests, stop it: its exit code, the journal then."""
    await exchange.pause()
    rested = await quiet(journal_path, exchange)
    return await engine.stop(signal.SIGTERM), rested


async def killed_while_unwritable(engine: PipedEngine, counts: Counts) -> None:
    """A disk-full fault, an intent refused (or STALL_S), then SIGKILL: what waited in memory is
    lost with the process (never acknowledged: no order went out on it)."""
    vetoed = await metric(engine, "ballast_vetoes_total", VETO_LABEL)
    with file_size_limit(engine.proc.pid, 1):
        await until_metric(engine, "ballast_journal_writable", 0, within_s=10)
        await refused_while(engine, vetoed, within_s=STALL_S)
        engine.kill()
        assert await engine.proc.wait() == -signal.SIGKILL
    counts.full += 1
    counts.kills += 1


async def live_run(
    tmp_path: Path, journal_path: Path, plan: list[str], *, kill: bool = False
) -> Counts:
    """The faults of ``plan`` one after the other in one live run; with ``kill``, then one more
    (disk full) during which the engine is killed, and a restart that must catch up with the
    exchange (no fill lost) and rest with the same book."""
    counts = Counts()
    served = live_config(tmp_path, name="exchange.toml", sections=TRADING)
    async with exchange_serving(
        tmp_path, served, step_s=STEP_S, weight_limit=WEIGHT_LIMIT
    ) as exchange:
        config = live_config(
            tmp_path,
            rest_url=exchange.rest_url,
            ws_url=exchange.ws_url,
            sections={
                **TRADING,
                "metrics": {"enabled": True},
                "journal": {"path": str(journal_path)},
            },
        )
        logs: list[str] = []
        async with engine_piped(tmp_path, config, "--metrics-address=127.0.0.1:0") as engine:
            await engine.served()
            await caught_up(journal_path, 0, engine)
            await eventually(
                lambda: count_in(journal_path, "OrderFilled") > 0, within_s=30, what="a fill"
            )
            for kind in plan:
                await one_fault(kind, engine, exchange, journal_path, counts)
                await until_settled(
                    journal_path, exchange, after_catch_up, within_s=20, what=f"after {kind}"
                )
                # trading re-opens: an order sent (durable first) after the fault
                since = last_seq(journal_path)
                await eventually(
                    lambda since=since: count_in(journal_path, "SubmitOrder", since_seq=since) > 0,  # type: ignore[misc]
                    within_s=20,
                    what=f"an order after {kind}",
                )
            if kill:
                await killed_while_unwritable(engine, counts)
            else:
                exit_code, rested = await rest_and_stop(engine, exchange, journal_path)
        logs.append(engine.stderr())
        if kill:  # restarted on a journal that lacks what the killed engine could not write
            before = last_seq(journal_path)
            args = ("--metrics-address=127.0.0.1:0",)
            async with engine_piped(tmp_path, config, *args, log="engine-2.log") as engine:
                await engine.served()
                await caught_up(journal_path, before, engine)
                await until_settled(
                    journal_path, exchange, after_catch_up, within_s=20, what="the restart"
                )
                exit_code, rested = await rest_and_stop(engine, exchange, journal_path)
            logs.append(engine.stderr())
        crashes = int(exit_code != 0) + sum(len(tracebacks(log)) for log in logs)
        state = await exchange.state()
    journal = await read_journal(journal_path)
    refused = [
        *(v for v in journal.of(OrderVetoed) if v.reason == "journal_unwritable"),
        *(r for r in journal.of(OrderRejected) if r.reason.startswith("journal:")),
    ]
    changes = journal.of(JournalWriteChanged)
    verified = ballast("replay", "--verify", str(journal_path), cwd=tmp_path, timeout_s=300)
    record(
        "journal_faults",
        **{"faults.journal_full": counts.full, "faults.journal_readonly": counts.readonly},
        lost_fills=len(lost_fills(journal, state)),
        journal_gaps=0 if journal.gap_free else 1,
        duplicate_orders=len(duplicate_orders(journal, state)),
        crashes=crashes,
        kills=counts.kills,
    )
    assert exit_code == 0, logs[-1]
    assert crashes == 0, [tracebacks(log) for log in logs]
    after_rest = [
        f"{type(m).__name__} {getattr(m, 'client_order_id', '')} {getattr(m, 'reason', '')}"
        for m in journal.messages[len(rested.messages) :]
        if type(m).__name__.startswith(("Order", "Submit", "Intent", "Rebalance"))
    ]
    assert at_rest(journal, state) == [], after_rest
    assert [c.writable for c in changes] == [False, True] * len(plan)
    assert counts.refused >= 1, "no intent met the unwritable journal: the faults tested nothing"
    assert refused, "no refusal in the journal"
    assert verified.returncode == 0, verified.stdout + verified.stderr
    return counts
