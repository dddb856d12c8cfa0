"""The durable input log of the loopback exchange: every input its core took, in order.

The exchange is deterministic: replaying its inputs (market data, accepted order commands,
cancels, funding settlements, leverage changes, each with the time the core took it at) into a
fresh core rebuilds every balance, position, order, trade id and income record. An input is
written and committed BEFORE the core applies it (and so before any reply or stream message
about it): a reply means it happened and survives a restart.

One SQLite file, one table of msgpack rows, WAL with ``synchronous=NORMAL``: a commit survives
the process being killed (``SIGKILL``), not a power loss (the exchange is a test and paper
venue; an operating-system crash may lose its last inputs). One exchange per file: the log holds
the engine's writer lock (:class:`~ballast.engine.kernel.journal_lock.JournalLock`, sidecar
``<file>.lock``) while open, so a second exchange on the same file is refused with
:class:`~ballast.engine.kernel.errors.JournalLockedError` naming the holder's pid.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Final

import msgspec

from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.events import Bar, MarkPriceUpdated, QuoteTick, TradeTick
from ballast.engine.kernel.journal_lock import JournalLock


class MarketInput(msgspec.Struct, frozen=True, tag="market", array_like=True):
    event: QuoteTick | TradeTick | Bar | MarkPriceUpdated


class SubmitInput(msgspec.Struct, frozen=True, tag="submit", array_like=True):
    cmd: SubmitOrder
    ts_ns: int


class CancelInput(msgspec.Struct, frozen=True, tag="cancel", array_like=True):
    symbol: str
    client_order_id: str
    ts_ns: int


class FundingInput(msgspec.Struct, frozen=True, tag="funding", array_like=True):
    symbol: str
    rate: Decimal
    mark: Decimal
    ts_ns: int


class LeverageInput(msgspec.Struct, frozen=True, tag="leverage", array_like=True):
    symbol: str
    leverage: Decimal
    ts_ns: int


Input = MarketInput | SubmitInput | CancelInput | FundingInput | LeverageInput

_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(Input)
_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS inputs (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)"
)


class InputLog:
    """Append-only log of :data:`Input` rows in an SQLite file (created if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = JournalLock(path).acquire()
        try:
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(_SCHEMA)
            self.count: int = self._conn.execute("SELECT COUNT(*) FROM inputs").fetchone()[0]
        except BaseException:
            self._lock.release()
            raise

    def read(self) -> Iterator[Input]:
        """Every stored input, in order."""
        for (payload,) in self._conn.execute("SELECT payload FROM inputs ORDER BY seq"):
            yield _DECODER.decode(payload)

    def append(self, item: Input) -> None:
        """Write and commit one input (autocommit: durable when this returns)."""
        self._conn.execute("INSERT INTO inputs (payload) VALUES (?)", (_ENCODER.encode(item),))
        self.count += 1

    def close(self) -> None:
        try:
            self._conn.close()
        finally:
            self._lock.release()
