"""A small, fast sweep for the tests: spot BTC and ETH on hourly bars of the bundled data over
one month, a threshold strategy, and grids over its band and targets."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ballast.engine.app.sweep.runner import Options, Outcome, Runner, prepare
from ballast.engine.app.sweep.task import Record

DATA = Path(__file__).resolve().parents[2] / "data" / "market"
START, END = "2023-01-01", "2023-02-01"


def config_text(*, abs_pp: Any = 5, btc: Any = "0.5") -> str:
    return f"""
[strategy]
name = "threshold"

[targets]
BTC = {btc}
ETH = 0.3

[instruments]
spot = ["BTC/USDT", "ETH/USDT"]
perp = []

[bands]
abs_pp = {abs_pp}

[paper]
data_dir = "{DATA}"
start = "{START}"
end = "{END}"
"""


GRID = """
[grid]
"bands.abs_pp" = [2, 5]
"targets.BTC" = [0.4, 0.6]
"""


def write(folder: Path, grid: str = GRID) -> tuple[Path, Path]:
    config, grid_file = folder / "config.toml", folder / "grid.toml"
    config.write_text(config_text())
    grid_file.write_text(grid)
    return config, grid_file


def sweep(
    config: Path,
    grid: Path,
    out: Path,
    *,
    workers: int = 1,
    ray: str | None = None,
    keep_journals: bool = False,
) -> Outcome:
    """The sweep through its runner, as ``ballast sweep`` runs it (no progress bar)."""

    @contextlib.contextmanager
    def quiet(title: str, total: int) -> Iterator[Callable[[Record], None]]:
        yield lambda record: None

    setup = prepare(config, grid)
    options = Options(
        out=out,
        data=DATA,
        start=START,
        end=END,
        workers=workers,
        ray=ray,
        keep_journals=keep_journals,
    )
    return Runner(setup, options, progress=quiet, say=lambda line: None).run()


def results(records: list[Record]) -> dict[str, tuple[Any, ...]]:
    """What must not change between two runs of a variant: everything but the run time."""
    return {
        r.variant: (r.phase, r.window, r.start_ns, r.end_ns, r.metrics, r.events, r.curve)
        for r in records
    }
