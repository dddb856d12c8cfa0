"""Who may write a journal, as a user meets it through the ``ballast`` CLI (real subprocesses, real
files in tmp_path): one writer at a time, a backtest never replaces a journal it did not make, a
damaged journal is never appended to, and a run that fails to start leaves no journal behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ballast.engine.kernel.journal import JournalReader, JournalStats
from tests.support.cli import ENV, ROOT, ballast
from tests.support.paper_config import DATA, Value, paper_config

BALLAST = Path(sys.executable).parent / "ballast"
NEAR_END = "2024-04-17T20:00"  # a few bar times before the end of the bundled data
WEEK = ("--start=2023-01-01", "--end=2023-01-03", "--no-report")  # a short backtest


def config(tmp_path: Path, **paper: Value) -> Path:
    """deploy/paper.toml with its journal at tmp_path/journal.db, the bundled data, no metrics."""
    return paper_config(
        tmp_path / "paper.toml",
        {
            "journal": {"path": str(tmp_path / "journal.db")},
            "paper": {"data_dir": str(DATA), "start": NEAR_END, **paper},
            "metrics": {"enabled": False},
        },
    )


def paper_journal(tmp_path: Path, **paper: Value) -> Path:
    """A paper session's journal, made by a short ``ballast run``."""
    proc = ballast("run", "-c", str(config(tmp_path, **paper)), "--step-s=0", "--max-runtime-s=1")
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "journal.db"


async def stats(path: Path) -> JournalStats:
    async with JournalReader(path) as reader:
        return await reader.stats()


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# ------------------------------------------------------------------------------ item 1: backtest


@pytest.mark.slow
async def test_a_backtest_never_replaces_a_paper_journal_even_with_force(tmp_path: Path) -> None:
    journal = paper_journal(tmp_path)
    before = await stats(journal)
    assert before.by_type["SessionStarted"] == 1

    for force in ((), ("--force",)):
        args = ("backtest", "-c", str(config(tmp_path)), f"--journal={journal}", *WEEK, *force)
        proc = ballast(*args)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        line = one_line(proc.stderr)
        assert str(journal) in line
        assert "paper session" in line
        assert await stats(journal) == before  # not one record lost, none added


@pytest.mark.slow
def test_the_default_backtest_journal_is_not_the_paper_journal(tmp_path: Path) -> None:
    paper = tmp_path / "journal.db"  # the config's [journal] path, shared with `ballast run`
    paper.write_text("the paper session's journal would be here\n")
    cfg = config(tmp_path)
    for _ in range(2):  # the same command twice: it replaces its own earlier journal
        proc = ballast("backtest", "-c", str(cfg), "--strategies=buy_and_hold", *WEEK, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "journal buy_and_hold: var/backtest/journal.db" in proc.stdout
    assert paper.read_text() == "the paper session's journal would be here\n"
    for name in ("journal.db", "journal.calendar.db"):
        with contextlib.closing(sqlite3.connect(tmp_path / "var" / "backtest" / name)) as conn:
            meta = dict(conn.execute("SELECT key, value FROM ballast_meta").fetchall())
        assert meta["session_kind"] == "backtest"


def write_foreign(path: Path, kind: str) -> bytes:
    if kind == "text":
        path.write_text("my notes, not a journal\n")
    else:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
            conn.execute("INSERT INTO customers (name) VALUES ('Ada')")
            conn.commit()
    return path.read_bytes()


@pytest.mark.slow
def test_a_backtest_replaces_a_file_it_did_not_make_only_with_force(tmp_path: Path) -> None:
    cfg = str(config(tmp_path))
    for kind, what in (("text", "not a SQLite file"), ("sqlite", "not a Ballast journal")):
        target = tmp_path / f"{kind}.db"
        content = write_foreign(target, kind)
        refused = ballast("backtest", "-c", cfg, f"--journal={target}", *WEEK)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        line = one_line(refused.stderr)
        assert line.startswith(f"ballast: journal error: {target}: exists and is not a backtest")
        assert what in line
        assert "--force" in line
        assert target.read_bytes() == content
        assert not (tmp_path / f"{kind}.calendar.db").exists()  # refused before any run started

    args = ("backtest", "-c", cfg, f"--journal={target}", "--strategies=buy_and_hold", *WEEK)
    forced = ballast(*args, "--force")
    assert forced.returncode == 0, forced.stderr
    again = ballast(*args)  # now a backtest journal: the same command replaces it without --force
    assert again.returncode == 0, again.stderr
    with contextlib.closing(sqlite3.connect(target)) as conn:
        meta = dict(conn.execute("SELECT key, value FROM ballast_meta").fetchall())
    assert meta["session_kind"] == "backtest"


# ---------------------------------------------------------------------- item 2: a single writer


@contextlib.asynccontextmanager
async def engine(cfg: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """``ballast run`` in the background, once it has announced its journal (it holds it)."""
    proc = await asyncio.create_subprocess_exec(
        str(BALLAST),
        "run",
        "-c",
        str(cfg),
        "--step-s=0.05",
        "--max-runtime-s=60",
        cwd=ROOT,
        env=ENV,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.startswith(b"paper: "), line
        yield proc
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


@pytest.mark.slow
async def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    cfg = config(tmp_path, start="2024-04-10")
    journal = tmp_path / "journal.db"
    async with engine(cfg) as first:
        second = await asyncio.to_thread(ballast, "run", "-c", str(cfg), "--max-runtime-s=2")
        assert second.returncode == 1, second.stdout + second.stderr
        line = one_line(second.stderr)
        assert str(journal) in line
        assert f"pid {first.pid}" in line
        assert second.stdout == ""
        reader = await asyncio.to_thread(ballast, "journal", "stats", str(journal))
        assert reader.returncode == 0, reader.stderr  # readers are not blocked
        first.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(first.communicate(), 30)
        assert first.returncode == 0, err.decode()
        assert b"journal writer failed" not in err
        assert out.splitlines()[-1].startswith(b"stopped: ")
    after = await stats(journal)
    assert after.gap_free
    assert after.by_type["SessionStarted"] == after.by_type["SessionStopped"] == 1


# ------------------------------------------------------------------ item 3: a damaged journal


def damage(path: Path, *, size: int = 200) -> None:
    """Flip ``size`` bytes at the start of the page in the middle of the file."""
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    at = (len(data) // page // 2) * page
    data[at : at + size] = bytes(b ^ 0xFF for b in data[at : at + size])
    path.write_bytes(bytes(data))


@pytest.mark.slow
def test_run_refuses_to_append_to_a_damaged_journal(tmp_path: Path) -> None:
    journal = paper_journal(tmp_path, start="2024-04-01")
    damage(journal)
    damaged = journal.read_bytes()

    proc = ballast("run", "-c", str(config(tmp_path)), "--step-s=0", "--max-runtime-s=1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = one_line(proc.stderr)
    assert str(journal) in line
    assert "damaged" in line
    assert journal.read_bytes() == damaged

    salvage = line.split("`")[1]  # how to save what still reads: do as it says
    assert salvage == f"ballast journal export {journal} --skip-damaged -o FILE"
    saved = tmp_path / "saved.jsonl"
    proc = ballast(*salvage.replace("FILE", str(saved)).split()[1:])
    assert proc.returncode == 1, proc.stderr  # readers see the damage too
    assert one_line(proc.stderr).startswith("ballast journal export: ")
    assert "damaged records left out: seq " in proc.stderr
    assert len(saved.read_text().splitlines()) > 1000


# ---------------------------------------------------------------- item 10: failed starts


def test_a_folder_as_journal_is_one_clear_line(tmp_path: Path) -> None:
    folder = tmp_path / "journals"
    folder.mkdir()
    proc = ballast("run", "-c", str(config(tmp_path)), f"--journal={folder}", "--max-runtime-s=1")
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert line.startswith(f"ballast: journal error: {folder}: ")
    assert "is a folder" in line
    assert os.listdir(folder) == []
    assert not Path(f"{folder}.lock").exists()


def test_a_busy_metrics_port_leaves_no_journal_behind(tmp_path: Path) -> None:
    cfg = paper_config(
        tmp_path / "paper.toml",
        {"journal": {"path": str(tmp_path / "journal.db")}, "paper": {"data_dir": str(DATA)}},
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = ballast("run", "-c", str(cfg), f"--metrics-address=127.0.0.1:{port}")
    assert proc.returncode == 1
    assert one_line(proc.stderr).startswith(f"ballast: metrics: cannot listen on 127.0.0.1:{port}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["paper.toml"]
