"""Where a backtest writes its journal, and what it may replace there.

A backtest writes a new journal: the same run must give the same file, so an earlier file at its
path is removed first. Which files that may be:

- none, or a **backtest journal** (``session_kind = backtest`` in ``ballast_meta``, written when
  a backtest creates the file; in a journal from before that key, sessions that all ran on the
  simulated clock): the output of an earlier backtest, replaced without asking, so the same
  command can be run again;
- anything else (a text file, another program's SQLite file, a Ballast journal without sessions,
  an unreadable file) only with ``force`` (``ballast backtest --force``);
- never a journal holding a **paper or live session** (any other ``session_kind``, or a session
  on the live clock), not even with ``force``: a session that traded in real time cannot be run
  again.

All of it happens under the journal's writer lock (:mod:`ballast.engine.kernel.journal_lock`): a
journal that a running engine is writing is refused before it is even looked at.

By default a backtest writes ``var/backtest/journal.db`` (the other strategies of the run beside
it), never the ``[journal] path`` of the config, which is the paper or live engine's.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ballast.engine.kernel.errors import (
    JournalCorruptError,
    JournalError,
    JournalReplaceError,
    JournalSchemaError,
)
from ballast.engine.kernel.events import SessionStarted
from ballast.engine.kernel.journal import KIND_KEY
from ballast.engine.kernel.journal_lock import JournalLock
from ballast.engine.kernel.upcast import RecordDecoder

DEFAULT_PATH: Final = Path("var/backtest/journal.db")
KIND: Final = "backtest"
_SQLITE_HEADER: Final = b"SQLite format 3\x00"


@dataclass(frozen=True)
class Found:
    """What is at a journal path: ``kind`` is ``missing``, ``backtest``, ``other`` or the kind of
    session it holds (``paper``, ``live``, ...); ``what`` says it in words."""

    kind: str
    what: str


def inspect(path: Path) -> Found:
    """What is at ``path``, read without changing it."""
    if not path.exists():
        return Found("missing", "nothing")
    if path.is_dir():
        raise JournalError(f"{path}: is a folder; a journal is a file (e.g. {path / 'journal.db'})")
    with path.open("rb") as file:
        head = file.read(len(_SQLITE_HEADER))
    if head != _SQLITE_HEADER:
        return Found("other", "an empty file" if not head else "not a SQLite file")
    try:
        return _inspect_sqlite(path)
    except (sqlite3.Error, JournalCorruptError, JournalSchemaError) as exc:
        return Found("other", f"an unreadable SQLite file: {exc}")


def _inspect_sqlite(path: Path) -> Found:
    # An ordinary connection that only reads: a read-only one would leave -wal and -shm files
    # beside a WAL journal, and none sets a journal mode (a foreign file stays as it is).
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"ballast_meta", "events"} <= tables:
            return Found("other", "a SQLite file that is not a Ballast journal")
        meta = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM ballast_meta")}
        if (kind := meta.get(KIND_KEY)) is not None:
            return Found(kind, f"a {kind} journal")
        starts = conn.execute("SELECT seq, payload FROM events WHERE type = 'SessionStarted'")
        decoder = RecordDecoder(meta, path)
        clocks = {_clock(decoder, int(seq), bytes(payload)) for seq, payload in starts}
    if not clocks:
        return Found("other", "a Ballast journal without a session")
    if clocks == {"SimulatedClock"}:
        return Found(KIND, "a backtest journal")
    return Found("paper", "a journal of a session on the live clock")


def _clock(decoder: RecordDecoder, seq: int, payload: bytes) -> str:
    message = decoder.decode(payload, seq)
    return message.clock if isinstance(message, SessionStarted) else "?"


def check_replaceable(path: Path, *, force: bool) -> Found:
    """Raise :class:`JournalReplaceError` unless a backtest may replace what is at ``path``."""
    found = inspect(path)
    if found.kind in ("missing", KIND):
        return found
    if found.kind != "other":
        raise JournalReplaceError(
            f"{path}: holds a {found.kind} session; a backtest never replaces it (not even with "
            "--force): give --journal another file"
        )
    if not force:
        raise JournalReplaceError(
            f"{path}: exists and is not a backtest journal ({found.what}); a backtest replaces it "
            "only with --force: pass --force, or give --journal another file"
        )
    return found


def ensure_replaceable(path: Path, *, force: bool) -> None:
    """:func:`check_replaceable` under the writer lock (a journal in use is refused): the check a
    run of several backtests makes for every journal before the first one starts."""
    with JournalLock(path):
        check_replaceable(path, force=force)


def clear(path: Path, *, force: bool) -> None:
    """Remove what is at ``path`` if a backtest may replace it (the caller holds the lock)."""
    check_replaceable(path, force=force)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
