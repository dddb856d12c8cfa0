"""``python -m bench`` runs every benchmark; ``python -m bench NAME`` runs one.

Beside each figure it prints the previous release's, measured in the same run (``bench/previous.py``
says how and ``BENCH_PREVIOUS`` which release), or recorded for it in ``bench/releases/``.
``--json FILE`` writes the figures of this process's run (no comparison); ``--record [REV]``
measures REV's code (this checkout's by default) and writes ``bench/releases/<version>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    backtest,
    bus,
    checkpoint,
    decide,
    latency,
    live,
    pipeline,
    replay,
    sweep,
    synthetic,
)
from bench.common import (
    FIGURES,
    Figure,
    machine_line,
    number,
    peak_rss_line,
    peak_rss_mib,
    read_figures,
    write_figures,
)
from bench.previous import (
    CACHE,
    RELEASES,
    ROOT,
    SETTING,
    PreviousError,
    Record,
    Release,
    beside,
    checkout,
    child,
    code_version,
    git,
    previous_release,
    recorded,
)

BENCHMARKS: dict[str, Callable[[], None]] = {
    "bus": bus.main,
    "latency": latency.main,
    "replay": replay.main,
    "pipeline": pipeline.main,
    "backtest": backtest.main,
    "synthetic": synthetic.main,
    "decide": decide.main,
    "live": live.main,
    "checkpoint": checkpoint.main,
    "sweep": sweep.main,
}


@dataclass(frozen=True)
class Places:
    """Where the previous release comes from: the git checkout, the cache of release trees and
    the recorded figures (this checkout's by default; a test's tmp_path in the tests)."""

    repo: Path = ROOT
    cache: Path = CACHE
    releases: Path = RELEASES


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


ROUNDS = "BENCH_ROUNDS"
"""Rounds of (today, previous) per benchmark, order alternating (default 1); medians printed."""
SKIP = "BENCH_PREVIOUS_SKIP"
SKIP_DEFAULT = "sweep,checkpoint"
"""Benchmarks not run on the previous release by default (its recorded figures stand beside):
``checkpoint``, which measures the release's way itself (SQLite's own checkpoint,
``sqlite-auto``) beside today's, in one process, and needs today's journal; ``sweep``, about 2
of the 5-6 minutes a pass takes on the project's machine, whose goal is a
ratio measured within the run (the pool's speed-up) and whose variants/min are backtests,
measured beside the release by ``backtest``. ``live``, as long, stays: its latencies swing most
with the machine's load, so a recorded figure says least beside them. ``make bench`` took about
7 minutes so before ``live`` measured its floors in the same run; ``python -m bench live`` took
3 min 41 s with the previous release beside it, 1 min 54 s without (2026-12-03 16:02), 2 min 0 s
without once it measured the disk too (18:53); ``make bench`` 8 min 25 s (19:22)."""


def _header() -> None:
    print(machine_line())
    print("event loop: uvloop (asyncio.Runner(loop_factory=uvloop.new_event_loop))")


def _in_process(names: list[str], out: Path | None, header: bool) -> int:
    """Today's code in this process, as before the comparison (and each child of it)."""
    if header:
        _header()
    FIGURES.clear()
    started = time.perf_counter()
    for name in names:
        BENCHMARKS[name]()
    if len(names) == 1:  # one benchmark per process: its own peak memory
        figure_rss = Figure(
            f"{names[0]}.peak_rss", "peak memory (maxrss)", peak_rss_mib(), "MiB", "lower"
        )
        FIGURES.append(figure_rss)
    if out is not None:
        write_figures(out, FIGURES)
    if header:
        print(f"total {time.perf_counter() - started:.1f} s; {peak_rss_line()}")
    return 0


def _median(runs: list[list[Figure]]) -> list[Figure]:
    """Per key, the first run's figure with the median value over the runs that have it."""
    if len(runs) == 1:
        return runs[0]
    values: dict[str, list[float]] = {}
    for run_ in runs:
        for f in run_:
            values.setdefault(f.key, []).append(f.value)
    firsts: dict[str, Figure] = {}
    for run_ in runs:
        for f in run_:
            firsts.setdefault(f.key, f)
    return [
        Figure(
            f.key, f.label, statistics.median(values[f.key]), f.unit, f.better, f.target, f.floor
        )
        for f in firsts.values()
    ]


def _run_side(
    name: str, tree: Path | None, log: Path | None, tmp: Path
) -> tuple[list[Figure], str] | None:
    """One benchmark in a fresh process; its figures and the ``ballast`` it measured."""
    out = tmp / f"{name}-{'previous' if tree else 'today'}.json"
    out.unlink(missing_ok=True)
    done = child([name], out, pythonpath=tree, log=log)
    if done.returncode != 0 or not out.is_file():
        return None
    data = json.loads(out.read_text())
    return read_figures(data), f"ballast {data['version']} from {_shown(Path(data['code']).parent)}"


def _compare(
    names: list[str], release: Release | None, record: Record | None, places: Places
) -> int:
    """Each benchmark on today's code and on the previous release's, alternately first; or
    today's beside the figures recorded for a release."""
    rounds = max(1, int(os.environ.get(ROUNDS, "1") or "1"))
    skip = {n.strip() for n in os.environ.get(SKIP, SKIP_DEFAULT).split(",") if n.strip()}
    _header()
    tree: Path | None = None
    label = release.name if release else record.version if record else "?"
    if release is not None:
        tree = checkout(release, places.repo, places.cache)
        print(
            f"beside the previous release {release.name} ({release.rev}, {release.commit[:7]}), "
            f"measured in this run: each benchmark runs {rounds}× on today's code and on "
            f"{release.name}'s ({_shown(tree)}), which goes first alternating, each in a fresh "
            f"process (today's benchmark code on both; {SETTING}=off skips)"
        )
        if skip & set(names):
            print(
                f"not run on {release.name} ({SKIP}={','.join(sorted(skip))}; "
                f"'{SKIP}=' runs all): {', '.join(n for n in names if n in skip)}, "
                f"beside which stand {release.name}'s recorded figures"
            )
    elif record is not None:
        print(
            f"beside release {record.version}'s figures recorded {record.date} "
            f"({_shown(record.path)}, commit {record.commit[:7]}; "
            f"{record.conditions or 'no note'}): "
            "another run, maybe another machine; only figures measured in the same run compare "
            "within ±20 %"
        )
    started = time.perf_counter()
    table: list[str] = []
    failed = 0
    with tempfile.TemporaryDirectory(prefix="ballast-bench-") as tmp_:
        tmp = Path(tmp_)
        for index, name in enumerate(names):
            todays: list[list[Figure]] = []
            befores: list[list[Figure]] = []
            code = ""
            for round_ in range(rounds):
                previous_first = tree is not None and (index + round_) % 2 == 1
                sides = [True, False] if previous_first else [False, True]
                for previous in sides:
                    if previous and tree is not None and name not in skip:
                        log = tree / f"{name}.log"
                        measured = _run_side(name, tree, log, tmp)
                        if measured is None:
                            print(f"  ({label} failed on {name}: see {_shown(log)})")
                        else:
                            befores.append(measured[0])
                            code = measured[1]
                    elif not previous:
                        if round_ > 0:
                            print(f"  (round {round_ + 1} of {rounds})")
                        measured = _run_side(name, None, None, tmp)
                        if measured is None:
                            print(f"  {name} FAILED on today's code")
                            failed += 1
                        else:
                            todays.append(measured[0])
            if not todays:
                continue
            today = _median(todays)
            before: dict[str, Figure] = {}
            recorded_on: str | None = None
            if befores:
                before = {f.key: f for f in _median(befores)}
                when = "first" if index % 2 == 1 else "second"
                if rounds > 1:
                    when += " in round 1, then alternating; medians"
                print(f"  beside {label} ({code}), measured in this run, {label} ran {when}:")
            else:
                fallback = record if record is not None and record.version == label else None
                if fallback is None and release is not None:
                    fallback = recorded(places.releases, release.name)
                if fallback is not None:
                    before = fallback.figures
                    recorded_on = fallback.date[:10]
                    conditions = f" ({fallback.conditions})" if fallback.conditions else ""
                    print(f"  beside {label}'s figures recorded {fallback.date}{conditions}:")
                else:
                    print(f"  {label}: no figures for {name}")
            for f in today:
                print(f"    {beside(f, before.get(f.key), label, recorded_on)}")
                table.append(_row(f, before.get(f.key), recorded_on))
    print(f"\n== today beside {label} ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC) ==")
    print(f"| figure | today | target / floor | {label} | today / {label} |")
    print("|---|---|---|---|---|")
    for row in table:
        print(row)
    print(f"total {time.perf_counter() - started:.1f} s")
    return 1 if failed else 0


def _row(today: Figure, before: Figure | None, recorded_on: str | None) -> str:
    goal = today.goal_text() or ""
    if before is None or before.unit != today.unit:
        return f"| {today.key}: {today.label} | {number(today.value)} {today.unit} | {goal} | | |"
    ratio = f"{today.value / before.value:.2f}" if before.value else "n/a"
    return (
        f"| {today.key}: {today.label} | {number(today.value)} {today.unit} | {goal} | "
        f"{number(before.value)}{f' (recorded {recorded_on})' if recorded_on else ''} | "
        f"{ratio} ({today.better} is better) |"
    )


def _record(names: list[str], rev: str, places: Places) -> int:
    """Each benchmark in a fresh process on ``rev``'s code (``HEAD``: this checkout as it is),
    written to ``bench/releases/<version>.json`` with the date, commit, machine and command."""
    tree: Path | None = None
    commit = git(ROOT, "rev-parse", "HEAD") or "unknown"
    if rev != "HEAD":
        release = previous_release(places.repo, rev)
        assert release is not None  # a revision, not "off"
        tree, commit = checkout(release, places.repo, places.cache), release.commit
    elif git(ROOT, "status", "--porcelain", "--untracked-files=no"):
        commit += "-dirty"
    version = code_version(tree)
    _header()
    print(f"recording {version} ({commit[:7]}): {', '.join(names)}")
    load_before = os.getloadavg()
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="ballast-bench-") as tmp_:
        for name in names:
            measured = _run_side(name, tree, None, Path(tmp_))
            if measured is None:
                print(f"  {name} FAILED: not recorded")
                return 1
            figures += measured[0]
    record = {
        "version": version,
        "date": f"{datetime.now(UTC):%Y-%m-%dT%H:%M}Z",
        "commit": commit,
        "bench_commit": git(ROOT, "rev-parse", "HEAD") or "unknown",
        "machine": machine_line(),
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "command": f"python -m bench --record {rev} {' '.join(names)}".strip(),
        "note": os.environ.get("BENCH_RECORD_NOTE", ""),
        "figures": [],
    }
    places.releases.mkdir(parents=True, exist_ok=True)
    path = places.releases / f"{version}.json"
    write_figures(path, figures)
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "figures": data["figures"]}, indent=1) + "\n")
    print(f"wrote {_shown(path)} ({len(figures)} figures)")
    return 0


def main(argv: list[str] | None = None, places: Places | None = None) -> int:
    """``places``: where the previous release's code and figures are (this checkout's)."""
    places = places or Places()
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
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="run on this process's code only and write the figures to FILE",
    )
    parser.add_argument(
        "--record",
        nargs="?",
        const="HEAD",
        metavar="REV",
        help="measure REV's code (default: this checkout) into bench/releases/<version>.json",
    )
    parser.add_argument("--no-header", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names: list[str] = args.which or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    if args.json is not None:
        return _in_process(names, args.json, not args.no_header)
    try:
        if args.record is not None:
            return _record(names, args.record, places)
        release = previous_release(places.repo, os.environ.get(SETTING))
    except PreviousError as error:
        print(f"error: {error}")
        return 2
    except subprocess.CalledProcessError as error:
        print(f"error: {' '.join(map(str, error.cmd))} failed ({error.returncode})")
        return 2
    if release is None and os.environ.get(SETTING, "").strip() != "off":
        record = recorded(places.releases, below=code_version(None))
        if record is not None:
            return _compare(names, None, record, places)
        print(f"(no previous release: no git tag before HEAD, none in {_shown(places.releases)})")
    if release is None:
        return _in_process(names, None, True)
    return _compare(names, release, None, places)


if __name__ == "__main__":
    raise SystemExit(main())
