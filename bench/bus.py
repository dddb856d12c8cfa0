"""Throughput: market events published, journaled (group commit) and delivered to 4 handlers."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import LiveClock
from ballast.engine.kernel.events import QuoteTick
from ballast.engine.kernel.journal import Journal
from bench.common import quotes, rate_line, run

N_EVENTS = 500_000
"""``BALLAST_BENCH_BUS_EVENTS`` makes a quick run (the tests of the comparison use a few)."""
N_SUBSCRIBERS = 4
TARGET = 150_000


class _Counter:
    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def on_quote(self, message: QuoteTick) -> None:
        self.n += 1


async def _run(path: Path, events: list[QuoteTick]) -> tuple[float, int, list[int], Journal]:
    async with Journal(path) as journal:
        bus = Bus(LiveClock(), journal)
        counters = [_Counter() for _ in range(N_SUBSCRIBERS)]
        for c in counters:
            bus.subscribe(QuoteTick, c.on_quote)
        send = bus.send
        started = time.perf_counter()
        for ev in events:
            await send(ev)
        durable = await journal.sync()
        elapsed = time.perf_counter() - started
        return elapsed, durable, [c.n for c in counters], journal


def main() -> None:
    print(f"== bus: publish -> journal -> {N_SUBSCRIBERS} handlers ==")
    n_events = int(os.environ.get("BALLAST_BENCH_BUS_EVENTS", N_EVENTS))
    events = quotes(n_events)  # created before the timed loop
    with tempfile.TemporaryDirectory(prefix="ballast-bench-") as tmp:
        path = Path(tmp) / "bus.db"
        elapsed, durable, delivered, journal = run(_run(path, events))
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
    print(
        f"  {n_events:,} QuoteTick over 4 symbols, created before timing; timed: "
        "`await bus.send(ev)` for each + final `await journal.sync()` (fsync'd)"
    )
    print(
        f"  journal: {journal.commits} group commits, "
        f"{journal.commit_seconds_total:.3f} s inside commits, {size / 2**20:.1f} MiB on disk; "
        f"durable seq {durable:,}; delivered per handler {sorted(set(delivered))}"
    )
    if durable != n_events or any(n != n_events for n in delivered):
        print("  WARNING: not every event was journaled and delivered")
    print(
        "  "
        + rate_line(
            f"bus+journal, {N_SUBSCRIBERS} subscribers", n_events, elapsed, TARGET, key="bus.rate"
        )
    )
