"""Upcasting: records written by an older events version are brought to the current shape.

This build writes events version 1, so no real upcaster exists yet. These tests play the next
release: a registry whose current version is 2 (or 3), with upcasters for older shapes written by
hand into a real journal file, next to records written by this build.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from ballast.engine.kernel.errors import JournalCorruptError, JournalSchemaError
from ballast.engine.kernel.events import KillSwitchTriggered, Message, QuoteTick
from ballast.engine.kernel.journal import Journal, JournalReader
from ballast.engine.kernel.upcast import EVENTS_VERSION, Raw, RecordVersions, Upcasters
from tests.conftest import START_NS

T = START_NS
OLD_KILL: Raw = ["KillSwitchTriggered", T + 1, T + 1, "drawdown 0.3 >= 0.25", "dd"]
"""A version-1 KillSwitchTriggered as the next release sees it: (detail, code) in that order,
the code "dd" since renamed "drawdown"."""
KILL = KillSwitchTriggered(T + 1, T + 1, "drawdown", "drawdown 0.3 >= 0.25")


def next_release() -> Upcasters:
    """The registry of a build at events version 2 that reordered KillSwitchTriggered."""
    upcasters = Upcasters(current=2)

    @upcasters.register("KillSwitchTriggered", 1)
    def _reason_first(raw: Raw) -> Raw:
        tag, ts_event, ts_init, detail, code = raw
        return [tag, ts_event, ts_init, "drawdown" if code == "dd" else code, detail]

    return upcasters


def quote(ts: int) -> QuoteTick:
    return QuoteTick(ts, ts, "BTC/USDT", Decimal(100), Decimal(101), Decimal(1), Decimal(1))


def insert_raw(path: Path, seq: int, raw: Raw) -> None:
    """A record written the old way, straight into the journal's table."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO events (seq, type, ts_event, ts_init, payload) VALUES (?, ?, ?, ?, ?)",
            (seq, raw[0], raw[1], raw[2], msgspec.msgpack.encode(raw)),
        )
    conn.close()


def meta(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        found = dict(conn.execute("SELECT key, value FROM ballast_meta"))
    conn.close()
    return found


async def read(path: Path, upcasters: Upcasters | None = None) -> list[Message]:
    reader = JournalReader(path) if upcasters is None else JournalReader(path, upcasters=upcasters)
    async with reader:
        return await reader.messages()


async def journal_with_old_record(path: Path) -> None:
    """Seq 1 written by this build, seq 2 a version-1 record in the old shape."""
    async with Journal(path) as journal:
        journal.append(quote(T))
        await journal.commit()
    insert_raw(path, 2, OLD_KILL)


async def test_an_old_record_decodes_through_its_upcaster(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    await journal_with_old_record(path)
    assert not any(key.startswith("events_version@") for key in meta(path))  # version 1: no key

    with pytest.raises(JournalCorruptError, match="record seq 2"):
        await read(path)  # as it is, the old shape does not decode
    assert await read(path, next_release()) == [quote(T), KILL]


async def test_a_newer_writer_records_where_its_records_start(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    await journal_with_old_record(path)
    later = KillSwitchTriggered(T + 2, T + 2, "handler_failed", "Portfolio.on_fill failed")

    async with Journal(path, upcasters=next_release()) as journal:
        journal.append(later)  # the new shape: the version-1 upcaster must not touch it
        await journal.commit()
    assert meta(path)["events_version@3"] == "2"
    async with Journal(path, upcasters=next_release()) as journal:
        pass  # a second writer of the same version records nothing more
    assert [k for k in meta(path) if k.startswith("events_version@")] == ["events_version@3"]

    assert await read(path, next_release()) == [quote(T), KILL, later]
    async with JournalReader(path, upcasters=next_release()) as reader:
        assert [rec.message for rec in await reader.tail(2)] == [KILL, later]
        assert [rec.seq async for rec in reader.readable_records()] == [1, 2, 3]


async def test_records_of_a_newer_version_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    async with Journal(path, upcasters=next_release()) as journal:
        journal.append(quote(T))
        await journal.commit()
    assert meta(path)["events_version@1"] == "2"

    with pytest.raises(JournalSchemaError, match="events version 2 by a newer Ballast"):
        await read(path)
    with pytest.raises(JournalSchemaError, match="events version 2"):
        async with Journal(path):
            pass
    assert await read(path, next_release()) == [quote(T)]


async def test_a_writer_checks_an_old_tail_through_the_upcasters(tmp_path: Path) -> None:
    """Before appending, a writer decodes the last records: an old one is not damage to it."""
    path = tmp_path / "j.db"
    await journal_with_old_record(path)
    with pytest.raises(JournalCorruptError, match="damaged"):
        async with Journal(path):
            pass
    async with Journal(path, upcasters=next_release()):
        pass


def test_upcasters_run_version_by_version_following_the_tag() -> None:
    upcasters = Upcasters(current=3)

    @upcasters.register("RiskLimitHit", 1)
    def _renamed(raw: Raw) -> Raw:
        return ["KillSwitchTriggered", *raw[1:]]

    @upcasters.register("KillSwitchTriggered", 2)
    def _code(raw: Raw) -> Raw:
        return [*raw[:3], "drawdown" if raw[3] == "dd" else raw[3], raw[4]]

    old = ["RiskLimitHit", T + 1, T + 1, "dd", "drawdown 0.3 >= 0.25"]
    assert upcasters.upcast(list(old), 1) == _as_raw(KILL)
    assert upcasters.decode(msgspec.msgpack.encode(old), 1) == KILL
    assert upcasters.decode(msgspec.msgpack.encode(_as_raw(KILL)), 2) == KILL
    assert upcasters.upcast(["Bar", 1, 2], 1) == ["Bar", 1, 2]  # no upcaster: unchanged


def _as_raw(message: Message) -> Raw:
    raw: Raw = msgspec.msgpack.decode(msgspec.msgpack.encode(message))
    return raw


def test_a_failing_upcaster_is_a_damaged_record() -> None:
    upcasters = Upcasters(current=2)

    @upcasters.register("KillSwitchTriggered", 1)
    def _broken(raw: Raw) -> Raw:
        raise KeyError(raw[3])

    with pytest.raises(JournalCorruptError, match=r"record seq 7 .*events version 1"):
        upcasters.decode(msgspec.msgpack.encode(OLD_KILL), 1, seq=7)
    with pytest.raises(JournalCorruptError, match="not an encoded message"):
        upcasters.decode(msgspec.msgpack.encode(42), 1, seq=8)


def test_an_upcaster_reads_an_older_version_once() -> None:
    upcasters = Upcasters(current=2)
    register = upcasters.register("Bar", 1)
    register(lambda raw: raw)
    with pytest.raises(ValueError, match="exists"):
        register(lambda raw: raw)
    for version in (0, 2):
        with pytest.raises(ValueError, match="from 1 to 1"):
            upcasters.register("Bar", version)(lambda raw: raw)
    with pytest.raises(ValueError, match="from 1 to 0"):
        Upcasters(current=1).register("Bar", 1)(lambda raw: raw)


def test_record_versions_from_meta() -> None:
    assert EVENTS_VERSION == 1
    unmarked = RecordVersions({"schema_version": "1"})
    assert (unmarked.at(1), unmarked.at(10**6), unmarked.last) == (1, 1, 1)
    mixed = RecordVersions({"events_version@500": "2", "events_version@900": "3"})
    assert [mixed.at(s) for s in (1, 499, 500, 899, 900, 10**6)] == [1, 1, 2, 2, 3, 3]
    assert (mixed.last, mixed.first_seq_of(3), mixed.first_seq_of(2)) == (3, 900, None)
    fresh = RecordVersions({"events_version@1": "2"})
    assert (fresh.at(1), fresh.first_seq_of(2)) == (2, 1)
