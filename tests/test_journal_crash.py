"""Crash campaign: SIGKILL a process that is appending to a journal, at random moments, repeatedly.

Acceptance: every reopened journal is a gap-free prefix of what was appended, holding every record
reported durable before the kill, each record exactly as written; and it can be continued.

Each journal file is reused over several rounds, so reopen-after-kill-and-continue is exercised
too: the killed writer's successor (this test, then the next writer) must carry on at the next
seq. The kill moments vary: while the writer process starts and opens (or creates) the file, right
after a ``durable`` report, a random fraction of a burst later, and early in a run before any
report. The plan is seeded, so the campaign is the same on every run; where exactly a kill lands
is up to the scheduler, and every assertion holds wherever it lands.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import pytest

from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.events import OrderFilled, QuoteTick
from ballast.engine.kernel.journal import Journal, JournalReader
from tests.support.crash_writer import event_for, needs_sync

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
FILES: Final = 6
ROUNDS_PER_FILE: Final = 4  # 24 kills in all: one on a new file, three on a killed-before one
CREATION_KILLS: Final = 20
LINE_TIMEOUT_S: Final = 60.0  # a safety net against a hung writer, not a performance check

KillMode = Literal["startup", "after_report", "mid_burst", "no_report"]


@dataclass(frozen=True)
class Kill:
    mode: KillMode
    reports: int  # durable reports to wait for (after_report, mid_burst)
    delay_s: float  # extra random delay before the kill


@dataclass
class Outcome:
    lines: list[str]
    returncode: int
    stderr: str

    @property
    def ready_at(self) -> int | None:
        ready = [int(line.split()[1]) for line in self.lines if line.startswith("ready ")]
        assert len(ready) <= 1, self.lines
        return ready[0] if ready else None

    @property
    def durable(self) -> list[int]:
        return [int(line.split()[1]) for line in self.lines if line.startswith("durable ")]


def campaign(seed: int) -> list[Kill]:
    """The kill plan, round by round: file 0 round 0 first, then file 0 round 1, and so on."""
    rng = random.Random(seed)
    counts: dict[KillMode, int] = {"startup": 2, "no_report": 4, "after_report": 8, "mid_burst": 8}
    modes = [mode for mode, n in counts.items() for _ in range(n)]
    rng.shuffle(modes)
    # The first runs on files 0 and 1 are killed while the journal is being created.
    modes.insert(0, "startup")
    modes.insert(ROUNDS_PER_FILE, "startup")
    assert len(modes) == FILES * ROUNDS_PER_FILE
    return [planned_kill(mode, rng) for mode in modes]


def planned_kill(mode: KillMode, rng: random.Random) -> Kill:
    if mode == "startup":
        return Kill(mode, 0, rng.uniform(0, 0.003))
    if mode == "no_report":
        return Kill(mode, 0, rng.uniform(0, 0.02))
    if mode == "after_report":
        return Kill(mode, rng.randint(1, 30), 0.0)
    return Kill(mode, rng.randint(1, 30), rng.uniform(0, 0.015))


async def run_and_kill(path: Path, seed: int, kill: Kill) -> Outcome:
    """Start the writer on ``path``, SIGKILL it at the planned moment, collect what it said."""
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.crash_writer",
        str(path),
        str(seed),
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    lines: list[str] = []

    async def next_line() -> str:
        assert proc.stdout is not None
        async with asyncio.timeout(LINE_TIMEOUT_S):
            raw = await proc.stdout.readline()
        if not raw:  # the writer died on its own: show why
            assert proc.stderr is not None
            err = (await proc.stderr.read()).decode(errors="replace")
            raise AssertionError(f"writer exited before the kill ({kill}):\n{err}")
        line = raw.decode().strip()
        lines.append(line)
        return line

    try:
        if kill.mode == "startup":
            # The write-ahead log appears when the writer opens the journal, just before it
            # creates or checks the schema (a cleanly closed journal has none). Polled without
            # sleeping: the interesting moments are a fraction of a millisecond apart.
            wal = Path(f"{path}-wal")
            async with asyncio.timeout(LINE_TIMEOUT_S):
                while not wal.exists() and proc.returncode is None:  # noqa: ASYNC110
                    await asyncio.sleep(0)
            # Spin rather than sleep: the loop's timers are too coarse for these delays.
            until = time.perf_counter() + kill.delay_s
            while time.perf_counter() < until:
                pass
        elif kill.mode == "no_report":
            assert (await next_line()).startswith("ready ")
            await asyncio.sleep(kill.delay_s)
        else:
            assert (await next_line()).startswith("ready ")
            reports = 0
            while reports < kill.reports:
                if (await next_line()).startswith("durable "):
                    reports += 1
            await asyncio.sleep(kill.delay_s)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it died just now: returncode tells
                os.kill(proc.pid, signal.SIGKILL)
        rest = await proc.stdout.read()
        stderr = (await proc.stderr.read()).decode(errors="replace")
        returncode = await proc.wait()

    # Lines still in the pipe were written before the kill too: they count as reports.
    lines += rest.decode().splitlines()
    return Outcome(lines, returncode, stderr)


async def verify_prefix(path: Path, seed: int) -> int:
    """The journal holds seq 1..N exactly as the writer produced them. Returns N."""
    async with JournalReader(path, chunk=997) as reader:
        assert await reader.integrity_check() == "ok"
        stats = await reader.stats()
        assert stats.gap_free, stats
        last = stats.last_seq or 0
        assert stats.count == last
        if last:
            assert stats.first_seq == 1
        expected_seq = 0
        async for rec in reader.records():
            expected_seq += 1
            assert rec.seq == expected_seq
            expected = event_for(seed, rec.seq)
            assert rec.message == expected, f"seq {rec.seq}"
            assert rec.type == type(expected).__name__
            assert (rec.ts_event, rec.ts_init) == (expected.ts_event, expected.ts_init)
        assert expected_seq == last
    return last


async def continue_journal(path: Path, seed: int, expected_last: int, extra: int) -> int:
    """Reopen the killed journal as a writer and append ``extra`` records; returns the new last."""
    async with Journal(path, batch_size=16) as journal:
        assert journal.opened_at_seq == expected_last
        assert journal.last_seq == journal.durable_seq == expected_last
        for i in range(1, extra + 1):
            assert journal.append(event_for(seed, expected_last + i)) == expected_last + i
        assert await journal.sync() == expected_last + extra
    return expected_last + extra


@pytest.mark.slow
async def test_sigkilled_writer_leaves_a_gap_free_durable_prefix(tmp_path: Path) -> None:
    kills = campaign(seed=20240611)
    rng = random.Random(7)
    stats = {"records": 0, "durable_reports": 0, "killed_before_ready": 0}

    for file_no in range(FILES):
        path = tmp_path / f"crash-{file_no}.db"
        seed = 1000 + file_no
        last = 0  # last seq known to be in the file (every one of them durable)
        for round_no in range(ROUNDS_PER_FILE):
            kill = kills[file_no * ROUNDS_PER_FILE + round_no]
            where = f"file {file_no} round {round_no} {kill}"
            outcome = await run_and_kill(path, seed, kill)
            assert outcome.returncode == -signal.SIGKILL, f"{where}: {outcome.stderr}"

            durable = outcome.durable
            assert durable == sorted(set(durable)), where
            if outcome.ready_at is None:
                # Killed while starting or opening: nothing appended, nothing lost.
                assert not durable, where
                stats["killed_before_ready"] += 1
                if last == 0:
                    # A new file killed while being created: a writer must still open it.
                    async with Journal(path) as journal:
                        assert journal.opened_at_seq == 0, where
                    survived = 0
                else:
                    survived = await verify_prefix(path, seed)
                    assert survived == last, where
            else:
                assert outcome.ready_at == last, f"{where}: reopened at the wrong seq"
                survived = await verify_prefix(path, seed)
                assert survived >= last, f"{where}: lost records from before this run"
                if durable:
                    assert durable[0] > last, where
                    assert survived >= durable[-1], (
                        f"{where}: seq {durable[-1]} was reported durable, "
                        f"the reopened journal ends at {survived}"
                    )
            stats["records"] += survived - last
            stats["durable_reports"] += len(durable)
            last = await continue_journal(path, seed, survived, extra=rng.randint(1, 5))

        # After the last round the continued journal is still one gap-free stream.
        assert await verify_prefix(path, seed) == last

    # The campaign did what it claims: records were written and durable points were crossed.
    assert stats["durable_reports"] >= sum(k.reports for k in kills) >= 100, stats
    assert stats["records"] >= stats["durable_reports"], stats


@pytest.mark.slow
async def test_a_journal_killed_while_being_created_can_be_opened(tmp_path: Path) -> None:
    """Kill the writer the moment its new file appears, while the schema is being created.

    A creation cut short must leave a file that the next writer opens (and finishes creating),
    never tables without the schema version, which would be refused forever.
    """
    for attempt in range(CREATION_KILLS):
        path = tmp_path / f"new-{attempt}.db"
        # Sweep the kill over the first 3 ms after the file is opened: creating the schema
        # takes a fraction of that (about 0.6 to 1 ms after the log appears, on a laptop).
        kill = Kill("startup", 0, 0.00015 * attempt)
        outcome = await run_and_kill(path, attempt, kill)
        assert outcome.returncode == -signal.SIGKILL, outcome.stderr
        async with Journal(path) as journal:
            opened_at = journal.opened_at_seq
            journal.append(event_for(attempt, opened_at + 1))
        assert await verify_prefix(path, attempt) == opened_at + 1
        if outcome.durable:
            assert opened_at >= outcome.durable[-1]


def test_writer_stream_is_deterministic_and_mixed() -> None:
    stream = [event_for(5, seq) for seq in range(1, 3001)]
    assert stream == [event_for(5, seq) for seq in range(1, 3001)]
    assert stream != [event_for(6, seq) for seq in range(1, 3001)]
    kinds = {type(m) for m in stream}
    assert kinds == {QuoteTick, SubmitOrder, OrderFilled}
    synced = sum(needs_sync(m) for m in stream)
    assert 30 <= synced <= 300  # market data in bursts, with durable points in between
    assert [m.ts_event for m in stream] == sorted(m.ts_event for m in stream)
