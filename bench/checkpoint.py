"""Durable writes on the event loop's thread across WAL checkpoints (issue 11: quote → order).

A live journal (``durable_on_loop``, as ``[journal] durable_write = "loop"``) takes a stream of
quotes, group-committed on SQLite's thread, and every ``EVERY`` quotes an order's durable write
(append + ``sync``: insert, commit, fdatasync of the WAL) on the loop's thread, timed. The run
writes enough to cross the 1000-page checkpoint threshold several times.

Two journals, interleaved over several rounds (the machine is shared and noisy):
- ``sqlite-auto``: SQLite's automatic checkpoint (``checkpoint_pages=0``, the journal before
  issue 11): it runs inside whichever commit crosses the threshold, at times an order's;
- ``checkpointer``: the journal's own checkpointer (the default), off the write path.

Besides latency it counts the durable writes during which the database file grew: in WAL mode
only a checkpoint writes it. With ``sqlite-auto`` that is a checkpoint run by the order's own
commit, on the loop's thread (a count, not a timing: noise-free); with ``checkpointer`` it is one
running beside it on the checkpointer's thread (the write never runs one itself: see
tests/test_journal_checkpoint.py), which still shares the disk with the write's fdatasync.
Quotes are produced as fast as the loop goes and an order every 200: a stress, not a live rate.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Final

from ballast.engine.kernel.events import TimerFired
from ballast.engine.kernel.journal import Journal
from bench.common import START_NS, figure, percentile, quote, run

QUOTES: Final = 150_000
EVERY: Final = 200
ROUNDS: Final = 3
MODES: Final = {"sqlite-auto": 0, "checkpointer": None}


async def _one(path: Path, pages: int | None) -> tuple[list[int], int, int]:
    """Durable-write latencies (ns, sorted), how many ran during a checkpoint, checkpointer
    runs."""
    lat: list[int] = []
    in_checkpoint = 0
    async with Journal(path, kind="live", durable_on_loop=True, checkpoint_pages=pages) as j:
        for i in range(QUOTES):
            j.append(quote(i, START_NS + i))
            if i % 20 == 0:
                await asyncio.sleep(0)
            if i % EVERY == EVERY - 1:
                seq = j.append(TimerFired(START_NS + i, START_NS + i, "order"))
                size = path.stat().st_size
                t0 = time.perf_counter_ns()
                await j.sync(seq)
                lat.append(time.perf_counter_ns() - t0)
                in_checkpoint += path.stat().st_size != size
        runs = j.checkpoints
    return sorted(lat), in_checkpoint, runs


async def _main() -> None:
    p99s: dict[str, list[float]] = {name: [] for name in MODES}
    with tempfile.TemporaryDirectory() as folder:
        for r in range(ROUNDS):
            for name, pages in MODES.items():
                lat, during, runs = await _one(Path(folder) / f"{name}-{r}.db", pages)
                p99s[name].append(percentile(lat, 99) / 1e6)
                print(
                    f"  round {r} {name:12} durable writes {len(lat)}: "
                    f"p50 {percentile(lat, 50) / 1e6:.2f} ms  "
                    f"p99 {percentile(lat, 99) / 1e6:.2f} ms  max {lat[-1] / 1e6:.2f} ms  "
                    f"db file grew during {during:3}  "
                    f"checkpointer runs {runs}"
                )
    for name, values in p99s.items():
        median = figure(
            f"checkpoint.{name}.p99",
            f"durable write across checkpoints, {name}, p99 (median of {ROUNDS} rounds)",
            statistics.median(values),
            "ms",
            better="lower",
        )
        print(f"  {median.label}: {median.value:.2f} ms")


def main() -> None:
    print(
        f"checkpoint: {QUOTES:,} quotes, an order's durable write on the loop every {EVERY}, "
        f"{ROUNDS} interleaved rounds"
    )
    run(_main())


if __name__ == "__main__":
    main()
