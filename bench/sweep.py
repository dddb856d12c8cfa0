"""``ballast sweep`` throughput: variants per minute for a fixed grid at 1 worker (in process) and
at one worker per core (the local process pool), and the speed-up (issue 15: goal ≥ 1.8× on two
cores).

The grid: examples/demo.toml (growth_optimizer, BTC and ETH spot + perps) over a year (2023) of
the bundled hourly data, 12 variants (band width × execution mode × drawdown limit). Each run
starts from an empty results folder (nothing resumed); the time is the runner's, from the first
task to the last record (the pool's start included). The load average is printed beside: the
figure is only as quiet as the machine.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ballast.engine.app.sweep.runner import Options, Runner, prepare
from ballast.engine.app.sweep.task import Record
from bench.common import figure, verdict

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "demo.toml"
DATA = ROOT / "data" / "market"
GRID = """
[grid]
"bands.abs_pp" = [3, 6, 9]
"execution.mode" = ["spot", "auto"]
"risk.drawdown_limit" = [0.3, 0.5]
"""
START, END = "2023-01-01", "2024-01-01"
GOAL = 1.8


@contextlib.contextmanager
def _quiet(title: str, total: int) -> Iterator[Callable[[Record], None]]:
    yield lambda record: None


def _cpu_s() -> float:
    """CPU seconds of this process and its ended children (the pool's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _per_minute(workers: int, folder: Path) -> tuple[float, int, float]:
    grid = folder / "grid.toml"
    grid.write_text(GRID)
    sweep = prepare(CONFIG, grid)
    out = folder / f"out-{workers}"
    options = Options(out=out, data=DATA, start=START, end=END, workers=workers)
    runner = Runner(sweep, options, progress=_quiet, say=lambda line: None)
    started, cpu = time.perf_counter(), _cpu_s()
    outcome = runner.run()
    seconds = time.perf_counter() - started
    assert outcome.ran == len(sweep.variants), "a benchmark run resumed nothing"
    return outcome.ran / seconds * 60, outcome.ran, _cpu_s() - cpu


def main() -> None:
    cores = os.cpu_count() or 1
    print(f"sweep: examples/demo.toml × 12 variants, {START} .. {END} hourly")
    print(f"  load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="ballast-bench-sweep-") as tmp:
        one, count, cpu = _per_minute(1, Path(tmp))
        print(f"  1 worker:    {one:7.1f} variants/min ({count} variants, {cpu:.1f} CPU s)")
        many, _, cpu = _per_minute(cores, Path(tmp))
        gap = "" if cores > 9 else " "
        print(f"  {cores} workers:{gap}  {many:7.1f} variants/min ({cpu:.1f} CPU s)")
    speedup = many / one if one > 0 else 0.0
    figure("sweep.one_worker", "1 worker", one, "variants/min", better="higher")
    figure(f"sweep.workers_{cores}", f"{cores} workers", many, "variants/min", better="higher")
    figure(
        f"sweep.speedup_{cores}",
        f"speed-up on {cores} cores",
        speedup,
        "x",
        better="higher",
        target=GOAL if cores >= 2 else None,
    )
    print(
        f"  speed-up: {speedup:.2f}× on {cores} cores (goal ≥ {GOAL}× on 2 cores) "
        f"{verdict(speedup >= GOAL) if cores >= 2 else '(one core: no goal)'}"
    )
    print(f"  load average after:  {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
