"""CLI edges: a closed stdout (``ballast … | head -1``) ends the command quietly, an output file
that cannot be created is one line, a negative count is a usage error. Never a traceback."""

from __future__ import annotations

import os
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_SECOND, SimulatedClock
from ballast.engine.kernel.events import QuoteTick
from ballast.engine.kernel.journal import Journal
from tests.conftest import START_NS
from tests.support.cli import BALLAST, ENV, ROOT, ballast

D = Decimal


@pytest.fixture
async def journal_path(tmp_path: Path) -> Path:
    path = tmp_path / "journal.db"
    async with Journal(path) as journal:
        bus = Bus(SimulatedClock(START_NS), journal)
        for i in range(50):
            ts = START_NS + i * NS_PER_SECOND
            bus.publish(QuoteTick(ts, ts, "BTC/USDT", D(40_000) + i, D(40_001) + i, D(1), D(1)))
    return path


def run_into_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """``ballast ARGS`` with a stdout whose reader has already gone (as ``| head -1`` leaves
    it once head has its line): every write fails with EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [str(BALLAST), *args],
            cwd=ROOT,
            env=ENV,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)


def assert_clean(proc: subprocess.CompletedProcess[str], codes: tuple[int, ...]) -> None:
    assert proc.returncode in codes, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Exception ignored" not in proc.stderr
    assert len(proc.stderr.splitlines()) <= 1, proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("journal", "export", "{journal}"),
        ("journal", "tail", "{journal}", "-n", "5000"),
        ("journal", "stats", "{journal}"),
        ("config", "schema"),
        ("config", "check", "examples/paper.toml"),
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_a_closed_stdout_ends_the_command_quietly(
    journal_path: Path, args: tuple[str, ...]
) -> None:
    proc = run_into_closed_pipe(*(a.format(journal=journal_path) for a in args))
    assert_clean(proc, (0, 1))


def test_export_to_a_folder_that_does_not_exist_is_one_line(
    journal_path: Path, tmp_path: Path
) -> None:
    target = tmp_path / "nonexistent" / "dir" / "x.jsonl"
    proc = ballast("journal", "export", str(journal_path), "-o", str(target))
    assert_clean(proc, (1, 2))
    assert str(target) in proc.stderr
    assert not target.exists()


def test_export_of_a_missing_journal_leaves_no_output_file(tmp_path: Path) -> None:
    target = tmp_path / "x.jsonl"
    proc = ballast("journal", "export", str(tmp_path / "missing.db"), "-o", str(target))
    assert_clean(proc, (1,))
    assert not target.exists()


def test_tail_with_a_negative_count_is_a_usage_error(journal_path: Path) -> None:
    proc = ballast("journal", "tail", str(journal_path), "-n", "-3")
    assert proc.returncode == 2
    assert "-n" in proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
