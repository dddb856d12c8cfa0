"""Backtest throughput: bar events through the full actor pipeline (portfolio, risk, rebalancer,
router, simulated venue), with the journal on and off, on the bundled two years of hourly real
data and on synthetic one-minute bars.

Issue figures: ≥ 500,000 bar-events/s with the journal off, ≥ 150,000/s with it on, and one
year of 1-minute bars for BTC and ETH spot + perps (about 2.1 million bar events) end to end in
under 30 s. ``python -m bench backtest`` measures one month of 1-minute bars (the full year
takes minutes at the current speed); ``BALLAST_BENCH_FULL_YEAR=1`` measures the whole year.

The scenario is :mod:`bench.peers.scenario`'s, the one ``make bench-peers`` runs beside
NautilusTrader: a threshold rebalance that trades in every month and never trips the kill switch,
so that every actor is measured for the whole run.

Each figure is printed beside its floor (``bench/backtest_floor.py``): the same events through the
same bus and journal to handlers that do nothing.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from ballast.adapters.data.bundle import MarketBundle
from ballast.adapters.data.synthetic import SyntheticConfig, SyntheticMarket
from ballast.engine.app.backtest import BacktestRun, run_backtest
from ballast.engine.kernel.config import Config
from bench.backtest_floor import floor
from bench.backtest_floor import line as floor_line
from bench.common import figure, peak_rss_mib, run, verdict
from bench.peers.scenario import DATA, scenario_config


def _bars(bundle: MarketBundle) -> int:
    return sum(1 for event in bundle.events() if type(event).__name__ == "Bar")


def _line(label: str, run_: BacktestRun, bars: int, target: float | None) -> str:
    rate = bars / run_.seconds
    text = (
        f"  {label}: {bars:,} bar events ({run_.events:,} market events incl. marks) in "
        f"{run_.seconds:.1f} s = {rate:,.0f} bar-events/s"
    )
    if target is not None:
        text += f" (target >= {target:,.0f}) {verdict(rate >= target)}"
    summary = run_.performance.summary
    return (
        f"{text}\n    traded: {summary.fills:,} fills, {summary.rebalances:,} rebalances, "
        f"kill switch fired {len(run_.kill_switches)} times"
    )


def _measure(
    config: Config, bundle: MarketBundle, journal: Path | None, interval_s: int
) -> BacktestRun:
    return run(
        run_backtest(config, bundle, name="bench", journal_path=journal, interval_s=interval_s)
    )


def main() -> None:
    print(
        "== backtest: full actor pipeline + simulated venue, the bench scenario (threshold, "
        "BTC 40 % spot, ETH 20 % perp, ±1 pp; bench/peers/scenario.py), trading all along =="
    )
    config = scenario_config()
    with tempfile.TemporaryDirectory(prefix="ballast-bench-") as tmp:
        hourly = MarketBundle.load(DATA, ["BTC", "ETH"])
        bars = _bars(hourly)
        off = _measure(config, hourly, None, 3600)
        print(_line("bundled 2 y hourly, journal off", off, bars, 500_000))
        on = _measure(config, hourly, Path(tmp) / "hourly.db", 3600)
        print(_line("bundled 2 y hourly, journal on ", on, bars, 150_000))
        floor_off = run(floor(hourly, journal=False))
        print(floor_line("2 y hourly, journal off", floor_off, 500_000))
        floor_on = run(floor(hourly, journal=True))
        print(floor_line("2 y hourly, journal on ", floor_on, 150_000))
        for key, label, measured, floor_, target in (
            ("hourly_off", "2 y hourly, journal off", off, floor_off, 500_000),
            ("hourly_on", "2 y hourly, journal on", on, floor_on, 150_000),
        ):
            floor_rate = floor_[1] / floor_[2]
            figure(
                f"backtest.{key}",
                label,
                bars / measured.seconds,
                "bar-events/s",
                better="higher",
                target=target,
                floor=floor_rate,
            )
            figure(
                f"backtest.{key}.floor",
                f"floor, {label}",
                floor_rate,
                "bar-events/s",
                better="higher",
            )
        full = os.environ.get("BALLAST_BENCH_FULL_YEAR") == "1"
        days = 365 if full else 30
        minutes = SyntheticMarket(
            SyntheticConfig(seed=7, bars=days * 24 * 60, interval_s=60)
        ).bundle()
        started = time.perf_counter()
        one_min = _measure(config, minutes, Path(tmp) / "minutes.db", 60)
        total = time.perf_counter() - started
        bars = _bars(minutes)
        label = f"synthetic {days} d of 1-minute bars, journal on"
        print(_line(label, one_min, bars, None))
        figure(
            f"backtest.minutes_{days}d",
            label,
            bars / one_min.seconds,
            "bar-events/s",
            better="higher",
        )
        goal = "one year end to end in under 30 s"
        if full:
            ok = verdict(total < 30)
            print(f"  one year of 1-minute bars end to end: {total:.1f} s ({goal}) {ok}")
            _, _, seconds = run(floor(minutes, journal=True))
            figure(
                "backtest.year_end_to_end",
                "one year of 1-minute bars, end to end",
                total,
                "s",
                better="lower",
                target=30,
                floor=seconds,
            )
            print(
                f"  floor, the same year through bus and journal to do-nothing handlers: "
                f"{seconds:.1f} s"
            )
        else:
            print(f"  ({goal}: run with BALLAST_BENCH_FULL_YEAR=1 to measure the whole year)")
    print(f"  peak memory (maxrss): {peak_rss_mib():.1f} MiB")
