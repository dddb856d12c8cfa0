"""``ballast run`` as a real subprocess on loopback: paper mode on a copy of deploy/paper.toml over
the bundled data at an accelerated pace, its HTTP endpoints, its journal, its signals, and the
configurations it refuses."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ballast.adapters.data.bundle import MarketBundle
from ballast.engine.app.paper_feed import by_timestamp
from ballast.engine.kernel.events import (
    Bar,
    MarkPriceUpdated,
    Message,
    SessionStarted,
    SessionStopped,
)
from ballast.engine.kernel.journal import Journal, JournalReader
from tests.support.cli import ballast
from tests.support.http_get import HttpResponse, http_get
from tests.support.paper_config import DATA, PAPER, Overrides, Value, paper_config, rewrite
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[1]
BALLAST = Path(sys.executable).parent / "ballast"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
FAST = ("--step-s=0.05", "--max-runtime-s=60")  # the runtime is a safety net, never reached
LAST_BAR = "2024-04-18T00:00"  # close time of the last bundled bar


def bar_times(start: str) -> tuple[int, int]:
    """(bar times, market events) of the bundled data from ``start`` on."""
    bundle = MarketBundle.load(DATA, ["BTC", "ETH"], "USDT", start=start)
    groups = [events for _, events in by_timestamp(bundle.events())]
    return len(groups), sum(len(events) for events in groups)


def config(tmp_path: Path, **sections: Mapping[str, Value]) -> Path:
    """deploy/paper.toml with the journal in tmp_path, this checkout's data, data stale after
    1 s and a fast rebalance cadence; ``sections`` override more."""
    overrides: dict[str, dict[str, Value]] = {
        "journal": {"path": str(tmp_path / "journal.db")},
        "paper": {"data_dir": str(DATA)},
        "risk": {"stale_after_s": 1},
        "execution": {"cooldown_s": 2.0, "check_interval_s": 1.0},
    }
    for name, keys in sections.items():
        overrides.setdefault(name, {}).update(keys)
    merged: Overrides = overrides
    return paper_config(tmp_path / "paper.toml", merged)


@dataclass
class Engine:
    """A running ``ballast run``: its process, the stdout lines read so far, its stderr log."""

    proc: asyncio.subprocess.Process
    log: Path
    lines: list[str] = field(default_factory=list)
    port: int = 0

    async def line(self, prefix: str, *, within_s: float = 10) -> str:
        """The next stdout line starting with ``prefix`` (lines before it are kept too)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + within_s
        while True:
            left = deadline - time.monotonic()
            raw = await asyncio.wait_for(self.proc.stdout.readline(), max(left, 0.01))
            assert raw, f"stdout closed before {prefix!r}: {self.lines}\n{self.log.read_text()}"
            self.lines.append(raw.decode().rstrip("\n"))
            if self.lines[-1].startswith(prefix):
                return self.lines[-1]

    async def get(self, path: str) -> HttpResponse:
        return await http_get("127.0.0.1", self.port, path)

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send ``sig``, wait for the exit; the rest of stdout is read into :attr:`lines`."""
        self.proc.send_signal(sig)
        assert self.proc.stdout is not None
        rest = await asyncio.wait_for(self.proc.stdout.read(), 15)
        self.lines.extend(rest.decode().splitlines())
        return await asyncio.wait_for(self.proc.wait(), 15)


@contextlib.asynccontextmanager
async def running(tmp_path: Path, config_file: Path, *args: str) -> AsyncIterator[Engine]:
    log = tmp_path / "engine.log"
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            str(BALLAST),
            "run",
            "-c",
            str(config_file),
            *args,
            cwd=ROOT,
            env=ENV,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    try:
        yield Engine(proc, log)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def served(engine: Engine) -> None:
    """Wait for ``listening 127.0.0.1:PORT`` (the first line) and note the port."""
    line = await engine.line("listening ", within_s=30)
    assert engine.lines == [line], engine.lines
    host, _, port = line.removeprefix("listening ").rpartition(":")
    assert host == "127.0.0.1"
    engine.port = int(port)


async def until_status(engine: Engine, path: str, status: int, *, within_s: float) -> HttpResponse:
    last: list[HttpResponse] = []

    async def check() -> bool:
        last[:] = [await engine.get(path)]
        return last[0].status == status

    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, f"{path} never {status}: {last[0].text}"
        await asyncio.sleep(0.05)
    return last[0]


async def until_metric(engine: Engine, sample: str, *, within_s: float) -> float:
    """Wait until ``/metrics`` has ``sample`` (name and labels) with a value above 0."""
    deadline = time.monotonic() + within_s
    while True:
        text = (await engine.get("/metrics")).text
        values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(sample)]
        if values and values[0] > 0:
            return values[0]
        assert time.monotonic() < deadline, f"no {sample} > 0 in /metrics:\n{text}"
        await asyncio.sleep(0.05)


async def journal_messages(path: Path) -> list[Message]:
    async with JournalReader(path) as reader:
        stats = await reader.stats()
        assert stats.gap_free
        assert await reader.integrity_check() == "ok"
        return await reader.messages()


# ------------------------------------------------------------------------------ paper mode


async def test_paper_run_serves_trades_journals_and_stops_cleanly_on_sigterm(
    tmp_path: Path,
) -> None:
    started_ns = time.time_ns()
    journal = tmp_path / "journal.db"
    args = ("--metrics-address=127.0.0.1:0", *FAST)
    async with running(tmp_path, config(tmp_path, risk={"stale_after_s": 3}), *args) as engine:
        await served(engine)
        health = await engine.get("/healthz")
        assert (health.status, health.text) == (200, "ok\n")
        ready = await until_status(engine, "/readyz", 200, within_s=10)
        assert ready.json() == {"status": "ready", "reasons": []}
        metrics = await engine.get("/metrics")
        assert metrics.status == 200
        assert 'ballast_nav{currency="USDT"}' in metrics.text
        await until_metric(engine, 'ballast_orders_total{status="filled"}', within_s=10)
        await eventually(journal.exists, what="the journal file")
        assert await engine.stop(signal.SIGTERM) == 0, engine.log.read_text()
    assert engine.lines[1].startswith(f"paper: {DATA} 2022-04-18T01:00 → {LAST_BAR}")
    assert engine.lines[-1].startswith("stopped: "), engine.lines
    assert "Traceback" not in engine.log.read_text()

    messages = await journal_messages(journal)
    kinds = {type(m).__name__ for m in messages}
    assert {"SessionStarted", "InstrumentsLoaded", "Bar", "MarkPriceUpdated"} <= kinds
    assert {"RebalanceDecided", "OrderFilled"} <= kinds  # the all-cash start is rebalanced
    assert isinstance(messages[0], SessionStarted)
    assert messages[0].clock == "LiveClock"
    assert isinstance(messages[-1], SessionStopped)
    assert messages[-1].reason == "signal:SIGTERM"
    bars = [m for m in messages if isinstance(m, Bar | MarkPriceUpdated)]
    assert all(m.ts_event >= started_ns for m in bars)  # re-stamped to wall-clock time
    async with Journal(journal) as reopened:  # closed cleanly: the writer continues after it
        assert reopened.opened_at_seq == len(messages)
    # a live-clock session replays on the simulated clock to the same decisions and verdicts
    verified = ballast("replay", "--verify", str(journal))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "verify: ok" in verified.stdout


async def test_feed_end_is_reported_and_the_engine_serves_stale_until_signalled(
    tmp_path: Path,
) -> None:
    steps, events = bar_times("2024-04-17")
    short = config(tmp_path, paper={"start": "2024-04-17"})
    args = ("--metrics-address=127.0.0.1:0", "--step-s=0.02", "--max-runtime-s=60")
    async with running(tmp_path, short, *args) as engine:
        await served(engine)
        ended = await engine.line("feed: ", within_s=15)
        assert ended.startswith(
            f"feed: data exhausted at {LAST_BAR} after {events:,} market events"
        )
        stale = await until_status(engine, "/readyz", 503, within_s=10)
        assert "data_stale:BTC/USDT" in stale.json()["reasons"]
        assert (await engine.get("/healthz")).status == 200
        assert engine.proc.returncode is None
        assert await engine.stop(signal.SIGTERM) == 0, engine.log.read_text()
    assert engine.lines[-1].startswith(f"stopped: {events:,} market events over {steps} bar times")


async def test_sigusr1_halts_the_feed_and_the_engine_keeps_serving(tmp_path: Path) -> None:
    args = ("--metrics-address=127.0.0.1:0", *FAST)
    async with running(tmp_path, config(tmp_path), *args) as engine:
        await served(engine)
        await until_status(engine, "/readyz", 200, within_s=10)
        engine.proc.send_signal(signal.SIGUSR1)
        assert (await engine.line("feed: ")).startswith("feed: halted (SIGUSR1) at 2022-04-")
        stale = await until_status(engine, "/readyz", 503, within_s=10)
        assert "data_stale:BTC/USDT" in stale.json()["reasons"]
        assert (await engine.get("/healthz")).status == 200
        assert await engine.stop(signal.SIGTERM) == 0, engine.log.read_text()


async def test_without_metrics_nothing_is_served_and_sigint_stops_it(tmp_path: Path) -> None:
    start = "2024-04-17T20:00"
    steps, _ = bar_times(start)
    quiet = config(tmp_path, metrics={"enabled": False}, paper={"start": start})
    async with running(tmp_path, quiet, "--step-s=0.02", "--max-runtime-s=60") as engine:
        await engine.line("feed: data exhausted", within_s=30)
        assert engine.lines[0].startswith("paper: ")
        assert await engine.stop(signal.SIGINT) == 0, engine.log.read_text()
    assert not any(line.startswith("listening") for line in engine.lines)
    messages = await journal_messages(tmp_path / "journal.db")
    assert sum(isinstance(m, Bar) for m in messages) == steps * 4  # spot and perp of BTC, ETH
    assert isinstance(messages[-1], SessionStopped)
    assert messages[-1].reason == "signal:SIGINT"


@pytest.mark.slow
async def test_max_runtime_stops_it_and_a_second_run_continues_the_journal(tmp_path: Path) -> None:
    paper = config(tmp_path, metrics={"enabled": False})
    for _ in range(2):
        async with running(tmp_path, paper, "--step-s=0.05", "--max-runtime-s=1") as engine:
            assert await asyncio.wait_for(engine.proc.wait(), 30) == 0, engine.log.read_text()
    messages = await journal_messages(tmp_path / "journal.db")
    starts = [m for m in messages if isinstance(m, SessionStarted)]
    stops = [m for m in messages if isinstance(m, SessionStopped)]
    assert len(starts) == len(stops) == 2
    assert starts[0].session_id != starts[1].session_id
    assert [stop.reason for stop in stops] == ["max_runtime", "max_runtime"]
    assert starts[1].resumed_from_seq == messages.index(stops[0]) + 1  # the second one resumed


def test_journal_and_metrics_address_options_override_the_config(tmp_path: Path) -> None:
    elsewhere = tmp_path / "other" / "j.db"
    proc = ballast(
        "run",
        "-c",
        str(config(tmp_path, paper={"start": "2024-04-17T23:00"})),
        f"--journal={elsewhere}",
        "--metrics-address=127.0.0.1:0",
        "--step-s=0",
        "--max-runtime-s=1.5",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("listening 127.0.0.1:")
    assert f"journal {elsewhere}" in proc.stdout
    assert elsewhere.exists()
    assert not (tmp_path / "journal.db").exists()


# ------------------------------------------------------------------- what it refuses


def test_the_binance_venue_needs_its_keys(tmp_path: Path) -> None:
    """(The live run itself: tests/test_live_run.py; the keys: tests/test_live_config.py.)"""
    live = config(
        tmp_path,
        venue={"kind": "binance", "api_key_env": "NO_SUCH_KEY", "api_secret_env": "NO_SUCH_SECRET"},
    )
    proc = ballast("run", "-c", str(live))
    assert proc.returncode == 2
    assert "NO_SUCH_KEY and NO_SUCH_SECRET" in proc.stderr
    assert proc.stdout == ""
    assert not (tmp_path / "journal.db").exists()


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"risk": {"stale_after_s": 0}}, "risk.stale_after_s"),
        ({"venue": {"kind": "kraken"}}, "venue.kind"),
        ({"metrics": {"address": "nowhere"}}, "metrics.address"),
    ],
)
def test_a_bad_config_exits_2_naming_the_key(
    tmp_path: Path, overrides: dict[str, dict[str, Value]], key: str
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(rewrite(PAPER.read_text(), overrides))
    proc = ballast("run", "-c", str(bad))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"ballast: config error: {bad}: {key}: "), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "option", ["--step-s=-1", "--step-s=nan", "--max-runtime-s=0", "--metrics-address=9464"]
)
def test_bad_options_exit_2(tmp_path: Path, option: str) -> None:
    proc = ballast("run", "-c", str(config(tmp_path)), option)
    assert proc.returncode == 2
    assert "usage:" in proc.stderr


def test_missing_market_data_exits_1_naming_the_folder(tmp_path: Path) -> None:
    proc = ballast("run", "-c", str(config(tmp_path)), f"--data={tmp_path / 'nothing'}")
    assert proc.returncode == 1
    assert f"ballast: paper mode: {tmp_path / 'nothing'}: no spot klines for BTC" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_journal_folder_that_cannot_be_created_exits_1(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    proc = ballast("run", "-c", str(config(tmp_path)), f"--journal={tmp_path / 'file' / 'j.db'}")
    assert proc.returncode == 1
    assert proc.stderr.startswith("ballast: journal error: "), proc.stderr
    assert "cannot create its folder" in proc.stderr


def test_a_busy_metrics_port_exits_1(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = ballast("run", "-c", str(config(tmp_path)), f"--metrics-address=127.0.0.1:{port}")
    assert proc.returncode == 1
    assert f"ballast: metrics: cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr
