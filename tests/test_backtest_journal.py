"""What a backtest may replace at its journal path (engine/backtest_journal.py), on real files."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from ballast.engine.app.backtest_journal import (
    check_replaceable,
    clear,
    ensure_replaceable,
    inspect,
)
from ballast.engine.kernel.errors import JournalError, JournalLockedError, JournalReplaceError
from ballast.engine.kernel.events import SessionStarted
from ballast.engine.kernel.journal import Journal, JournalReader
from tests.conftest import START_NS


async def older_journal(path: Path, *clocks: str) -> None:
    """A journal as written before session kinds: sessions on the given clocks, no kind."""
    async with Journal(path) as journal:
        for n, clock in enumerate(clocks):
            ts = START_NS + n
            journal.append(SessionStarted(ts, ts, f"s{n}", "0.1.0", clock, "{}"))


async def count(path: Path) -> int:
    async with JournalReader(path) as reader:
        return (await reader.stats()).count


async def test_an_older_journal_of_simulated_sessions_is_replaced_as_a_backtests(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    await older_journal(path, "SimulatedClock", "SimulatedClock")
    assert inspect(path).kind == "backtest"
    clear(path, force=False)
    assert not path.exists()
    assert inspect(path).kind == "missing"


@pytest.mark.parametrize("force", [False, True])
async def test_a_session_on_the_live_clock_is_never_replaced(tmp_path: Path, force: bool) -> None:
    path = tmp_path / "j.db"
    await older_journal(path, "SimulatedClock", "LiveClock")
    with pytest.raises(JournalReplaceError, match="holds a paper session; a backtest never"):
        clear(path, force=force)
    assert await count(path) == 2


@pytest.mark.parametrize("kind", ["paper", "live"])
async def test_a_journal_marked_paper_or_live_is_never_replaced(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "j.db"
    async with Journal(path, kind=kind):
        pass  # even without a record yet
    with pytest.raises(JournalReplaceError, match=f"holds a {kind} session"):
        check_replaceable(path, force=True)
    assert path.exists()


async def test_a_journal_without_a_session_is_replaced_only_with_force(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    await older_journal(path)
    assert inspect(path).what == "a Ballast journal without a session"
    with pytest.raises(JournalReplaceError, match="pass --force"):
        clear(path, force=False)
    assert path.exists()
    clear(path, force=True)
    assert not path.exists()


def test_a_file_sqlite_cannot_read_is_replaced_only_with_force(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
    data = bytearray(path.read_bytes())
    data[100:300] = b"\xff" * 200  # the schema page's header
    path.write_bytes(bytes(data))
    found = inspect(path)
    assert (found.kind, found.what.split(":")[0]) == ("other", "an unreadable SQLite file")
    with pytest.raises(JournalReplaceError, match="--force"):
        check_replaceable(path, force=False)
    assert path.read_bytes() == bytes(data)


def test_an_empty_file_and_a_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    assert inspect(empty).what == "an empty file"
    with pytest.raises(JournalReplaceError):
        check_replaceable(empty, force=False)
    with pytest.raises(JournalError, match="is a folder"):
        check_replaceable(tmp_path, force=True)


async def test_a_journal_being_written_is_refused_before_it_is_looked_at(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path, kind="backtest"):
        with pytest.raises(JournalLockedError, match="in use by another writer"):
            ensure_replaceable(path, force=True)
    ensure_replaceable(path, force=False)  # a backtest's own journal, once closed
