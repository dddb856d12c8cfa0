"""``python -m bench`` runs every benchmark; ``python -m bench NAME`` runs one."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from bench import backtest, bus, checkpoint, latency, live, pipeline, replay, sweep, synthetic
from bench.common import machine_line, peak_rss_line

BENCHMARKS: dict[str, Callable[[], None]] = {
    "bus": bus.main,
    "latency": latency.main,
    "replay": replay.main,
    "pipeline": pipeline.main,
    "backtest": backtest.main,
    "synthetic": synthetic.main,
    "live": live.main,
    "checkpoint": checkpoint.main,
    "sweep": sweep.main,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Ballast benchmarks: print figures and targets, never assert timings.",
    )
    parser.add_argument(
        "which",
        nargs="*",
        metavar="NAME",
        help=f"one or more of {', '.join(BENCHMARKS)} (default: all)",
    )
    args = parser.parse_args(argv)
    names: list[str] = args.which or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    print(machine_line())
    print("event loop: uvloop (asyncio.Runner(loop_factory=uvloop.new_event_loop))")
    started = time.perf_counter()
    for name in names:
        BENCHMARKS[name]()
    print(f"total {time.perf_counter() - started:.1f} s; {peak_rss_line()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
