"""Journals written by events version 1, committed: every later build must still read them.

- ``backtest_v1.db``: ``ballast backtest -c examples/demo.toml --start 2022-06-13 --end
  2022-06-17 --no-report`` (the growth optimizer's journal; ballast 0.1.0, events version 1).
- ``every_message_v1.db``: one message of every type (``tests.test_journal.one_of_each``)
  appended by a :class:`Journal`; ``every_message_v1.jsonl`` is its ``ballast journal export``.

Never regenerate them: they stand for the files users hold. A change to the events that breaks
them needs an upcaster (:mod:`ballast.engine.kernel.upcast`), not new fixtures. The tests work on
copies (opening a WAL journal creates files beside it).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import msgspec

from ballast.engine.app.cli.cmd_journal import record_json
from ballast.engine.app.replay import replay
from ballast.engine.kernel.codec import MESSAGE_TYPES
from ballast.engine.kernel.config import config_from_json
from ballast.engine.kernel.events import SessionStarted
from ballast.engine.kernel.journal import JournalReader, Record
from tests.support.cli import ballast
from tests.support.growth_v1 import GrowthOptimizer as GrowthV1

FIXTURES = Path(__file__).parent / "fixtures"
MISSING = "<missing>"
ADDED_SINCE_V1 = frozenset(
    {
        "VenueConnectionChanged",
        "ReconcileMismatch",
        "ReconcileResolved",
        "JournalWriteChanged",
        "VenueMessageRejected",
    }
)
"""Message types added after the fixtures were written (new types need no upcaster; their
round trip is in tests/test_journal.py). Add every new type here."""


def copy(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copyfile(FIXTURES / name, tmp_path / name))


async def every_record(path: Path) -> tuple[list[Record], int, dict[str, int]]:
    async with JournalReader(path) as reader:
        stats = await reader.stats()
        return [rec async for rec in reader.records()], stats.count, stats.by_type


async def test_the_backtest_journal_decodes_record_by_record(tmp_path: Path) -> None:
    records, count, by_type = await every_record(copy("backtest_v1.db", tmp_path))
    assert count == 955
    assert [rec.seq for rec in records] == list(range(1, count + 1))
    assert Counter(rec.type for rec in records) == by_type  # each payload is of its row's type


async def test_the_backtest_journal_replays_identically(tmp_path: Path) -> None:
    """With the strategy that wrote it: issue 12 changed the growth optimizer's decisions (no
    position before its signal is warm) and their reasons, so today's preset decides otherwise
    on the same inputs; tests/support/growth_v1.py is the preset as it was."""
    path = copy("backtest_v1.db", tmp_path)
    async with JournalReader(path) as reader:
        started = next(m for m in await reader.messages() if isinstance(m, SessionStarted))
    given = config_from_json(started.source_config_json or started.config_json)
    assert given.strategy.name == "growth_optimizer"
    then = msgspec.structs.replace(
        given,
        strategy=msgspec.structs.replace(
            given.strategy, name=f"{GrowthV1.__module__}:GrowthOptimizer"
        ),
    )
    result = await replay(path, verify=True, config=then)
    assert result.divergence is None, result.divergence
    assert result.outputs_compared == 142


def test_the_backtest_journal_replays_on_the_command_line_up_to_the_strategys_first_change(
    tmp_path: Path,
) -> None:
    """The command line replays it with today's growth optimizer: every record reads and the
    first difference is the issue-12 warm-up (no perp long on the first bar), named."""
    done = ballast("replay", str(copy("backtest_v1.db", tmp_path)), "--verify")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "divergence at seq 13" in done.stdout
    assert "BTC warming up: 0 of 720 h: no signal position" in done.stdout


async def test_every_message_type_reads_as_it_was_exported(tmp_path: Path) -> None:
    records, count, _ = await every_record(copy("every_message_v1.db", tmp_path))
    exported = (FIXTURES / "every_message_v1.jsonl").read_text().splitlines()
    assert {rec.type for rec in records} == set(MESSAGE_TYPES) - ADDED_SINCE_V1
    assert count == len(exported)
    for rec, line in zip(records, exported, strict=True):
        now, then = json.loads(record_json(rec)), json.loads(line)
        event, then_event = now.pop("event"), then.pop("event")
        # every exported field reads the same; fields added since (with defaults) may follow
        assert {name: event.get(name, MISSING) for name in then_event} == then_event, line
        assert now == then
