"""How a journal writes in bulk (issue 13): many rows per INSERT statement, and a backtest's
journal building its type index when it is closed instead of row by row."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from ballast.engine.kernel.events import Bar, Message, OrderAccepted, TimerFired
from ballast.engine.kernel.journal import Journal, JournalReader
from tests.conftest import START_NS

IDLE = 3600.0  # the flusher never commits on its own within a test


def mixed(n: int) -> list[Message]:
    """``n`` messages of three types, each with its own times."""
    out: list[Message] = []
    for i in range(n):
        ts = START_NS + i * 1_000
        if i % 3 == 0:
            p = Decimal(100 + i)
            out.append(Bar(ts, ts + 1, "BTC/USDT", 3600, p, p + 1, p - 1, p, Decimal(i)))
        elif i % 3 == 1:
            out.append(TimerFired(ts, ts + 2, f"timer.{i}"))
        else:
            out.append(OrderAccepted(ts, ts + 3, f"cid-{i}", f"v-{i}", "BTC/USDT"))
    return out


def rows(path: Path) -> list[tuple[int, str, int, int]]:
    with sqlite3.connect(path) as conn:
        got = conn.execute("SELECT seq, type, ts_event, ts_init FROM events ORDER BY seq")
        return [(int(s), str(t), int(e), int(i)) for s, t, e, i in got]


def has_type_index(path: Path) -> bool:
    with sqlite3.connect(path) as conn:
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'events_by_type'"
        ).fetchall()
    return bool(found)


@pytest.mark.parametrize("sizes", [[1], [127, 1], [128], [129, 128], [300, 5, 640]])
async def test_batches_of_any_size_are_written_whole_and_in_order(
    tmp_path: Path, sizes: list[int]
) -> None:
    """Batches across the rows-per-statement boundary (128): every record once, in seq order,
    with its columns (type, times) equal to its message's."""
    path = tmp_path / "j.db"
    messages = mixed(sum(sizes))
    async with Journal(path, flush_interval_s=IDLE, batch_size=10**9) as journal:
        done = 0
        for size in sizes:
            for m in messages[done : done + size]:
                journal.append(m)
            done += size
            assert await journal.commit() == done
    assert rows(path) == [
        (seq, type(m).__name__, m.ts_event, m.ts_init) for seq, m in enumerate(messages, 1)
    ]
    async with JournalReader(path) as reader:
        assert await reader.messages() == messages
        timers = await reader.messages(types={"TimerFired"})
    assert timers == [m for m in messages if isinstance(m, TimerFired)]


async def test_a_backtest_journal_builds_its_type_index_when_closed(tmp_path: Path) -> None:
    path = tmp_path / "bt.db"
    messages = mixed(500)
    journal = await Journal(path, flush_interval_s=IDLE, durable_sync=False).open()
    for m in messages[:400]:
        journal.append(m)
    await journal.commit()
    assert not has_type_index(path)  # not kept up to date row by row while it runs
    async with JournalReader(path) as reader:  # read by type meanwhile, without it
        bars = await reader.messages(types={"Bar"})
    assert bars == [m for m in messages[:400] if isinstance(m, Bar)]
    for m in messages[400:]:
        journal.append(m)
    await journal.close()
    assert has_type_index(path)
    assert journal.durable_seq == 500
    async with JournalReader(path) as reader:
        assert await reader.messages(types={"OrderAccepted"}) == [
            m for m in messages if isinstance(m, OrderAccepted)
        ]
        assert (await reader.stats()).count == 500


async def test_a_live_journal_has_its_type_index_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "live.db"
    async with Journal(path, flush_interval_s=IDLE) as journal:
        assert has_type_index(path)
        journal.append(mixed(1)[0])


async def test_a_journal_cut_before_its_index_gets_it_from_the_next_writer(
    tmp_path: Path,
) -> None:
    """A backtest journal cut before its close has no index; a writer that keeps the index up to
    date builds it when it opens the file, and appends after the last record."""
    path = tmp_path / "cut.db"
    messages = mixed(10)
    async with Journal(path, flush_interval_s=IDLE, durable_sync=False) as journal:
        for m in messages[:6]:
            journal.append(m)
    with sqlite3.connect(path) as conn:  # as if the process had died before its close
        conn.execute("DROP INDEX events_by_type")
    assert not has_type_index(path)
    async with Journal(path, flush_interval_s=IDLE) as journal:
        assert has_type_index(path)
        assert journal.last_seq == 6
        for m in messages[6:]:
            journal.append(m)
    async with JournalReader(path) as reader:
        assert await reader.messages() == messages
