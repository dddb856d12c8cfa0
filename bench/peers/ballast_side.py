"""The Ballast side of ``make bench-peers``: one backtest of the benchmark scenario
(:mod:`bench.peers.scenario`) on the bundled hourly data, journal on or off, in this process.

``python -m bench.peers.ballast_side --journal on|off [--start ISO] [--end ISO]`` prints one JSON
object with the same keys as the peer's (``bench/peers/nautilus_side.py``). Orders, fills and
fills per month are counted from the journal (journal on); with the journal off there is none to
count from, so it reports the fills of the run's performance summary and the months in which a
rebalance traded.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ballast.engine.app.backtest import BacktestRun, load_market, run_backtest
from bench.common import run
from bench.peers.scenario import DATA, START, scenario_config

NS_PER_S = 1_000_000_000


def month_of(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / NS_PER_S, UTC).strftime("%Y-%m")


@dataclass(frozen=True)
class Activity:
    """What a run traded: orders sent, fills, fills by month (``YYYY-MM``)."""

    orders: int | None
    fills: int
    fill_months: dict[str, int] = field(default_factory=dict)


def journal_activity(journal: Path) -> Activity:
    """Orders submitted, fills and fills per month, counted in a run's journal."""
    with sqlite3.connect(journal) as db:
        orders = db.execute("SELECT count(*) FROM events WHERE type = 'OrderSubmitted'").fetchone()
        times = [t for (t,) in db.execute("SELECT ts_event FROM events WHERE type = 'OrderFilled'")]
    months = Counter(month_of(t) for t in times)
    return Activity(int(orders[0]), len(times), dict(sorted(months.items())))


def run_activity(run_: BacktestRun) -> Activity:
    """Without a journal: the fills of the summary, and the months in which a rebalance traded."""
    months = Counter(month_of(mark.ts_ns) for mark in run_.performance.series.rebalances)
    return Activity(None, run_.performance.summary.fills, dict(sorted(months.items())))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.ballast_side")
    parser.add_argument("--journal", choices=("on", "off"), required=True)
    parser.add_argument("--start", default=START)
    parser.add_argument("--end", default=None, help="first excluded bar close time (ISO)")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the CSV files")
    parser.add_argument("--interval-s", type=int, default=3600, help="bar interval")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    config = scenario_config()
    interval = args.interval_s
    bundle = load_market(config, args.data, start=args.start, end=args.end, interval_s=interval)
    with tempfile.TemporaryDirectory(prefix="ballast-peers-") as tmp:
        journal = Path(tmp) / "bench.db" if args.journal == "on" else None
        loaded = time.perf_counter()
        result = run(
            run_backtest(
                config, bundle, name="bench-peers", journal_path=journal, interval_s=interval
            )
        )
        ran = time.perf_counter()
        activity = journal_activity(journal) if journal is not None else run_activity(result)
    bar_times = [event.ts_event for event in bundle.events() if type(event).__name__ == "Bar"]
    bars = len(bar_times)
    summary = result.performance.summary
    json.dump(
        {
            "side": f"ballast-journal-{args.journal}",
            "bar_events": bars,
            "mark_events": result.events - bars,
            "seconds": result.seconds,
            "load_seconds": loaded - started,
            "total_seconds": ran - started,
            "orders": activity.orders,
            "fills": activity.fills,
            "fill_months": activity.fill_months,
            "data_months": len({month_of(t) for t in bar_times}),
            "kill_switches": len(result.kill_switches),
            "final_nav": str(summary.final_nav),
            "fees": str(summary.fees_paid),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
