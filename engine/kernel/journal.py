"""The journal: every event and command, in one global order, in one SQLite file (WAL).

Writing (:class:`Journal`):
- ``append`` assigns the next ``seq`` and buffers the encoded record. Market data is committed in
  groups (by count or after ``flush_interval_s``), with ``synchronous=NORMAL``: a committed group
  survives a killed process.
- ``sync(seq)`` commits everything pending and fsyncs the write-ahead log, so the records up to
  ``seq`` survive a power cut too. The engine calls it before an order intent is handed to a venue
  and before a fill is acknowledged. A simulation's journal (``durable_sync=False``: a backtest)
  skips that wait: ``sync(seq)`` returns at once and ``close`` commits and fsyncs everything. A
  backtest that dies is run again from its start into a fresh file, so waiting for the disk at
  each order and fill (a fifth of a backtest's time) would protect nothing.
- Back-pressure: ``wait_writable`` blocks a producer while more than ``high_water`` records are
  waiting for the disk. Nothing is ever dropped.
- A write the disk refuses for want of a resource (disk full, a read-only file or file system, a
  file size limit, an I/O error: :func:`resource_fault`) is a state, not the end: the journal is
  *unwritable* (:attr:`Journal.writable`, :attr:`Journal.write_failures`, the
  ``state_observers`` are told, an error is logged naming the file and what the OS or SQLite
  said); the batch goes back to the head of the pending records, appends go on buffering (up to
  ``high_water``, then producers wait), ``sync`` raises :class:`JournalUnwritableError` at once
  (nothing waiting on it may act: the router sends no order it could not make durable), and the
  writer retries with backoff (up to :data:`RETRY_MAX_S`). When a write succeeds the pending
  records reach the disk in their order, gap-free, and the observers are told. Any other failure
  (a damaged file, a file moved away) fails the journal for good: appends then raise.
- Checkpoints (copying the WAL into the database file, so the WAL is reused and stays small): a
  journal with ``durable_sync`` turns SQLite's automatic checkpoint off (it ran inside whichever
  COMMIT pushed the WAL past 1000 pages: at times an order's durable write on the loop's thread,
  milliseconds of copying and fsyncing on the quote → order path). Its flusher instead starts a
  PASSIVE checkpoint on a second connection, on that connection's own thread, once the WAL holds
  ``checkpoint_pages`` frames: writers are not blocked by it (they append to the WAL meanwhile).
  Committed records are in the WAL until then, so a crash before or during a checkpoint loses
  nothing. Should durable writes keep the WAL from being fully copied (and restarted) until it
  holds :data:`CHECKPOINT_STUCK` times that, the checkpoint is followed by a second one for the
  frames that came in meanwhile, with the writer's lock held (writes wait for it): the bound on
  its growth. A reader holding a snapshot (an export beside a live
  run) keeps the frames after it from being copied, and the WAL from restarting, until it moves
  on: the WAL grows meanwhile, as it did with SQLite's automatic checkpoint.

Owning: a journal has one writer. ``open`` takes an OS-level lock
(:mod:`ballast.engine.kernel.journal_lock`) held until ``close``; a second writer is refused with
the holder's pid. Readers are not blocked. Before appending to an existing file, the writer checks
it: SQLite's ``quick_check`` and the decoding of the last records. A damaged journal is refused
(:class:`JournalCorruptError`, pointing at ``ballast journal export --skip-damaged`` to salvage what
still reads, which
:meth:`JournalReader.readable_records` does); nothing is appended to it. A writer that
created the file and fails before its first record removes the file again.

What wrote a journal: ``ballast_meta`` key ``session_kind`` (``backtest``, ``paper`` or ``live``),
set when the file is created by a writer given a ``kind``, or on the first such writer of an older
file. A writer of one kind never appends to a journal of another.

Reading (:class:`JournalReader`): by seq range, time range and type, in seq order.

A journal written by a newer schema is refused; a journal cut by a killed process opens at its
last committed seq. Records written by an older version of the events are decoded through the
upcasters of :mod:`ballast.engine.kernel.upcast` (a writer of a newer version records in
``ballast_meta`` the seq its own records start from); records of a newer version are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sqlite3
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final, NoReturn, Self, cast

import aiosqlite
import msgspec

from ballast.engine import __version__
from ballast.engine.kernel.codec import DECODER, ENCODER, TAGS
from ballast.engine.kernel.codes import code_checks, code_problem
from ballast.engine.kernel.errors import (
    JournalClosedError,
    JournalCorruptError,
    JournalError,
    JournalSchemaError,
    JournalUnwritableError,
)
from ballast.engine.kernel.events import Message
from ballast.engine.kernel.journal_lock import JournalLock
from ballast.engine.kernel.upcast import UPCASTERS, VERSION_KEY, RecordDecoder, Upcasters

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 1

KIND_KEY: Final = "session_kind"
"""``ballast_meta`` key: what kind of session the journal holds (one of :data:`SESSION_KINDS`)."""
SESSION_KINDS: Final = ("backtest", "paper", "live")
TAIL_CHECKED: Final = 64
"""How many of the last records a writer decodes before appending to an existing journal."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS ballast_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq      INTEGER PRIMARY KEY,
    type     TEXT    NOT NULL,
    ts_event INTEGER NOT NULL,
    ts_init  INTEGER NOT NULL,
    payload  BLOB    NOT NULL
);
"""
_INDEX: Final = "CREATE INDEX IF NOT EXISTS events_by_type ON events (type, seq)"
"""Reading by type. A backtest's journal gets it when it is closed (``index_at_close``): built
once from the finished table it cost a fifth of what keeping it up to date row by row did."""
_INDEX_NAME: Final = "events_by_type"
_INSERT: Final = "INSERT INTO events (seq, type, ts_event, ts_init, payload) VALUES (?, ?, ?, ?, ?)"

RETRY_MAX_S: Final = 1.0
"""The longest wait between two attempts of an unwritable journal (the first after
``flush_interval_s``, then doubling)."""

_RESOURCE_CODES: Final = frozenset({3, 5, 6, 8, 10, 13, 14})
"""SQLite primary result codes of a write refused for want of a resource that may come back:
SQLITE_PERM, BUSY, LOCKED, READONLY, IOERR, FULL, CANTOPEN."""
_READONLY_DBMOVED: Final = 8 | (4 << 8)
"""SQLITE_READONLY_DBMOVED: the file was moved or deleted under the writer (never comes back)."""

Row = tuple[int, str, int, int, bytes]
_ROW_WIDTH: Final = 5
"""Fields of a :data:`Row` (the parameters of one row of an insert)."""
StoredRow = tuple[int, bytes]

_CODE_CHECKS: Final = {tag: code_checks(cls) for cls, tag in TAGS.items()}
"""The code fields of every message class, by wire tag (checked before a record is written)."""
_APPENDABLE: Final = {cls: (tag, _CODE_CHECKS[tag]) for cls, tag in TAGS.items()}
"""Every message class of the codec's union: its wire tag and code fields (one lookup per
append)."""

_ROWS_PER_INSERT: Final = 128
"""Rows per ``INSERT ... VALUES (...), (...), ...`` statement of a batch (the rest go through
``executemany``). One statement of many rows is one step of SQLite's: the connection's thread
gives the GIL back to the event loop's once per statement, not once per row (each a wake-up of
both threads), and SQLite parses and plans once per statement. 128 × 5 parameters stay under
SQLite's oldest limit on host parameters (999)."""
_INSERT_MANY: Final = (
    "INSERT INTO events (seq, type, ts_event, ts_init, payload) VALUES "
    + ", ".join(["(?, ?, ?, ?, ?)"] * _ROWS_PER_INSERT)
)


class Record(msgspec.Struct, frozen=True, gc=False):
    """One journal entry: its ``seq`` and its message. The type name and timestamps are the
    message's own (``append`` writes those columns from it, so they are equal by construction and
    need not be fetched: the columns serve SQL filtering).

    A ``gc=False`` struct built positionally in C (``map(Record, seqs, messages)``): replay
    creates one per record, and a tuple subclass cost five times as much and was GC-tracked.
    """

    seq: int
    message: Message

    @property
    def type(self) -> str:
        """The message's wire tag (the ``type`` column)."""
        return TAGS[type(self.message)]

    @property
    def ts_event(self) -> int:
        return self.message.ts_event

    @property
    def ts_init(self) -> int:
        return self.message.ts_init


def _decode_rows(rows: Sequence[StoredRow], decoder: RecordDecoder) -> list[Record]:
    """The records of fetched (seq, payload) rows, decoded chunk-wise (the replay hot path) when
    they were all written at the current events version.

    Otherwise, or if any payload fails, the chunk is decoded row by row (through the upcasters
    where older), so the records before a bad one are kept and it raises JournalCorruptError
    naming its seq in its place (the caller yields the good ones first: see
    :meth:`JournalReader.chunks`).
    """
    seqs, payloads = zip(*rows, strict=True)
    if seqs[0] >= decoder.current_from:
        try:
            return list(map(Record, seqs, map(DECODER.decode, payloads)))
        except Exception:
            pass  # decoded again below, one by one
    good: list[Record] = []
    for s, p in rows:
        try:
            good.append(Record(s, decoder.decode(p, s)))
        except JournalCorruptError as exc:
            raise _PartialChunk(good, exc) from exc
    return good


class _PartialChunk(Exception):
    """A chunk whose decoding stopped at a corrupt record: the good records before it, then the
    error to raise once they have been handed out."""

    def __init__(self, good: list[Record], error: JournalCorruptError) -> None:
        super().__init__(str(error))
        self.good = good
        self.error = error


@dataclass(frozen=True)
class JournalStats:
    path: str
    schema_version: int
    created_by: str
    count: int
    first_seq: int | None
    last_seq: int | None
    first_ts_event: int | None
    last_ts_event: int | None
    size_bytes: int
    by_type: dict[str, int] = field(default_factory=dict)

    @property
    def gap_free(self) -> bool:
        if self.first_seq is None or self.last_seq is None:
            return self.count == 0
        return self.count == self.last_seq - self.first_seq + 1


def _refuse_folder(path: Path) -> None:
    if path.is_dir():
        raise JournalError(f"{path}: is a folder; a journal is a file (e.g. {path / 'journal.db'})")


async def _connect(path: Path, *, create: bool) -> aiosqlite.Connection:
    if not create and not await asyncio.to_thread(path.exists):
        raise JournalError(f"{path}: no such journal")
    _refuse_folder(path)
    if create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(f"{path}: cannot create the journal's folder: {exc}") from exc
    # check_same_thread=False: a durable write may run on the event loop's thread (Journal's
    # ``durable_on_loop``); every write is serialised by the writer's lock either way.
    connecting = aiosqlite.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn = await connecting
    except sqlite3.Error as exc:
        # aiosqlite stops its worker thread without waiting for it: wait, or the thread later
        # reports to an event loop that is closed by then (tracebacks after our error).
        await asyncio.to_thread(connecting._thread.join, 5)
        raise JournalError(f"{path}: cannot open journal: {exc}") from exc
    try:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute("PRAGMA busy_timeout=5000")
    except sqlite3.Error as exc:
        # Not a SQLite file (or unreadable): close, or the connection's thread outlives us.
        with contextlib.suppress(sqlite3.Error):
            await conn.close()
        raise JournalError(f"{path}: cannot open journal: {exc}") from exc
    return conn


async def _check_schema(
    conn: aiosqlite.Connection,
    path: Path,
    *,
    create: bool,
    kind: str | None = None,
    index: bool = True,
) -> dict[str, str]:
    """Create the schema in an empty file (with ``kind`` as its session kind; without ``index``,
    the type index is left for later), or check the stored version. Returns the meta table."""
    try:
        async with conn.execute("SELECT name FROM sqlite_master WHERE type='table'") as cur:
            tables = {str(r[0]) for r in await cur.fetchall()}
        if not tables and create:
            # One transaction: a process killed while creating the file leaves an empty file
            # (created again on the next open) or a complete schema, never tables without meta.
            await conn.executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}{_INDEX + ';' if index else ''}")
            now = str(time.time_ns())
            await conn.executemany(
                "INSERT INTO ballast_meta (key, value) VALUES (?, ?)",
                [
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("created_by", f"ballast {__version__}"),
                    ("created_ns", now),
                    *([(KIND_KEY, kind)] if kind is not None else []),
                ],
            )
            await conn.execute("COMMIT")
            tables = {"ballast_meta", "events"}
        if "ballast_meta" not in tables or "events" not in tables:
            raise JournalError(f"{path}: not a Ballast journal (tables found: {sorted(tables)})")
        async with conn.execute("SELECT key, value FROM ballast_meta") as cur:
            meta = {str(k): str(v) for k, v in await cur.fetchall()}
    except sqlite3.Error as exc:
        raise JournalError(f"{path}: not a readable Ballast journal: {exc}") from exc
    version = int(meta.get("schema_version", "0"))
    if version > SCHEMA_VERSION:
        raise JournalSchemaError(
            f"{path}: journal schema version {version} was written by a newer Ballast "
            f"({meta.get('created_by', '?')}); this build reads versions up to {SCHEMA_VERSION}. "
            "Upgrade Ballast to read it."
        )
    if version < 1:
        raise JournalSchemaError(f"{path}: journal has no valid schema version ({version})")
    return meta


async def _last_seq(conn: aiosqlite.Connection) -> int:
    async with conn.execute("SELECT MAX(seq) FROM events") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def damaged(path: Path, detail: str) -> JournalCorruptError:
    """The error for a journal SQLite or the decoder finds damaged, with how to salvage it."""
    return JournalCorruptError(
        f"{path}: the journal is damaged ({detail}); nothing is appended to a damaged journal: "
        f"`ballast journal export {path} --skip-damaged -o FILE` saves the records that still "
        "read, then start a new journal"
    )


async def _check_integrity(conn: aiosqlite.Connection, path: Path, decoder: RecordDecoder) -> None:
    """SQLite's quick_check, then the last records decode: else :func:`damaged`."""
    try:
        verdict = await conn.execute_fetchall("PRAGMA quick_check")
        tail = await conn.execute_fetchall(
            f"SELECT seq, payload FROM events ORDER BY seq DESC LIMIT {TAIL_CHECKED}"
        )
    except sqlite3.Error as exc:
        raise damaged(path, str(exc)) from exc
    found = " ".join("; ".join(str(row[0]) for row in verdict).split()) or "no answer"
    if found != "ok":
        raise damaged(path, f"quick_check: {found}")
    for seq, payload in tail:
        try:
            decoder.decode(payload, seq)
        except JournalCorruptError as exc:
            raise damaged(path, str(exc)) from exc


def _remove(path: Path) -> None:
    """The journal file and SQLite's companions."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def resource_fault(exc: BaseException) -> bool:
    """Whether a failed write is one the disk may accept later (full, read-only, a size limit,
    an I/O error, a lock) rather than a damaged or vanished file."""
    if isinstance(exc, OSError):
        return True
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return True
    return code != _READONLY_DBMOVED and code & 0xFF in _RESOURCE_CODES


def describe_fault(exc: BaseException) -> str:
    """What the OS or SQLite said, on one line: ``SQLITE_FULL: database or disk is full``,
    ``OSError [Errno 28] No space left on device``."""
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    return " ".join(f"{name}: {exc}".split())


def _insert(raw: sqlite3.Connection, batch: Sequence[Row]) -> None:
    """Insert ``batch`` (in a transaction the caller holds): :data:`_ROWS_PER_INSERT` rows per
    statement, the rest one by one."""
    whole = len(batch) - len(batch) % _ROWS_PER_INSERT
    if whole:
        flat = list(itertools.chain.from_iterable(itertools.islice(batch, whole)))
        width = _ROWS_PER_INSERT * _ROW_WIDTH
        for start in range(0, len(flat), width):
            raw.execute(_INSERT_MANY, flat[start : start + width])
    if whole < len(batch):
        raw.executemany(_INSERT, batch[whole:])


CHECKPOINT_PAGES: Final = 1000
"""WAL frames after which a journal with its own checkpointer checkpoints (SQLite's default for
its automatic checkpoint: about 4 MB of WAL)."""
CHECKPOINT_STUCK: Final = 4
"""A WAL of this many times ``checkpoint_pages`` frames is checkpointed, then what came in
during that checkpoint is copied with the writer's lock held (writes wait for that short one):
the bound on its growth, readers apart."""
_SHM_MX_FRAME: Final = 16
"""Byte offset of ``mxFrame`` (the last valid frame of the WAL) in the wal-index header, the start
of the ``-shm`` file; native byte order (https://www.sqlite.org/walformat.html, 2.2.1)."""
_SHM_BACKFILL: Final = 96
"""Byte offset of ``nBackfill`` (WAL frames already copied into the database file)."""
_SHM_READ: Final = _SHM_BACKFILL + 4


def wal_frames(fd: int) -> tuple[int, int] | None:
    """(frames in the WAL, frames of them checkpointed) from the wal-index header of the ``-shm``
    file open at ``fd``, or None if it cannot be read. Read without a lock: a hint (the
    checkpoint itself is SQLite's, under its own locks)."""
    try:
        head = os.pread(fd, _SHM_READ, 0)
    except OSError:
        return None
    if len(head) < _SHM_READ:
        return None
    order = sys.byteorder
    mx = int.from_bytes(head[_SHM_MX_FRAME : _SHM_MX_FRAME + 4], order)
    return mx, int.from_bytes(head[_SHM_BACKFILL:_SHM_READ], order)


_flush_data: Final = getattr(os, "fdatasync", os.fsync)
"""fdatasync where the OS has it (Linux), else fsync."""


def _retrieve_exception(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()


class Journal:
    """Append-only writer. Use as ``async with Journal(path) as journal: ...``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        batch_size: int = 4096,
        flush_interval_s: float = 0.05,
        high_water: int = 262_144,
        durable_sync: bool = True,
        durable_on_loop: bool = False,
        kind: str | None = None,
        lock: JournalLock | None = None,
        upcasters: Upcasters = UPCASTERS,
        index_at_close: bool | None = None,
        checkpoint_pages: int | None = None,
    ) -> None:
        if kind is not None and kind not in SESSION_KINDS:
            raise ValueError(f"journal kind {kind!r} is not one of {SESSION_KINDS}")
        self.path = Path(path)
        self.durable_sync = durable_sync
        """False: ``sync`` does not wait for the disk; only ``close`` does (module docstring)."""
        self.durable_on_loop = durable_on_loop
        """True: a durable write (``sync``: an order, a fill) runs on the event loop's own thread
        instead of being handed to SQLite's thread and back; group commits stay on that thread.
        The loop waits for the fsync that the order it carries waits for anyway, and saves the two
        thread wake-ups of the hand-over ([journal] durable_write = "loop")."""
        self.index_at_close = not durable_sync if index_at_close is None else index_at_close
        """True (by default a journal without ``durable_sync``: a backtest's): the type index of
        a journal this writer creates is built by ``close``, from the whole table, instead of
        being kept up to date row by row. A journal cut before its close reads the same without
        it (reading by type scans the table); a later writer without ``index_at_close`` builds
        it when it opens the file."""
        if checkpoint_pages is not None and checkpoint_pages < 0:
            raise ValueError(f"checkpoint_pages must be 0 or more, not {checkpoint_pages}")
        if checkpoint_pages is None:
            checkpoint_pages = CHECKPOINT_PAGES if durable_sync else 0
        self.checkpoint_pages = checkpoint_pages or None
        """Frames of WAL after which this journal's own checkpointer copies the WAL into the
        database file, off the write path (module docstring): by default 1000 (SQLite's) for a
        journal with ``durable_sync``. None (given 0; by default a backtest's journal, whose
        writes are all group commits on SQLite's thread anyway): SQLite's automatic checkpoint,
        in the commits."""
        self.kind = kind
        """The session kind this writer records (``KIND_KEY``); None: not recorded, not checked."""
        self._own_lock = lock is None
        self._writer_lock = lock if lock is not None else JournalLock(self.path)
        """Held from ``open`` to ``close``; one given by the caller is held and released by it."""
        self._created = False
        self.upcasters = upcasters
        """Its ``current`` version is the one this writer's records have."""
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.high_water = high_water
        self._conn: aiosqlite.Connection | None = None
        self._pending: list[Row] = []
        self._seq = 0
        self._committed_seq = 0
        self._durable_seq = 0
        self._opened_at_seq = 0
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._ckpt_conn: aiosqlite.Connection | None = None
        """The checkpointer's connection (``checkpoint_pages``): it only ever checkpoints."""
        self.checkpoints = 0
        """Checkpoints the checkpointer ran since open (``checkpoint_pages``)."""
        self.checkpoint_seconds_total = 0.0
        self._checkpoint_failing = False
        self._failure: BaseException | None = None
        self._dir_synced = False
        self._sync_fds: dict[str, int] = {}
        """Descriptors of the database file and its WAL kept open from the first fsync to close:
        closing a descriptor of a file drops every POSIX lock this process holds on it, SQLite's
        included. With its SHARED lock on the database file gone, a reader in another process
        that closes takes itself for the last connection, checkpoints and deletes the WAL, and
        this writer goes on committing into the unlinked file (invisible to readers, lost by a
        kill)."""
        self.meta: dict[str, str] = {}
        self.commits = 0
        self.commit_seconds_total = 0.0
        self.commit_observers: list[Callable[[float, int], None]] = []
        """Called after each commit with (its duration in seconds, its record count): metrics."""
        self.state_observers: list[Callable[[str | None], None]] = []
        """Called when the journal becomes unwritable (with what the OS or SQLite said) and when
        it is writable again (with None); module docstring."""
        self.write_failures = 0
        """Writes refused for want of a resource (each attempt counts), since open."""
        self._stall: BaseException | None = None
        self._stall_since = 0.0
        self._stall_failures = 0

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> Self:
        """Take the writer lock, open (or create) the file, check it, then start writing."""
        _refuse_folder(self.path)
        if self._own_lock:
            self._writer_lock.acquire()
        elif not self._writer_lock.held:
            raise JournalError(f"{self.path}: the writer lock given to the journal is not held")
        try:
            self._created = not await asyncio.to_thread(self.path.exists)
            self._conn = await _connect(self.path, create=True)
            try:
                await self._check(self._conn)
            except BaseException:
                await self._conn.close()
                self._conn = None
                raise
        except BaseException:
            self._release_lock()
            raise
        self._opened_at_seq = self._seq
        if self.checkpoint_pages is not None:
            await self._open_checkpointer()
        self._flusher = asyncio.create_task(self._flush_loop(), name=f"journal-flush:{self.path}")
        return self

    async def _open_checkpointer(self) -> None:
        """SQLite's automatic checkpoint off on the writer's connection; a second connection for
        the checkpoints, and the ``-shm`` file's descriptor to watch the WAL's length (kept open
        until close, like ``_sync_fds``: closing a descriptor of the file would drop SQLite's
        locks on it)."""
        conn = self._require_conn()
        try:
            await conn.execute("PRAGMA wal_autocheckpoint=0")
            self._ckpt_conn = await _connect(self.path, create=False)
            try:
                self._sync_fds["-shm"] = os.open(f"{self.path}-shm", os.O_RDONLY)
            except OSError as exc:  # then a checkpoint at each flush (_checkpoint_due)
                log.warning("journal %s: its -shm file cannot be read (%s)", self.path, exc)
        except BaseException:
            await self._close_checkpointer()
            await conn.close()
            self._conn = None
            self._close_sync_fds()
            self._release_lock()
            raise

    def _checkpoint_due(self) -> int:
        """0: no checkpoint due; 1: the WAL holds ``checkpoint_pages`` frames and an eighth of
        that is not copied yet (or the ``-shm`` file cannot be read); 2: it holds
        :data:`CHECKPOINT_STUCK` times as many (durable writes kept coming in during
        checkpoints, so the WAL was never fully copied and restarted). The eighth: after a
        checkpoint a durable write came in during, the next waits for a few more frames rather
        than running (two fsyncs) at each flush."""
        if self.checkpoint_pages is None or self._ckpt_conn is None:
            return 0
        fd = self._sync_fds.get("-shm")
        frames = wal_frames(fd) if fd is not None else None
        if frames is None:
            return 1
        wal, copied = frames
        if wal < self.checkpoint_pages or wal - copied < max(1, self.checkpoint_pages // 8):
            return 0
        return 2 if wal >= CHECKPOINT_STUCK * self.checkpoint_pages else 1

    async def _checkpoint(self) -> None:
        """One PASSIVE checkpoint, on the checkpointer's thread: it copies what no reader still
        needs, never waits for a lock and never blocks a writer. Run by the flusher between two
        group commits, so usually no write comes in meanwhile, the WAL is then fully copied and
        the next write (the group commit that follows) restarts it from its start; a durable
        write that does come in is not held up (its frames are copied by the next checkpoint).
        A failure is logged (the records stay in the WAL; the next one retries), never raised."""
        conn = self._ckpt_conn
        if conn is None:
            return
        started = time.perf_counter()
        try:
            # fetched to the end: no statement is left open on the connection
            await conn.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:
            if not self._checkpoint_failing:
                log.warning(
                    "journal %s: checkpoint failed (%s); the records stay in its WAL, retried",
                    self.path,
                    describe_fault(exc),
                )
            self._checkpoint_failing = True
            return
        self._checkpoint_failing = False
        self.checkpoints += 1
        self.checkpoint_seconds_total += time.perf_counter() - started
        if self._pending:  # commit them now: the WAL restarts in that commit, not an order's
            self._wake.set()

    async def _close_checkpointer(self) -> None:
        """After the flusher: a checkpoint under way finishes first (queued on its thread)."""
        conn, self._ckpt_conn = self._ckpt_conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                await conn.close()

    async def _check(self, conn: aiosqlite.Connection) -> None:
        """Schema, last seq, integrity (of a file with records) and session kind."""
        self.meta = await _check_schema(
            conn, self.path, create=True, kind=self.kind, index=not self.index_at_close
        )
        if not self.index_at_close:
            await self._ensure_index(conn)
        decoder = RecordDecoder(self.meta, self.path, self.upcasters)
        try:
            last = await _last_seq(conn)
        except sqlite3.Error as exc:
            raise damaged(self.path, str(exc)) from exc
        if last > 0:
            await _check_integrity(conn, self.path, decoder)
        await self._check_kind()
        self._seq = self._committed_seq = self._durable_seq = last
        if decoder.needs_recording():  # the records this writer appends have a newer shape
            await self.set_meta(f"{VERSION_KEY}{last + 1}", str(self.upcasters.current))

    async def _ensure_index(self, conn: aiosqlite.Connection) -> None:
        """Build the type index of a journal whose writer left it for its close and was cut
        before (a write: only when it is missing)."""
        try:
            found = await conn.execute_fetchall(
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (_INDEX_NAME,)
            )
            if not found:
                await conn.execute(_INDEX)
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: cannot build the journal's index: {exc}") from exc

    async def _build_index_at_close(self) -> None:
        """``index_at_close``: commit what is pending, then build the type index from the whole
        table (the caller's sync then makes both durable). A failure to build it is logged, not
        raised: the records are all there and read the same without it."""
        await self._write(durable=False)
        async with self._lock:
            try:
                await self._require_conn().execute(_INDEX)
            except sqlite3.Error as exc:
                log.warning(
                    "journal %s: its type index was not built (%s); it reads the same, by type "
                    "more slowly, and the next writer builds it",
                    self.path,
                    describe_fault(exc),
                )

    async def _check_kind(self) -> None:
        """A writer given a kind appends only to a journal of that kind (an older journal without
        one gets it)."""
        if self.kind is None:
            return
        stored = self.meta.get(KIND_KEY)
        if stored is None:
            await self.set_meta(KIND_KEY, self.kind)
        elif stored != self.kind:
            raise JournalError(
                f"{self.path}: holds a {stored} session; a {self.kind} session is not added to "
                "it: give another journal"
            )

    async def close(self) -> None:
        """Commit and fsync whatever is pending, then close. Safe to call twice."""
        await self._close(discard=False)

    async def _close(self, *, discard: bool) -> None:
        """Close; with ``discard``, a file this writer created and never wrote a record to is
        removed (a start that failed leaves no empty journal behind)."""
        if self._conn is None:
            return
        try:
            if self._failure is None:
                try:
                    if self.index_at_close and self._stall is None:
                        await self._build_index_at_close()
                    await self._sync_to(self._seq)
                except JournalUnwritableError:
                    log.error(
                        "journal %s closed with %d record(s) not written (%s): the next run "
                        "resumes from its last written record and catches up with the venue",
                        self.path,
                        self.backlog,
                        self.write_error,
                    )
                    raise
        finally:
            if self._flusher is not None:
                self._flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._flusher
            await self._close_checkpointer()  # before the writer's: its close checkpoints last
            async with self._lock:  # a write already under way finishes first
                await self._conn.close()
                self._close_sync_fds()
            self._conn = None
            if discard and self._created and self._seq == 0:
                _remove(self.path)
            self._release_lock()

    def _release_lock(self) -> None:
        if self._own_lock:
            self._writer_lock.release()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._close(discard=e is not None)

    # ------------------------------------------------------------------ state

    @property
    def last_seq(self) -> int:
        """Seq of the last appended record (committed or not)."""
        return self._seq

    @property
    def opened_at_seq(self) -> int:
        """Last good seq found when the file was opened."""
        return self._opened_at_seq

    @property
    def committed_seq(self) -> int:
        return self._committed_seq

    @property
    def durable_seq(self) -> int:
        return self._durable_seq

    @property
    def failed(self) -> bool:
        return self._failure is not None

    @property
    def backlog(self) -> int:
        return self._seq - self._committed_seq

    @property
    def writable(self) -> bool:
        """False while the disk refuses the journal's writes (the writer retries) or after the
        journal failed for good."""
        return self._stall is None and self._failure is None

    @property
    def write_error(self) -> str | None:
        """Why the journal cannot be written (what the OS or SQLite said), or None."""
        fault = self._stall if self._stall is not None else self._failure
        return describe_fault(fault) if fault is not None else None

    # ------------------------------------------------------------------ writing

    def append(self, message: Message) -> int:
        """Buffer ``message`` as the next record and return its seq."""
        if self._failure is not None:
            raise JournalClosedError(f"{self.path}: journal writer failed: {self._failure}")
        if self._conn is None:
            raise JournalClosedError(f"{self.path}: journal is not open")
        appendable = _APPENDABLE.get(type(message))
        if appendable is None:  # it would be written, then never read back
            raise JournalError(f"{type(message).__name__} is not in the codec's message union")
        tag, checks = appendable
        if checks and (problem := code_problem(message, checks)) is not None:
            raise JournalError(f"not journaled: {problem}")  # no reader could decode it
        self._seq += 1
        self._pending.append(
            (
                self._seq,
                tag,
                message.ts_event,
                message.ts_init,
                ENCODER.encode(message),
            )
        )
        if len(self._pending) >= self.batch_size:
            self._wake.set()
        return self._seq

    async def commit(self) -> int:
        """Group-commit everything appended so far. Returns the committed seq."""
        await self._write(durable=False)
        return self._committed_seq

    async def sync(self, seq: int | None = None) -> int:
        """Make every record up to ``seq`` (default: all appended) durable. Returns durable seq.

        Without ``durable_sync`` it returns the durable seq at once (the records are committed in
        groups as usual; ``close`` makes them durable)."""
        if not self.durable_sync:
            self._raise_if_failed()
            return self._durable_seq
        target = self._seq if seq is None else seq
        if self._stall is not None and self._durable_seq < target:
            raise self._unwritable()
        return await self._sync_to(target)

    async def _sync_to(self, target: int) -> int:
        if self._durable_seq < target:
            if self.durable_on_loop and not self._lock.locked():
                # written here and now, on the loop's thread: nothing to wait for, so no task
                # (and no loop iteration) on either side of the write; it cannot be interrupted
                # half-way either, having no await
                self._write_batch_here(durable=True)
            else:
                await self._write(durable=True)
        return self._durable_seq

    async def wait_writable(self) -> None:
        """Back-pressure for producers: wait while the backlog is above the high-water mark."""
        while self.backlog > self.high_water:
            self._raise_if_failed()
            self._progress.clear()
            self._wake.set()
            await self._progress.wait()

    async def set_meta(self, key: str, value: str) -> None:
        conn = self._require_conn()
        try:
            async with self._lock:  # never inside a batch written on the loop's thread
                await conn.execute(
                    "INSERT OR REPLACE INTO ballast_meta (key, value) VALUES (?, ?)", (key, value)
                )
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: cannot write meta {key!r}: {exc}") from exc
        self.meta[key] = value

    async def _flush_loop(self) -> None:
        retry_s = self.flush_interval_s
        while True:
            if self._stall is not None:  # retry on the backoff, not on each append's wake-up
                await asyncio.sleep(retry_s)
                retry_s = min(retry_s * 2, max(RETRY_MAX_S, self.flush_interval_s))
            else:
                retry_s = self.flush_interval_s
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            self._wake.clear()
            if self._pending or self._stall is not None:
                try:
                    # once unwritable, a retry that succeeds also makes everything durable
                    await self._write(durable=self._stall is not None)
                except JournalUnwritableError:
                    continue  # still refused: the records stay pending, retried after a wait
                except JournalError:
                    return  # _failure is set; appends now raise, waiters are woken
            # after a group commit, or each flush interval (durable writes alone fill it too);
            # the next group commit waits for it, orders and fills do not
            if due := self._checkpoint_due():
                await self._checkpoint()
                if due == 2:  # the rest, what came in during that one, with no write meanwhile:
                    async with self._lock:  # the whole WAL copied, the next write restarts it
                        await self._checkpoint()

    async def _write(self, *, durable: bool) -> None:
        # The write runs to its end in its own task even if our caller is cancelled (shutdown, a
        # timeout): a batch taken from the buffer must reach the disk or fail the journal, never
        # vanish and leave a gap (or a transaction open). Its failure is kept in _failure.
        write = asyncio.ensure_future(self._write_batch(durable=durable))
        write.add_done_callback(_retrieve_exception)
        await asyncio.shield(write)

    async def _write_batch(self, *, durable: bool) -> None:
        async with self._lock:
            if durable and self.durable_on_loop:
                self._write_batch_here(durable=True)
                return
            batch, last, started, sync = self._take_batch(durable=durable)
            committed = [False]
            try:
                if batch or sync:
                    on_its_thread = cast(
                        "Callable[..., Awaitable[None]]", self._require_conn()._execute
                    )
                    await on_its_thread(self._write_sync, batch, sync, committed)
            except (sqlite3.Error, OSError) as exc:
                self._write_failed(exc, batch, last, committed[0])
            self._written(batch, last, started, durable=durable)

    def _write_batch_here(self, *, durable: bool) -> None:
        """:meth:`_write_batch` on the calling (the loop's) thread, without the lock: the caller
        holds it, or saw it free (nothing can take it before this returns: no await here)."""
        batch, last, started, sync = self._take_batch(durable=durable)
        committed = [False]
        try:
            if batch or sync:
                self._write_sync(batch, sync, committed)
        except (sqlite3.Error, OSError) as exc:
            self._write_failed(exc, batch, last, committed[0])
        self._written(batch, last, started, durable=durable)

    def _take_batch(self, *, durable: bool) -> tuple[list[Row], int, float, bool]:
        """The pending records to write (taken from the buffer), the last one's seq, the start
        time, and whether the write must also make them durable (fsync)."""
        self._raise_if_failed()
        batch, self._pending = self._pending, []
        last = batch[-1][0] if batch else self._committed_seq
        return batch, last, time.perf_counter(), durable and self._durable_seq < last

    def _write_failed(
        self, exc: sqlite3.Error | OSError, batch: list[Row], last: int, committed: bool
    ) -> NoReturn:
        if committed:  # the commit went through; its fsync did not
            self._committed_seq = last
        elif batch:  # back to the head of the pending records, in order
            self._pending[:0] = batch
        self._progress.set()
        if not resource_fault(exc):
            self._failure = exc
            raise JournalError(f"{self.path}: journal write failed: {exc}") from exc
        self._stalled(exc)
        raise self._unwritable() from exc

    def _written(self, batch: list[Row], last: int, started: float, *, durable: bool) -> None:
        if self._stall is not None:
            self._recovered(len(batch))
        if batch:
            elapsed = time.perf_counter() - started
            self.commits += 1
            self.commit_seconds_total += elapsed
            for observe in self.commit_observers:
                with contextlib.suppress(Exception):  # metrics never break the journal
                    observe(elapsed, len(batch))
        self._committed_seq = last
        if durable:
            self._durable_seq = last
        self._progress.set()

    def _stalled(self, exc: BaseException) -> None:
        """A write was refused for want of a resource: unwritable until one succeeds."""
        self.write_failures += 1
        self._stall_failures += 1
        first = self._stall is None
        self._stall = exc
        if not first:
            return
        self._stall_since = time.monotonic()
        what = describe_fault(exc)
        log.error(
            "journal %s cannot be written (%s): no order is sent until it can; %d record(s) "
            "wait in memory, retried every %g s at most",
            self.path,
            what,
            self.backlog,
            max(RETRY_MAX_S, self.flush_interval_s),
        )
        self._tell(what)

    def _recovered(self, written: int) -> None:
        log.warning(
            "journal %s writable again after %.1f s and %d refused write(s); %d pending "
            "record(s) written in order",
            self.path,
            time.monotonic() - self._stall_since,
            self._stall_failures,
            written,
        )
        self._stall = None
        self._stall_failures = 0
        self._tell(None)

    def _tell(self, error: str | None) -> None:
        for observe in self.state_observers:
            try:
                observe(error)
            except Exception:  # an observer never breaks the journal
                log.exception("journal state observer failed")

    def _unwritable(self) -> JournalUnwritableError:
        return JournalUnwritableError(
            f"{self.path}: journal cannot be written ({self.write_error}); not durable"
        )

    def _write_sync(self, batch: Sequence[Row], sync: bool, committed: list[bool]) -> None:
        """One batch: the transaction and, when ``sync``, the fsync of the WAL, on the
        connection's own thread in one hand-over (a durable batch with ``durable_on_loop``: on
        the event loop's thread, no hand-over). (aiosqlite runs each ``execute`` as a separate
        hand-over to its thread and back; a durable write took four: BEGIN, the inserts, COMMIT,
        the fsync, each a wake-up of both threads, on the path of every order and fill. Its
        ``_execute`` runs a function on that thread: a private API of aiosqlite's, pinned in
        pyproject.toml and exercised by every test that writes a journal.)"""
        raw: sqlite3.Connection = self._require_conn()._conn
        if batch:
            if raw.in_transaction:  # left open by an earlier failure whose ROLLBACK failed too
                raw.execute("ROLLBACK")
            raw.execute("BEGIN IMMEDIATE")
            try:
                _insert(raw, batch)
                raw.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    raw.execute("ROLLBACK")
                raise
            committed[0] = True
        if sync:
            self._fsync_wal()

    def _fsync_wal(self) -> None:
        """Flush the write-ahead log (and once, the database file and the directory entry) to
        stable storage. The database file needs no flush per commit: a commit writes only the
        WAL, and with ``synchronous=NORMAL`` SQLite itself syncs the database file after each
        checkpoint (and the WAL header when the log is reused); an fsync of the unchanged file
        cost 0.08 ms (p99 0.6 ms) on every order. The descriptors stay open until
        :meth:`close` (see ``_sync_fds``)."""
        for suffix in ("-wal", ""):
            fd = self._sync_fds.get(suffix)
            if fd is None:
                target = Path(f"{self.path}{suffix}")
                if not target.exists():
                    continue
                fd = self._sync_fds[suffix] = os.open(target, os.O_RDONLY)
            elif suffix == "":
                continue  # flushed once, when first opened
            # the WAL's data and size (what a reader needs), not its times: SQLite's own choice
            # on Linux; a reused WAL (overwritten after a checkpoint) then needs no inode write
            _flush_data(fd)
        if not self._dir_synced:
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self._dir_synced = True

    def _close_sync_fds(self) -> None:
        """After the connection is closed: nothing of SQLite's is left to unlock."""
        fds, self._sync_fds = self._sync_fds, {}
        for fd in fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise JournalClosedError(f"{self.path}: journal writer failed: {self._failure}")

    def _require_conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise JournalClosedError(f"{self.path}: journal is not open")
        return self._conn


class JournalReader:
    """Reads a journal in seq order. Use as ``async with JournalReader(path) as reader: ...``."""

    def __init__(
        self, path: str | os.PathLike[str], *, chunk: int = 2048, upcasters: Upcasters = UPCASTERS
    ) -> None:
        self.path = Path(path)
        self.chunk = chunk
        self.upcasters = upcasters
        self._decoder: RecordDecoder | None = None
        self._conn: aiosqlite.Connection | None = None
        self.meta: dict[str, str] = {}
        self.skipped: list[int] = []
        """Seqs :meth:`readable_records` left out: they could not be read or decoded."""

    async def __aenter__(self) -> Self:
        self._conn = await _connect(self.path, create=False)
        try:
            self.meta = await _check_schema(self._conn, self.path, create=False)
            self._decoder = RecordDecoder(self.meta, self.path, self.upcasters)
        except BaseException:
            await self._conn.close()
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    def _require_conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise JournalError(f"{self.path}: reader is not open")
        return self._conn

    def _require_decoder(self) -> RecordDecoder:
        if self._decoder is None:
            raise JournalError(f"{self.path}: reader is not open")
        return self._decoder

    async def last_seq(self) -> int:
        try:
            return await _last_seq(self._require_conn())
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: cannot read journal: {exc}") from exc

    async def records(
        self,
        *,
        start_seq: int = 1,
        end_seq: int | None = None,
        types: Collection[str] | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
    ) -> AsyncGenerator[Record, None]:
        """Records with start_seq <= seq <= end_seq, ts_event in [since_ns, until_ns), of
        ``types``, one per iteration (see :meth:`chunks` for the fast path)."""
        chunks = self.chunks(
            start_seq=start_seq, end_seq=end_seq, types=types, since_ns=since_ns, until_ns=until_ns
        )
        async for chunk in chunks:
            for rec in chunk:
                yield rec

    async def chunks(
        self,
        *,
        start_seq: int = 1,
        end_seq: int | None = None,
        types: Collection[str] | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
    ) -> AsyncGenerator[list[Record], None]:
        """The same records as :meth:`records`, a list of up to ``chunk`` at a time, in seq order:
        the fast path for replay (one await per chunk, not per record). A corrupt record ends the
        iteration with JournalCorruptError after the good records before it."""
        where, params = self._filters(end_seq, types, since_ns, until_ns)
        sql = self._chunk_sql(where)
        fetch = asyncio.ensure_future(self._fetch(sql, (start_seq - 1, *params)))
        try:
            while rows := await fetch:
                # the next chunk is read on the connection's thread while this one is decoded
                fetch = asyncio.ensure_future(self._fetch(sql, (rows[-1][0], *params)))
                try:
                    chunk = _decode_rows(rows, self._require_decoder())
                except _PartialChunk as partial:
                    if partial.good:
                        yield partial.good
                    raise partial.error from None
                yield chunk
        finally:
            if not fetch.done():
                fetch.cancel()
                with contextlib.suppress(asyncio.CancelledError, JournalError):
                    await fetch

    async def readable_records(
        self,
        *,
        start_seq: int = 1,
        end_seq: int | None = None,
        types: Collection[str] | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
    ) -> AsyncGenerator[Record, None]:
        """Salvage: the records of :meth:`records` that can still be read and decoded. Where a
        chunk cannot be read (a damaged page), its seqs are read one by one; the seqs that cannot
        be read or decoded are left out and listed in :attr:`skipped`."""
        self.skipped = []
        where, params = self._filters(end_seq, types, since_ns, until_ns)
        sql = self._chunk_sql(where)
        after, last = start_seq - 1, await self.last_seq() if end_seq is None else end_seq
        while after < last:
            try:
                rows = await self._fetch(sql, (after, *params))
                upto = rows[-1][0] if rows else last
            except JournalError:
                upto = min(after + self.chunk, last)
                rows = await self._one_by_one(after, upto, where, params)
            for seq, payload in rows:
                try:
                    yield Record(seq, self._require_decoder().decode(payload, seq))
                except JournalCorruptError:
                    self.skipped.append(seq)
            after = upto

    async def _one_by_one(
        self, after: int, upto: int, where: str, params: Sequence[object]
    ) -> list[StoredRow]:
        """The readable rows with after < seq <= upto; the unreadable seqs go to ``skipped``."""
        rows: list[StoredRow] = []
        for seq in range(after + 1, upto + 1):
            try:
                rows.extend(
                    await self._fetch(
                        f"SELECT seq, payload FROM events WHERE seq = ?{where}", (seq, *params)
                    )
                )
            except JournalError:
                self.skipped.append(seq)
        return rows

    async def messages(self, **filters: int | Collection[str] | None) -> list[Message]:
        """All matching messages in a list (for small journals and tests)."""
        return [rec.message async for rec in self.records(**filters)]  # type: ignore[arg-type]

    async def tail(self, n: int, types: Collection[str] | None = None) -> list[Record]:
        """The last ``n`` matching records, oldest first."""
        where, params = self._filters(None, types, None, None)
        sql = (
            f"SELECT seq, payload FROM events WHERE seq > ?{where} ORDER BY seq DESC LIMIT {int(n)}"
        )
        rows = await self._fetch(sql, (0, *params))
        decoder = self._require_decoder()
        return [Record(s, decoder.decode(p, s)) for s, p in reversed(rows)]

    async def stats(self) -> JournalStats:
        conn = self._require_conn()
        try:
            async with conn.execute(
                "SELECT COUNT(*), MIN(seq), MAX(seq), MIN(ts_event), MAX(ts_event) FROM events"
            ) as cur:
                row = await cur.fetchone()
            async with conn.execute("SELECT type, COUNT(*) FROM events GROUP BY type") as cur:
                by_type = {str(t): int(c) for t, c in await cur.fetchall()}
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: cannot read journal: {exc}") from exc
        assert row is not None
        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        return JournalStats(
            path=str(self.path),
            schema_version=int(self.meta.get("schema_version", "0")),
            created_by=self.meta.get("created_by", "?"),
            count=int(row[0]),
            first_seq=row[1],
            last_seq=row[2],
            first_ts_event=row[3],
            last_ts_event=row[4],
            size_bytes=size,
            by_type=dict(sorted(by_type.items())),
        )

    async def integrity_check(self) -> str:
        """SQLite's quick_check verdict on one line: ``ok``, or what it (or SQLite) found."""
        conn = self._require_conn()
        try:
            rows = await conn.execute_fetchall("PRAGMA quick_check")
        except sqlite3.Error as exc:
            return str(exc)
        found = "; ".join(str(row[0]) for row in rows) if rows else "no answer"
        return " ".join(found.split())

    def _chunk_sql(self, where: str) -> str:
        """The next (up to ``chunk``) records after the seq of the first parameter, ``where``
        the filters of :meth:`_filters` hold."""
        return (
            "SELECT seq, payload FROM events "
            f"WHERE seq > ?{where} ORDER BY seq LIMIT {int(self.chunk)}"
        )

    @staticmethod
    def _filters(
        end_seq: int | None,
        types: Collection[str] | None,
        since_ns: int | None,
        until_ns: int | None,
    ) -> tuple[str, list[object]]:
        clauses: list[str] = []
        params: list[object] = []
        if end_seq is not None:
            clauses.append("seq <= ?")
            params.append(end_seq)
        if types:
            clauses.append(f"type IN ({','.join('?' * len(types))})")
            params.extend(sorted(types))
        if since_ns is not None:
            clauses.append("ts_event >= ?")
            params.append(since_ns)
        if until_ns is not None:
            clauses.append("ts_event < ?")
            params.append(until_ns)
        return "".join(f" AND {c}" for c in clauses), params

    async def _fetch(self, sql: str, params: Sequence[object]) -> list[StoredRow]:
        conn = self._require_conn()
        try:
            # One job on the connection's thread (not execute, fetchall, close); rows are tuples.
            return cast(list[StoredRow], await conn.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: cannot read journal: {exc}") from exc
