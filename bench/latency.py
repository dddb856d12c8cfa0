"""Latency at a steady 10,000 events/s with the journal on.

Pacing: one producer task busy-waits against ``time.perf_counter_ns`` on a fixed schedule
(instant k = start + k * 100 us), yielding to the loop with ``await asyncio.sleep(0)`` between
deadline checks, so the journal's group commit and the mailbox consumer run in between. Exactly
one event is published per scheduled instant, each in its own loop iteration; a late instant is
published as soon as possible and never skipped (schedule lateness is reported). ``call_at`` is
not used: uvloop timers have millisecond resolution, which would publish 10 events per tick.

Two paths are measured for every event, from ``perf_counter_ns()`` taken just before
``await bus.send(ev)`` (kept in a dict keyed by the event's unique ``ts_init``):
- bus handler: entry of a synchronous handler (the 4th of 4 subscribers); dispatch is inline;
- mailbox: a consumer task awaiting ``Mailbox.get()``, which adds a loop wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

from ballast.engine.kernel.bus import Bus, Mailbox
from ballast.engine.kernel.clock import NS_PER_MICROSECOND, NS_PER_SECOND, LiveClock
from ballast.engine.kernel.events import QuoteTick
from ballast.engine.kernel.journal import Journal
from bench.common import PRICES, SIZES, SYMBOLS, figure, percentile, run, verdict

RATE = 10_000
SECONDS = 5.0
WARMUP_S = 0.5
TARGET_P99_US = 200.0


class _Probe:
    def __init__(self) -> None:
        self.sent: dict[int, int] = {}
        self.bus_ns: list[int] = []
        self.box_ns: list[int] = []
        self.lateness_ns: list[int] = []

    def on_quote(self, message: QuoteTick) -> None:
        now = time.perf_counter_ns()
        self.bus_ns.append(now - self.sent[message.ts_init])


def _noop(message: QuoteTick) -> None:
    pass


async def _consume(box: Mailbox, probe: _Probe) -> None:
    get = box.get
    sent = probe.sent
    out = probe.box_ns
    clock = time.perf_counter_ns
    while True:
        _, message = await get()
        out.append(clock() - sent[message.ts_init])


async def _run(path: Path) -> tuple[_Probe, float, int, int]:
    probe = _Probe()
    async with Journal(path) as journal:
        bus = Bus(LiveClock(), journal)
        for i in range(3):
            bus.subscribe(QuoteTick, _noop, name=f"noop{i}")
        bus.subscribe(QuoteTick, probe.on_quote, name="probe")
        box = bus.mailbox([QuoteTick], name="probe-box", coalesce_after=None)
        consumer = asyncio.create_task(_consume(box, probe))
        await asyncio.sleep(0.05)

        interval = NS_PER_SECOND // RATE
        total = int((SECONDS + WARMUP_S) * RATE)
        pc = time.perf_counter_ns
        sleep = asyncio.sleep
        send = bus.send
        sent = probe.sent
        lateness = probe.lateness_ns
        wall0 = time.time_ns()
        start = pc() + interval
        deadline = start
        for i in range(total):
            while pc() < deadline:
                await sleep(0)
            ts = wall0 + (deadline - start)  # unique per event: the scheduled instant
            ev = QuoteTick(
                ts,
                ts,
                SYMBOLS[i & 3],
                PRICES[i & 63],
                PRICES[(i + 1) & 63],
                SIZES[i & 15],
                SIZES[(i + 3) & 15],
            )
            t0 = pc()
            sent[ts] = t0
            await send(ev)
            lateness.append(t0 - deadline)
            deadline += interval
            await sleep(0)
        elapsed = (pc() - start) / NS_PER_SECOND
        await journal.sync()
        await asyncio.sleep(0.01)
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        return probe, elapsed, total, journal.commits


def _dist(label: str, values_ns: list[int], target_us: float | None, key: str | None) -> str:
    v = sorted(values_ns)
    us = [percentile(v, q) / NS_PER_MICROSECOND for q in (50, 90, 99, 99.9)]
    if key is not None:
        figure(f"{key}.p50", f"{label}, p50", us[0], "us", better="lower")
        figure(f"{key}.p99", f"{label}, p99", us[2], "us", better="lower", target=target_us)
    line = (
        f"{label}: p50 {us[0]:.1f} us, p90 {us[1]:.1f} us, p99 {us[2]:.1f} us, "
        f"p99.9 {us[3]:.1f} us, max {v[-1] / NS_PER_MICROSECOND:.1f} us  (n={len(v):,})"
    )
    if target_us is not None:
        line += f"  p99 target <= {target_us:.0f} us {verdict(us[2] <= target_us)}"
    return line


def main() -> None:
    print(f"== latency: steady {RATE:,} events/s for {SECONDS:.0f} s, journal on ==")
    with tempfile.TemporaryDirectory(prefix="ballast-bench-") as tmp:
        probe, elapsed, total, commits = run(_run(Path(tmp) / "latency.db"))
    skip = int(WARMUP_S * RATE)
    print(
        f"  paced by perf_counter_ns busy-wait + asyncio.sleep(0), one publish per instant; "
        f"achieved {total / elapsed:,.0f} events/s; first {WARMUP_S} s ({skip:,} events) "
        f"discarded as warm-up; {commits} group commits in the background"
    )
    if len(probe.bus_ns) != total or len(probe.box_ns) != total:
        print(
            f"  WARNING: {total:,} published, {len(probe.bus_ns):,} reached the handler, "
            f"{len(probe.box_ns):,} the mailbox consumer"
        )
    print("  " + _dist("schedule lateness (pacing)", probe.lateness_ns[skip:], None, None))
    print(
        "  "
        + _dist(
            "publish -> bus handler (4th of 4)", probe.bus_ns[skip:], TARGET_P99_US, "latency.bus"
        )
    )
    print(
        "  "
        + _dist("feed -> handler via Mailbox.get()", probe.box_ns[skip:], None, "latency.mailbox")
    )
