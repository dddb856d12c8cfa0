"""``python -m bench.peers --peer-python .venv-peers/bin/python``: the peer comparison.

Runs Ballast (journal off, journal on) and NautilusTrader interleaved, each run in a fresh
subprocess (round after round: Ballast journal off, Nautilus, Ballast journal on, Nautilus), and
prints every run's bar-events/s, the medians, the ratio "Nautilus time / Ballast time" per case
(above 1: Ballast is faster), end-to-end times, peak RSS, and what each side traded (orders,
fills, months with fills) so that a reader sees both did the work.

Environment: ``BALLAST_PEERS_ROUNDS`` (default 3) rounds; ``BALLAST_PEERS_MONTHS=N`` only the
first N months of the bundled data (a quick look while developing; default: all of it);
``BALLAST_PEERS_MINUTE_DAYS=365`` adds the synthetic 1-minute year of ``make bench``, journal on
(opt-in: minutes per run, over 1 GB for Nautilus), ``BALLAST_PEERS_MINUTE_ROUNDS`` (default 1)
rounds of it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import machine_line
from bench.peers.minutes import minute_market, write_csv
from bench.peers.scenario import BAND_PP, CASH, DATA, START, TARGETS

ROOT = Path(__file__).resolve().parents[2]
PEER_SCRIPT = Path(__file__).resolve().with_name("nautilus_side.py")
Result = dict[str, Any]


def months_later(start: str, months: int) -> str:
    """``start`` (ISO) plus ``months`` calendar months, ISO."""
    moment = datetime.fromisoformat(start)
    index = moment.month - 1 + months
    return moment.replace(year=moment.year + index // 12, month=index % 12 + 1).isoformat()


def _json_of(command: Sequence[str]) -> Result:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    process_s = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: Result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = process_s  # with the interpreter's start and the imports
    return result


def ballast(journal: str, end: str | None, data: Path = DATA, interval_s: int = 3600) -> Result:
    command = [sys.executable, "-m", "bench.peers.ballast_side", "--journal", journal]
    command += ["--data", str(data), "--interval-s", str(interval_s)]
    return _json_of([*command, *(["--end", end] if end else [])])


def nautilus(python: str, end: str | None, data: Path = DATA, interval_s: int = 3600) -> Result:
    command = [python, str(PEER_SCRIPT), "--data", str(data), "--start", START]
    for asset, (kind, weight) in TARGETS.items():
        command += ["--target", f"{asset}:{kind}:{weight}"]
    command += ["--band-pp", str(BAND_PP), "--cash", str(CASH), "--interval-s", str(interval_s)]
    return _json_of([*command, *(["--end", end] if end else [])])


def minute_case(python: str, days: int, rounds: int) -> None:
    """The synthetic 1-minute case, journal on (opt-in: it takes minutes and Nautilus holds every
    bar in memory, over 1 GB for a year)."""
    print(f"== peers: synthetic {days} d of 1-minute bars (make bench's, seed 7), journal on ==")
    runs: dict[str, list[Result]] = {"ballast-journal-on": [], "nautilus": []}
    with tempfile.TemporaryDirectory(prefix="ballast-peers-") as tmp:
        written = write_csv(minute_market(days), Path(tmp))
        print(f" wrote {written:,} bars to CSV (both sides read them)")
        for index in range(rounds):
            print(f" round {index + 1}/{rounds}")
            for result in (
                ballast("on", None, Path(tmp), 60),
                nautilus(python, None, Path(tmp), 60),
            ):
                runs[result["side"]].append(result)
                print(run_line(result), flush=True)
    ours, peer = runs["ballast-journal-on"], runs["nautilus"]
    print(
        f"| synthetic {days} d 1-minute, journal on "
        f"| {statistics.median(rate(r) for r in ours):,.0f} bar-events/s, run "
        f"{median(ours, 'seconds'):.1f} s, end to end {median(ours, 'total_seconds'):.1f} s "
        f"| {statistics.median(rate(r) for r in peer):,.0f} bar-events/s, run "
        f"{median(peer, 'seconds'):.1f} s, end to end {median(peer, 'total_seconds'):.1f} s "
        f"| {median(peer, 'seconds') / median(ours, 'seconds'):.2f}; "
        f"{median(peer, 'total_seconds') / median(ours, 'total_seconds'):.2f} "
        f"| {median(ours, 'peak_rss_mib'):,.0f} / {median(peer, 'peak_rss_mib'):,.0f} MiB |"
    )


def rate(result: Result) -> float:
    return float(result["bar_events"]) / float(result["seconds"])


def run_line(result: Result) -> str:
    orders = "?" if result["orders"] is None else f"{result['orders']:,}"
    return (
        f"  {result['side']:<19} {rate(result):>9,.0f} bar-events/s  run {result['seconds']:6.1f} s"
        f"  end to end {result['total_seconds']:5.1f} s (process {result['process_seconds']:.1f} s)"
        f"  peak RSS {result['peak_rss_mib']:6.0f} MiB"
        f"  orders {orders:>5} fills {result['fills']:>5,}  months with fills "
        f"{len(result['fill_months'])}{months_of_data(result)}"
        f"  fees {float(result['fees']):,.2f}  final NAV {float(result['final_nav']):,.2f}"
    )


def months_of_data(result: Result) -> str:
    data = result.get("data_months")
    return f"/{data}" if data is not None else ""


def median(results: Sequence[Result], key: str) -> float:
    return statistics.median(float(r[key]) for r in results)


def summary(runs: dict[str, list[Result]], span: str) -> list[str]:
    peer = runs["nautilus"]
    peer_s, peer_e2e = median(peer, "seconds"), median(peer, "total_seconds")
    lines = [
        "| case | Ballast bar-events/s (median) | NautilusTrader bar-events/s (median) "
        "| Nautilus time / Ballast time (run; end to end) | peak RSS Ballast / Nautilus |",
        "|---|---|---|---|---|",
    ]
    for case in ("ballast-journal-off", "ballast-journal-on"):
        ours = runs[case]
        ours_s, ours_e2e = median(ours, "seconds"), median(ours, "total_seconds")
        lines.append(
            f"| {span}, journal {case.rsplit('-', 1)[1]} "
            f"| {statistics.median(rate(r) for r in ours):,.0f} "
            f"| {statistics.median(rate(r) for r in peer):,.0f}"
            f"{' (no journal)' if case.endswith('on') else ''} "
            f"| {peer_s / ours_s:.2f}; {peer_e2e / ours_e2e:.2f} "
            f"| {median(ours, 'peak_rss_mib'):,.0f} / {median(peer, 'peak_rss_mib'):,.0f} MiB |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__)
    parser.add_argument("--peer-python", required=True, help="the Python of .venv-peers")
    args = parser.parse_args(argv)
    rounds = int(os.environ.get("BALLAST_PEERS_ROUNDS", "3"))
    months = os.environ.get("BALLAST_PEERS_MONTHS")
    end = months_later(START, int(months)) if months else None
    print(machine_line())
    print(
        "== peers: the same threshold rebalance (BTC 40 % spot, ETH 20 % perp, ±"
        f"{BAND_PP} pp, {CASH:,} USDT) on the bundled hourly data"
        f"{f' (first {months} months)' if months else ''}, {rounds} interleaved rounds =="
    )
    runs: dict[str, list[Result]] = {
        "ballast-journal-off": [],
        "nautilus": [],
        "ballast-journal-on": [],
    }
    started = time.perf_counter()
    for index in range(rounds):
        print(f" round {index + 1}/{rounds}")
        for result in (
            ballast("off", end),
            nautilus(args.peer_python, end),
            ballast("on", end),
            nautilus(args.peer_python, end),
        ):
            runs[result["side"]].append(result)
            print(run_line(result), flush=True)
    first = runs["ballast-journal-on"][0]
    print(
        f" events per run: {first['bar_events']:,} bar events + {first['mark_events']:,} marks "
        f"(Ballast) / {runs['nautilus'][0]['bar_events']:,} bars + "
        f"{runs['nautilus'][0]['mark_events']:,} marks (Nautilus); "
        f"Ballast's kill switch fired {max(r['kill_switches'] for r in runs['ballast-journal-on'])}"
        " times"
    )
    for side in ("ballast-journal-on", "nautilus"):
        print(f" fills per month, {side}: {runs[side][0]['fill_months']}")
    for line in summary(runs, f"first {months} months hourly" if months else "2 y hourly"):
        print(line)
    minute_days = os.environ.get("BALLAST_PEERS_MINUTE_DAYS")
    if minute_days:
        minute_case(
            args.peer_python,
            int(minute_days),
            int(os.environ.get("BALLAST_PEERS_MINUTE_ROUNDS", "1")),
        )
    print(f" total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
