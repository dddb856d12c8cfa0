"""Synthetic market: one full pass over a seeded synthetic bundle (settlements, bars, marks),
lazily generated. ``python -m bench.synthetic --interval-s 60 --days 365`` for other sizes."""

from __future__ import annotations

import argparse
import time

from ballast.adapters.data.synthetic import SyntheticConfig, SyntheticMarket
from ballast.engine.kernel.clock import NS_PER_DAY, NS_PER_SECOND
from ballast.engine.kernel.events import Bar
from bench.common import figure, peak_rss_line

INTERVAL_S = 60
DAYS = 365.0


def measure(config: SyntheticConfig) -> str:
    """Events, seconds and peak memory of one pass over ``config``'s bundle."""
    started = time.perf_counter()
    bundle = SyntheticMarket(config).bundle()
    settled = time.perf_counter()
    bars = marks = 0
    for event in bundle.events():
        if isinstance(event, Bar):
            bars += 1
        else:
            marks += 1
    done = time.perf_counter()
    figure(
        "synthetic.pass",
        "one pass, bars + marks",
        (bars + marks) / (done - settled),
        "events/s",
        better="higher",
    )
    figure("synthetic.settlements", "settlements computed", settled - started, "s", better="lower")
    return (
        f"{bars:,} bars + {marks:,} marks in {done - settled:.2f} s, "
        f"{len(bundle.settlements):,} settlements in {settled - started:.2f} s, {peak_rss_line()}"
    )


def run(*, interval_s: int = INTERVAL_S, days: float = DAYS, seed: int = 0) -> None:
    bars = int(days * NS_PER_DAY // (interval_s * NS_PER_SECOND))
    print(f"== synthetic market: {days:g} days of {interval_s} s bars, seed {seed} ==")
    print("  " + measure(SyntheticConfig(seed=seed, bars=bars, interval_s=interval_s)))


def main() -> None:
    run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="time one pass of a synthetic market")
    parser.add_argument("--interval-s", type=int, default=INTERVAL_S)
    parser.add_argument("--days", type=float, default=DAYS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run(interval_s=args.interval_s, days=args.days, seed=args.seed)
