"""A live journal's WAL checkpoints run off the order path (issue 11: the quote → order path).

SQLite's automatic checkpoint ran inside whichever COMMIT pushed the WAL past 1000 pages: at times
an order's durable write on the event loop's thread, which then copied the WAL into the database
file and fsynced it (milliseconds, the loop blocked). A journal with ``durable_sync`` now turns it
off and checkpoints from its flusher on a second connection. A checkpoint is seen in the database
file: in WAL mode nothing else writes it, and an append-only journal makes it grow."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

from ballast.engine.kernel.events import TimerFired
from ballast.engine.kernel.journal import CHECKPOINT_STUCK, Journal, JournalReader, wal_frames

NAME = "x" * 1500
"""A record of about one and a half KB: a few frames per commit."""


def db_size(path: Path) -> int:
    return path.stat().st_size


def frames(path: Path) -> tuple[int, int]:
    """(frames in the WAL, frames checkpointed) from the ``-shm`` header."""
    fd = os.open(f"{path}-shm", os.O_RDONLY)
    try:
        found = wal_frames(fd)
    finally:
        os.close(fd)
    assert found is not None
    return found


async def test_a_durable_write_on_the_loop_never_runs_a_checkpoint(tmp_path: Path) -> None:
    # The flusher never wakes: every write is an order's durable write on the loop's thread, and
    # they alone take the WAL well past SQLite's 1000-page threshold.
    path = tmp_path / "journal.db"
    grew: list[int] = []
    async with Journal(
        path, kind="live", durable_on_loop=True, flush_interval_s=3600, batch_size=1 << 30
    ) as journal:
        n = 0
        for _ in range(400):  # about 1600 frames
            for _ in range(3):
                n += 1
                seq = journal.append(TimerFired(n, n, NAME))
            before = db_size(path)
            await journal.sync(seq)
            if db_size(path) != before:
                grew.append(seq)
        assert grew == []  # today: the commit that crossed 1000 frames checkpointed
        assert frames(path)[0] > 1000  # past SQLite's threshold, never checkpointed
        assert journal.checkpoints == 0
    async with JournalReader(path) as reader:
        assert await reader.last_seq() == n


async def test_the_flusher_checkpoints_and_restarts_the_wal_past_the_threshold(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.db"
    pages = 64
    seen: list[int] = []
    async with Journal(
        path, kind="live", flush_interval_s=0.005, batch_size=10, checkpoint_pages=pages
    ) as j:
        for n in range(1, 3001):
            j.append(TimerFired(n, n, NAME))  # the flusher group-commits every 10
            if n % 10 == 0:
                await asyncio.sleep(0.001)
                seen.append(frames(path)[0])
        assert j.checkpoints >= 2
        assert max(seen) > pages  # it did pass the threshold ...
        assert max(seen) < 2 * pages  # ... and was checkpointed, then restarted by a group commit
    async with JournalReader(path) as reader:
        assert [r.seq async for r in reader.records()] == list(range(1, 3001))


async def test_durable_writes_alone_get_their_wal_checkpointed(tmp_path: Path) -> None:
    # No group commit at all: the flusher checks the WAL at each flush interval too.
    path = tmp_path / "journal.db"
    pages = 64
    async with Journal(
        path, kind="live", durable_on_loop=True, flush_interval_s=0.005, checkpoint_pages=pages
    ) as journal:
        for n in range(1, 601):
            await journal.sync(journal.append(TimerFired(n, n, NAME)))
            if n % 20 == 0:
                await asyncio.sleep(0.01)
        assert journal.checkpoints >= 2
        assert frames(path)[0] < CHECKPOINT_STUCK * pages
        assert db_size(path) > 600 * len(NAME)  # the records are in the database file


async def test_a_reader_holding_a_snapshot_defers_the_restart_until_it_lets_go(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.db"
    pages = 64
    async with Journal(path, kind="live", flush_interval_s=0.005, checkpoint_pages=pages) as j:
        await j.sync(j.append(TimerFired(0, 0, NAME)))
        reader = sqlite3.connect(path, isolation_level=None)
        try:
            reader.execute("BEGIN")
            assert reader.execute("SELECT COUNT(*) FROM events").fetchone() == (1,)
            for n in range(1, 1001):
                j.append(TimerFired(n, n, NAME))
                if n % 10 == 0:
                    await j.commit()
                    await asyncio.sleep(0)
            # the frames the snapshot needs stay: the WAL cannot restart
            assert frames(path)[0] > CHECKPOINT_STUCK * pages
            assert reader.execute("SELECT COUNT(*) FROM events").fetchone() == (1,)
            reader.execute("COMMIT")
        finally:
            reader.close()
        for n in range(1001, 1101):  # writing on: checkpointed, then restarted
            j.append(TimerFired(n, n, NAME))
            await j.commit()
            await asyncio.sleep(0.005)
        assert frames(path)[0] < CHECKPOINT_STUCK * pages
    async with JournalReader(path) as reader2:
        assert await reader2.last_seq() == 1101


async def test_a_backtest_journal_keeps_sqlites_automatic_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    async with Journal(path, durable_sync=False) as journal:
        assert journal.checkpoint_pages is None
        for n in range(1, 4001):
            journal.append(TimerFired(n, n, NAME))
        await journal.commit()
        assert journal.checkpoints == 0
        assert db_size(path) > 1000 * 4096


def test_wal_frames_reads_the_counts_sqlite_reports(tmp_path: Path) -> None:
    # The -shm header offsets against SQLite's own answer: PRAGMA wal_checkpoint returns
    # (busy, frames in the WAL, frames checkpointed).
    path = tmp_path / "plain.db"
    writer = sqlite3.connect(path, isolation_level=None)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("CREATE TABLE t (x BLOB)")
        for _ in range(50):
            writer.execute("INSERT INTO t VALUES (?)", (os.urandom(3000),))
        reader = sqlite3.connect(path, isolation_level=None)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT COUNT(*) FROM t").fetchone()  # holds its snapshot
            for _ in range(20):
                writer.execute("INSERT INTO t VALUES (?)", (os.urandom(3000),))
            before = frames(path)
            busy, log, copied = other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            assert (busy, before[0]) == (0, log)
            assert 0 < copied < log  # stopped at the reader's snapshot
            assert frames(path) == (log, copied)
            reader.execute("COMMIT")
        finally:
            reader.close()
        busy, log, copied = other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert frames(path) == (log, copied) == (log, log)
    finally:
        other.close()
        writer.close()
