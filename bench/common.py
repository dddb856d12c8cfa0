"""Shared helpers: the uvloop runner, event factories, formatting, the machine line."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import platform
import resource
import sqlite3
import sys
from collections.abc import Coroutine, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal, TypeVar

import uvloop

from ballast.engine.kernel.events import (
    BalanceUpdated,
    Bar,
    Message,
    OrderFilled,
    QuoteTick,
    TradeTick,
)

T = TypeVar("T")

SYMBOLS: tuple[str, ...] = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT")
START_NS = 1_700_000_000_000_000_000

# Prices and sizes come from small pools of Decimal objects shared between events (a feed would
# parse fresh ones: same encoded size and cost), which keeps the benchmark's own memory small.
PRICES: tuple[Decimal, ...] = tuple(Decimal(f"{60000 + i * 0.5:.2f}") for i in range(64))
SIZES: tuple[Decimal, ...] = tuple(Decimal(f"{0.001 * (i + 1):.3f}") for i in range(16))


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a fresh uvloop event loop (the production loop)."""
    gc.collect()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def quote(i: int, ts_ns: int) -> QuoteTick:
    """A quote of the cycling price table, never crossed (bid <= ask: the market guard rejects a
    crossed quote, and a replay of the bench journal would log each one)."""
    bid, ask = PRICES[i & 63], PRICES[(i + 1) & 63]
    if ask < bid:
        bid, ask = ask, bid
    return QuoteTick(ts_ns, ts_ns, SYMBOLS[i & 3], bid, ask, SIZES[i & 15], SIZES[(i + 3) & 15])


def quotes(n: int, *, start_ns: int = START_NS, step_ns: int = 1_000) -> list[QuoteTick]:
    return [quote(i, start_ns + i * step_ns) for i in range(n)]


def mixed(i: int, ts_ns: int) -> Message:
    """Mostly quotes and bars, some trades, a few fills and balance updates (1M-journal mix)."""
    k = i % 100
    sym = SYMBOLS[i & 3]
    if k < 55:
        return quote(i, ts_ns)
    if k < 85:
        p = PRICES[i & 63]
        return Bar(
            ts_ns,
            ts_ns,
            sym,
            60,
            p,
            PRICES[(i + 5) & 63],
            PRICES[(i + 60) & 63],
            p,
            SIZES[i & 15],
        )
    if k < 97:
        return TradeTick(ts_ns, ts_ns, sym, PRICES[i & 63], SIZES[i & 15], "buy", f"t{i}")
    if k < 99:
        return OrderFilled(
            ts_ns,
            ts_ns,
            f"c{i}",
            f"v{i}",
            f"t{i}",
            sym,
            "sell",
            SIZES[i & 15],
            PRICES[i & 63],
            Decimal("0.012"),
            "USDT",
            "taker",
        )
    return BalanceUpdated(ts_ns, ts_ns, "spot", "USDT", Decimal("10000.5"), Decimal("0"))


def percentile(sorted_values: Sequence[int], q: float) -> int:
    """Nearest-rank percentile of an ascending sequence (q in 0..100)."""
    if not sorted_values:
        return 0
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[min(len(sorted_values), int(rank)) - 1]


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


Better = Literal["higher", "lower"]


@dataclass(frozen=True)
class Figure:
    """One measured figure, as a benchmark prints it and as ``--json`` writes it.

    ``key`` names the figure across releases (``bench/releases/*.json``, the previous release's
    run): keep it when a label's wording changes, change it when the measurement does. ``target``
    is the goal (``>=`` for higher-is-better, ``<=`` otherwise), ``floor`` the same run's
    do-nothing floor under a backtest figure (same unit).
    """

    key: str
    label: str
    value: float
    unit: str
    better: Better
    target: float | None = None
    floor: float | None = None

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.better == "higher" else self.value <= self.target

    def goal_text(self) -> str:
        """``target >= 150,000 OK``, ``floor 398,448``, both or nothing."""
        parts = []
        if self.target is not None:
            op = ">=" if self.better == "higher" else "<="
            parts.append(f"target {op} {number(self.target)} {verdict(bool(self.met))}")
        if self.floor is not None:
            parts.append(f"floor {number(self.floor)}")
        return ", ".join(parts)


FIGURES: list[Figure] = []
"""Every figure the benchmarks of this process measured, in order (``python -m bench --json``)."""


def figure(
    key: str,
    label: str,
    value: float,
    unit: str,
    *,
    better: Better,
    target: float | None = None,
    floor: float | None = None,
) -> Figure:
    """Record one figure for the machine-readable output; returns it (for the printed line)."""
    measured = Figure(key, label, value, unit, better, target, floor)
    FIGURES.append(measured)
    return measured


def number(value: float) -> str:
    """A figure as printed: thousands separated above 100, one decimal above 10, else two."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def write_figures(path: Path, figures: Sequence[Figure]) -> None:
    """The machine-readable output in ``path``: the ``ballast`` measured (its version and where
    it was imported from) and ``figures``, each a :class:`Figure` as a dict."""
    import ballast.engine  # the package measured: today's, or a release's on PYTHONPATH

    code = {"version": ballast.engine.__version__, "code": str(Path(ballast.engine.__file__))}
    figures_ = [asdict(f) for f in figures]
    path.write_text(json.dumps({**code, "figures": figures_}, indent=1) + "\n")


def read_figures(data: dict[str, Any]) -> list[Figure]:
    """The figures of a ``--json`` file or a release record (unknown fields are an error)."""
    return [Figure(**item) for item in data["figures"]]


def rate_line(label: str, count: int, seconds: float, target: float, *, key: str) -> str:
    rate = count / seconds if seconds > 0 else float("inf")
    figure(key, label, rate, "events/s", better="higher", target=target)
    return (
        f"{label}: {rate:,.0f} events/s (target >= {target:,.0f}) {verdict(rate >= target)}"
        f"  [{count:,} events in {seconds:.3f} s]"
    )


def machine_line() -> str:
    return (
        f"machine: {os.cpu_count()} CPUs ({platform.machine()}, {platform.system()}), "
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"SQLite {sqlite3.sqlite_version}, uvloop {version('uvloop')}, "
        f"msgspec {version('msgspec')}, aiosqlite {version('aiosqlite')}"
    )


def peak_rss_mib() -> float:
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 1024 if sys.platform != "darwin" else maxrss / (1024 * 1024)


def peak_rss_line() -> str:
    return f"peak memory (maxrss): {peak_rss_mib():,.1f} MiB"
