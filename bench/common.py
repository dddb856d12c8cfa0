"""Shared helpers: the uvloop runner, event factories, formatting, the machine line."""

from __future__ import annotations

import asyncio
import gc
import os
import platform
import resource
import sqlite3
import sys
from collections.abc import Coroutine, Sequence
from decimal import Decimal
from importlib.metadata import version
from typing import Any, TypeVar

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
    p = PRICES[i & 63]
    s = SIZES[i & 15]
    return QuoteTick(ts_ns, ts_ns, SYMBOLS[i & 3], p, PRICES[(i + 1) & 63], s, SIZES[(i + 3) & 15])


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


def rate_line(label: str, count: int, seconds: float, target: float) -> str:
    rate = count / seconds if seconds > 0 else float("inf")
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


def peak_rss_line() -> str:
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    mib = maxrss / 1024 if sys.platform != "darwin" else maxrss / (1024 * 1024)
    return f"peak memory (maxrss): {mib:,.1f} MiB"
