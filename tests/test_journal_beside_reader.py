"""A journal read by another process while it is written (``ballast journal``, a monitoring script,
a test waiting for a record) keeps every record the writer commits visible and durable.

Regression: the writer's fsync opened and closed its own descriptors of the database file and its
WAL, and closing a descriptor drops every POSIX lock the process holds on the file, SQLite's
SHARED lock included. The next reader to close took itself for the last connection, checkpointed
and deleted the WAL, and the writer went on committing into the unlinked file: its records were
invisible to every other process, and lost had it been killed (found by the live kill campaign,
tests/test_live_kill.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ballast.engine.kernel.events import TimerFired
from ballast.engine.kernel.journal import Journal

ROOT = Path(__file__).resolve().parents[1]
READ = """
import asyncio, sys
from ballast.engine.kernel.journal import JournalReader
async def main():
    async with JournalReader(sys.argv[1]) as reader:
        print(await reader.last_seq())
asyncio.run(main())
"""


def last_seq_elsewhere(path: Path) -> int:
    """The last seq a JournalReader in another process sees (it opens, reads, closes)."""
    done = subprocess.run(
        [sys.executable, "-c", READ, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout)


async def test_records_stay_visible_to_other_processes_after_a_reader_came_and_went(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.db"
    async with Journal(path, kind="live") as journal:
        for n in range(1, 4):
            seq = journal.append(TimerFired(n, n, f"t{n}"))
            await journal.sync(seq)  # durable: the WAL was fsynced
            assert last_seq_elsewhere(path) == n
        assert Path(f"{path}-wal").exists()
    assert last_seq_elsewhere(path) == 3
