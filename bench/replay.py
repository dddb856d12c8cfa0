"""Replay: read + decode rate of a 1,000,000-record journal, and the full replay() rate."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec

from ballast.engine.app.replay import replay
from ballast.engine.kernel.actor import Actor
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_MILLISECOND, Clock
from ballast.engine.kernel.config import Config
from ballast.engine.kernel.events import SessionStarted
from ballast.engine.kernel.journal import Journal, JournalReader
from bench.common import START_NS, figure, mixed, rate_line, run

N_RECORDS = 1_000_000
TARGET_READ = 500_000


async def _write(path: Path, n: int) -> dict[str, int]:
    """Untimed setup: a SessionStarted, then ``n - 1`` mixed records, committed in groups."""
    counts: dict[str, int] = {}
    async with Journal(path) as journal:
        config_json = msgspec.json.encode(Config()).decode()
        journal.append(SessionStarted(START_NS, START_NS, "bench", "0", "LiveClock", config_json))
        for i in range(1, n):
            ev = mixed(i, START_NS + i * NS_PER_MILLISECOND)
            name = type(ev).__name__
            counts[name] = counts.get(name, 0) + 1
            journal.append(ev)
            if i % 50_000 == 0:
                await journal.commit()
    return counts


async def _read(path: Path) -> tuple[int, float]:
    """What replay reads with: ``reader.chunks()``, every record of every chunk touched."""
    n = 0
    async with JournalReader(path) as reader:
        started = time.perf_counter()
        async for chunk in reader.chunks():
            for _rec in chunk:
                n += 1
        elapsed = time.perf_counter() - started
    return n, elapsed


async def _read_one_by_one(path: Path) -> tuple[int, float]:
    n = 0
    async with JournalReader(path) as reader:
        started = time.perf_counter()
        async for _rec in reader.records():
            n += 1
        elapsed = time.perf_counter() - started
    return n, elapsed


def _no_actors(config: Config, bus: Bus, clock: Clock) -> Sequence[Actor]:
    return ()


async def _replay(path: Path) -> tuple[int, int, float]:
    started = time.perf_counter()
    result = await replay(path, actors=_no_actors)
    elapsed = time.perf_counter() - started
    return result.records, result.inputs, elapsed


def main() -> None:
    print(f"== replay: {N_RECORDS:,}-record journal ==")
    with tempfile.TemporaryDirectory(prefix="ballast-bench-") as tmp:
        path = Path(tmp) / "replay.db"
        t = time.perf_counter()
        counts = run(_write(path, N_RECORDS))
        os.sync()  # untimed: the written pages reach the disk now, not during the timed reads
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
        mix = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
        print(
            f"  setup (untimed): wrote {N_RECORDS:,} records in {time.perf_counter() - t:.1f} s, "
            f"{size / 2**20:.0f} MiB: SessionStarted 1, {mix}"
        )
        n, elapsed = run(_read(path))
        print(
            "  "
            + rate_line(
                "replay read+decode (`async for chunk in JournalReader(path).chunks()`, "
                "as replay reads)",
                n,
                elapsed,
                TARGET_READ,
                key="replay.read",
            )
        )
        n, elapsed = run(_read_one_by_one(path))
        figure(
            "replay.one_by_one",
            "replay, one record per await",
            n / elapsed,
            "records/s",
            better="higher",
        )
        print(
            f"  one record per await (`async for rec in reader.records()`): {n / elapsed:,.0f} "
            "records/s (no target, for reference)"
        )
        records, inputs, elapsed = run(_replay(path))
        rate = records / elapsed
        figure(
            "replay.full",
            "full replay(path), bus without actors",
            rate,
            "records/s",
            better="higher",
        )
        print(
            f"  full replay(path), bus without actors: {rate:,.0f} records/s "
            f"({inputs:,} inputs republished; {records:,} records in {elapsed:.3f} s; "
            "no target, for reference)"
        )
