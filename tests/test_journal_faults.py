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
import sqlite3
import time
from decimal import Decimal
from pathlib import Path

import pytest

from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import SimulatedClock
from ballast.engine.kernel.errors import JournalUnwritableError
from ballast.engine.kernel.events import QuoteTick
from ballast.engine.kernel.journal import Journal, JournalReader
from tests.support.journal_faults import immutable, immutable_supported, journal_files
from tests.support.reliability import record, size
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
        assert (await reader.stats()).gap_free
        messages = await reader.messages()
    assert messages == [quote(i) for i in range(1, n + 1)]
    record("journal_faults_unit", **{"faults.journal_readonly": rounds}, journal_gaps=0)


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
