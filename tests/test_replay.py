"""Acceptance: a run's journal replays through the same actors and --verify reports identical
output; a deliberately altered actor makes it exit 1 and name the first divergent seq."""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from pathlib import Path

import pytest

from ballast.engine.app.replay import replay
from ballast.engine.app.session import Session
from ballast.engine.kernel.clock import NS_PER_DAY, SimulatedClock
from ballast.engine.kernel.config import Config, parse_config
from ballast.engine.kernel.events import (
    Bar,
    DataRejected,
    HandlerFailed,
    QuoteTick,
    SessionStarted,
    TimerFired,
)
from ballast.engine.kernel.journal import Journal, JournalReader, Record
from tests.conftest import START_NS
from tests.support.actors import AlteredDecider, market_inputs
from tests.support.cli import ballast

DECIDER = "tests.support.actors:Decider"
ALTERED = "tests.support.actors:AlteredDecider"
INPUTS = 400


def config_toml(*actors: str) -> str:
    listed = ", ".join(f'"{a}"' for a in actors)
    return f"[engine]\nactors = [{listed}]\n"


def config_of(*actors: str) -> Config:
    return parse_config(config_toml(*actors))


async def record_session(
    path: Path,
    config: Config,
    *,
    seed: int,
    start_ns: int = START_NS,
    count: int = INPUTS,
    stop: bool = True,
) -> None:
    """Run one session over generated inputs. ``stop=False`` leaves it as a killed process would:
    actors never stopped, no SessionStopped."""
    clock = SimulatedClock(start_ns)
    async with Journal(path) as journal:
        session = Session(config, clock, journal=journal)
        await session.__aenter__()
        for message in market_inputs(seed, count, start_ns):
            clock.advance_to(message.ts_event)
            await session.bus.send(message)
        if stop:
            await session.__aexit__(None, None, None)


async def read_all(path: Path) -> list[Record]:
    async with JournalReader(path) as reader:
        return [rec async for rec in reader.records()]


def outputs(records: list[Record]) -> list[Record]:
    return [rec for rec in records if type(rec.message).role == "output"]


def actor_outputs(records: list[Record]) -> list[Record]:
    """Outputs of the configured actors: the market gate's verdicts (a DataRejected naming the
    seq of the data it rejected), which every session makes, left out."""
    return [
        rec
        for rec in outputs(records)
        if not (isinstance(rec.message, DataRejected) and rec.message.seq)
    ]


def first_altered_seq(records: list[Record], alter_after: int) -> int:
    """Seq of the first recorded output caused by the Decider's ``alter_after``-th input or later.

    Dispatch is synchronous, so an output belongs to the last input recorded before it.
    """
    handled = 0
    for rec in records:
        message = rec.message
        if isinstance(message, QuoteTick | Bar) or (
            isinstance(message, TimerFired) and message.name == "Decider.check"
        ):
            handled += 1
        elif type(message).role == "output" and handled >= alter_after:
            return rec.seq
    raise AssertionError("the recording has no output after the altered input")


@pytest.fixture
async def recorded(tmp_path: Path) -> Path:
    path = tmp_path / "run" / "journal.db"
    await record_session(path, config_of(DECIDER), seed=7)
    return path


@pytest.fixture
def altered_toml(tmp_path: Path) -> Path:
    file = tmp_path / "altered.toml"
    file.write_text(config_toml(ALTERED))
    return file


async def test_recording_exercises_every_kind_of_output(recorded: Path) -> None:
    """Guard against a vacuous acceptance test: the run must hold the interesting cases."""
    records = await read_all(recorded)
    types = {rec.type for rec in records}
    assert {"QuoteTick", "Bar", "BalanceUpdated", "TimerFired"} <= types
    assert {"RebalanceDecided", "IntentApproved", "OrderVetoed", "DataRejected"} <= types
    assert {"RiskBudgetChanged", "KillSwitchTriggered", "HandlerFailed"} <= types
    failed = [rec.message for rec in records if isinstance(rec.message, HandlerFailed)]
    # failures on inputs and on outputs (the actor reacting to its own decisions)
    assert {f.event_type for f in failed} >= {"QuoteTick", "RebalanceDecided"}
    by_seq = {rec.seq: rec for rec in records}
    for failure in failed:
        assert by_seq[failure.seq].type == failure.event_type
    assert [rec.seq for rec in records] == list(range(1, len(records) + 1))
    assert records[0].type == "SessionStarted"
    assert records[-1].type == "SessionStopped"


async def test_replay_verify_reproduces_every_output(recorded: Path) -> None:
    records = await read_all(recorded)
    result = await replay(recorded, verify=True)
    assert result.ok, result.divergence and result.divergence.describe()
    assert result.records == len(records)
    assert result.sessions == 1
    assert result.outputs_compared == len(outputs(records))
    assert result.inputs == sum(type(rec.message).role == "input" for rec in records)


async def test_replay_api_names_the_first_divergent_seq(recorded: Path) -> None:
    records = await read_all(recorded)
    expected_seq = first_altered_seq(records, AlteredDecider.ALTER_AFTER)
    result = await replay(recorded, verify=True, config=config_of(ALTERED))
    assert result.divergence is not None
    assert result.divergence.seq == expected_seq
    by_seq = {rec.seq: rec.message for rec in records}
    assert result.divergence.expected == by_seq[expected_seq]
    assert result.divergence.actual is not None
    assert type(result.divergence.actual) is type(by_seq[expected_seq])
    assert "[altered]" in result.divergence.describe()
    # everything before the divergence was compared and matched
    assert result.outputs_compared == sum(rec.seq <= expected_seq for rec in outputs(records))


async def test_replay_without_verify_reports_no_divergence(recorded: Path) -> None:
    result = await replay(recorded, verify=False, config=config_of(ALTERED))
    assert result.ok
    assert result.outputs_compared == 0
    assert result.records == len(await read_all(recorded))


async def test_missing_output_is_a_divergence_at_the_first_recorded_output(
    recorded: Path,
) -> None:
    records = await read_all(recorded)
    result = await replay(recorded, verify=True, config=config_of("tests.support.actors:Silent"))
    assert result.divergence is not None
    assert result.divergence.seq == actor_outputs(records)[0].seq
    actual = result.divergence.actual  # nothing, or a later verdict of the gate
    assert actual is None or (isinstance(actual, DataRejected) and actual.seq > 0)


async def test_extra_output_is_a_divergence(tmp_path: Path) -> None:
    path = tmp_path / "quiet.db"
    await record_session(path, config_of("tests.support.actors:Silent"), seed=3, count=50)
    records = await read_all(path)
    assert outputs(records) == []
    result = await replay(path, verify=True, config=config_of(DECIDER))
    assert result.divergence is not None
    assert result.divergence.expected is None
    assert result.divergence.actual is not None
    assert result.divergence.seq == records[-1].seq


async def test_two_sessions_replay_each_with_its_own_config(tmp_path: Path) -> None:
    path = tmp_path / "two.db"
    await record_session(path, config_of(DECIDER), seed=1, count=200)
    later = START_NS + 10 * NS_PER_DAY
    both = config_of(DECIDER, "tests.support.actors:Tally")
    await record_session(path, both, seed=2, count=200, start_ns=later)
    records = await read_all(path)
    assert sum(isinstance(rec.message, SessionStarted) for rec in records) == 2
    assert "DataRejected" in {rec.type for rec in records[len(records) // 2 :]}

    result = await replay(path, verify=True)
    assert result.ok, result.divergence and result.divergence.describe()
    assert result.sessions == 2
    assert result.outputs_compared == len(outputs(records))

    # one config for both sessions cannot reproduce the second one (Tally is missing)
    forced = await replay(path, verify=True, config=config_of(DECIDER))
    assert forced.divergence is not None
    first_tally = next(
        rec.seq for rec in records if rec.type == "DataRejected" and "balance" in str(rec.message)
    )
    assert forced.divergence.seq == first_tally


async def test_a_killed_session_followed_by_a_new_one_replays(tmp_path: Path) -> None:
    """A session cut short (no stop, no SessionStopped) never recorded what its actors would have
    said on stop; replay must not expect it nor carry it into the next session."""
    path = tmp_path / "killed.db"
    await record_session(path, config_of(DECIDER), seed=4, count=150, stop=False)
    later = START_NS + NS_PER_DAY
    await record_session(path, config_of(DECIDER), seed=5, count=150, start_ns=later)
    records = await read_all(path)
    assert [r.type for r in records].count("SessionStopped") == 1
    result = await replay(path, verify=True)
    assert result.ok, result.divergence and result.divergence.describe()
    assert result.sessions == 2
    assert result.outputs_compared == len(outputs(records))


async def test_a_journal_cut_mid_session_replays(tmp_path: Path) -> None:
    path = tmp_path / "cut.db"
    await record_session(path, config_of(DECIDER), seed=6, count=150, stop=False)
    records = await read_all(path)
    assert records[-1].type != "SessionStopped"
    result = await replay(path, verify=True)
    assert result.ok, result.divergence and result.divergence.describe()
    assert result.outputs_compared == len(outputs(records))


# ----------------------------------------------------------------------------- the CLI


def test_cli_replay_verify_ok(recorded: Path) -> None:
    proc = ballast("replay", str(recorded), "--verify")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verify: ok" in proc.stdout
    assert "1 session(s)" in proc.stdout


async def test_cli_replay_verify_names_the_first_divergent_seq(
    recorded: Path, altered_toml: Path
) -> None:
    expected_seq = first_altered_seq(await read_all(recorded), AlteredDecider.ALTER_AFTER)
    proc = ballast("replay", str(recorded), "--verify", "-c", str(altered_toml))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"divergence at seq {expected_seq}:" in proc.stdout
    assert "verify: ok" not in proc.stdout
    recorded_line, replayed_line = proc.stdout.splitlines()[-2:]
    assert recorded_line.strip().startswith("recorded:")
    assert "[altered]" not in recorded_line
    assert replayed_line.strip().startswith("replayed:")
    assert "[altered]" in replayed_line


def test_cli_replay_without_verify_exits_0_even_when_altered(
    recorded: Path, altered_toml: Path
) -> None:
    proc = ballast("replay", str(recorded), "-c", str(altered_toml))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "divergence" not in proc.stdout


async def test_cli_replay_two_sessions(tmp_path: Path) -> None:
    path = tmp_path / "two.db"
    await record_session(path, config_of(DECIDER), seed=11, count=100)
    later = START_NS + NS_PER_DAY
    await record_session(path, config_of(DECIDER), seed=12, count=100, start_ns=later)
    proc = ballast("replay", str(path), "--verify")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 session(s)" in proc.stdout
    assert f"verify: ok, {len(outputs(await read_all(path)))} recorded outputs" in proc.stdout


def test_cli_replay_with_an_unloadable_actor_is_a_config_error(
    recorded: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(config_toml("tests.support.actors:NoSuchActor"))
    proc = ballast("replay", str(recorded), "--verify", "-c", str(bad))
    assert proc.returncode == 2
    assert "engine.actors[0]" in proc.stderr


async def test_a_journal_cut_between_an_input_and_its_outputs_replays(tmp_path: Path) -> None:
    """A killed process may have committed an input but not the outputs it caused."""
    path = tmp_path / "cut.db"
    await record_session(path, config_of(DECIDER), seed=8, count=150, stop=False)
    records = await read_all(path)
    cut = next(
        prev.seq
        for prev, rec in itertools.pairwise(records)
        if type(prev.message).role == "input" and rec.type == "RebalanceDecided"
    )
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DELETE FROM events WHERE seq > ?", (cut,))
    kept = [rec for rec in records if rec.seq <= cut]
    result = await replay(path, verify=True)
    assert result.ok, result.divergence and result.divergence.describe()
    assert result.records == len(kept)
    assert result.outputs_compared == len(outputs(kept))
