"""Kline (OHLCV candle) CSV loaders: Binance spot and perp exports, Yahoo-style daily files and
a generic OHLCV layout.

**The generic OHLCV layout** (also what the bundled and Binance files are): a header row, then one
row per candle, oldest first. Headers are case-insensitive; the columns may come in any order and
extra columns are ignored:

- a time column: ``timestamp``, ``date``, ``open_time``, ``time`` or ``datetime``: the candle's
  **open** time, ISO 8601 (``2024-01-31``, ``2024-01-31T08:00``, ``2024-01-31 08:00:00+00:00``;
  naive means UTC) or Unix epoch seconds/milliseconds/microseconds/nanoseconds;
- ``open``, ``high``, ``low``, ``close``, ``volume``: prices in the quote asset, volume in the base
  asset, as decimal text (kept exact).

A **Yahoo Finance** download (``Date,Open,High,Low,Close,Adj Close,Volume``, e.g. ``BTC-USD.csv``)
is read as is: ``Close`` is the price, ``Adj Close`` is ignored (for crypto it equals ``Close``), a
row of ``null`` prices (a day Yahoo has no data for) is a missing bar, reported as a gap.

**The bar interval** is the median spacing of the open times, from one minute to one week
(:mod:`ballast.engine.kernel.bar_interval`), unless the caller gives it (``[paper] bar_interval``,
``--bar-interval``). Each bar is stamped at its **close**: open time + interval (a daily candle
opening 2024-01-01 is known, and stamped, at 2024-01-02T00:00Z). Gaps are judged against that
interval and reported, never filled (:mod:`ballast.adapters.data.gaps`; a kline gap's ``after_ns``
is the open time of the candle before it).
"""

from __future__ import annotations

import csv
import itertools
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

from ballast.adapters.data.gaps import Coverage, Gap, find_gaps, missing_between
from ballast.engine.kernel.bar_interval import check_bar_interval
from ballast.engine.kernel.clock import NS_PER_SECOND
from ballast.engine.kernel.errors import BallastError
from ballast.engine.kernel.events import Bar
from ballast.engine.kernel.timefmt import parse_time

__all__ = [
    "DataError",
    "Gap",
    "KlineSeries",
    "detect_interval",
    "load_klines",
    "parse_timestamp",
    "read_csv",
    "read_header",
]
_TIME_COLUMNS = ("timestamp", "date", "open_time", "time", "datetime")


class DataError(BallastError):
    """A data file is missing or malformed."""


@dataclass
class KlineSeries:
    symbol: str
    interval_s: int
    bars: list[Bar]
    gaps: list[Gap] = field(default_factory=list)
    source: str = ""

    @property
    def missing(self) -> int:
        return sum(g.missing for g in self.gaps)

    def between(self, start_ns: int | None, end_ns: int | None) -> KlineSeries:
        """The bars with ``start_ns <= ts_event < end_ns`` (close times; None = unbounded), with
        the gaps inside that range only."""
        bars = [
            b
            for b in self.bars
            if (start_ns is None or b.ts_event >= start_ns)
            and (end_ns is None or b.ts_event < end_ns)
        ]
        step = self.interval_s * NS_PER_SECOND
        gaps = find_gaps((b.ts_event - step for b in bars), step)
        return replace(self, bars=bars, gaps=gaps)

    def coverage(self, kind: str) -> Coverage:
        """Coverage of this series for a :class:`ballast.adapters.data.gaps.DataReport`."""
        first = self.bars[0].ts_event if self.bars else None
        last = self.bars[-1].ts_event if self.bars else None
        step = self.interval_s * NS_PER_SECOND
        return Coverage(
            self.symbol, kind, self.source, len(self.bars), first, last, step, tuple(self.gaps)
        )


def parse_timestamp(text: str) -> int:
    """Candle or funding time to epoch ns, by the engine's one rule
    (:func:`ballast.engine.kernel.timefmt.parse_time`: ISO 8601, naive = UTC, or epoch
    s/ms/us/ns by magnitude)."""
    try:
        return parse_time(text)
    except ValueError:
        raise DataError(f"unreadable timestamp {text.strip()!r}") from None


def read_csv(file: Path) -> Iterator[tuple[int, list[str]]]:
    """The non-empty rows of a CSV file (header first) with their line numbers. A missing,
    unreadable or undecodable file raises :class:`DataError` naming ``file:line``."""
    try:
        handle = file.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{file}: {exc.strerror}") from None
    with handle:
        reader = csv.reader(handle)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                raise DataError(f"{file}:{reader.line_num + 1}: unreadable: {exc}") from None
            if row:
                yield reader.line_num, row


def read_header(rows: Iterator[tuple[int, list[str]]]) -> list[str]:
    """The header row, lower-cased and stripped (empty for an empty file)."""
    first = next(rows, None)
    return [] if first is None else [h.strip().lower() for h in first[1]]


def load_klines(path: str | Path, symbol: str, interval_s: int | None = None) -> KlineSeries:
    """Load a kline CSV (layouts in the module docstring). Each Bar's ``ts_event`` is its close
    time (open + interval); ``interval_s`` None: the median spacing of the open times.

    Raises :class:`DataError` (with ``file:line``) for an unreadable row, a non-positive or
    non-finite price, high < low, a negative volume, or a time that does not increase; and (naming
    the file) when the interval is outside one minute .. one week or cannot be told (one row).
    """
    file = Path(path)
    rows = read_csv(file)
    cols = _columns(read_header(rows), file)
    candles: list[_Candle] = []
    for line_no, row in rows:
        where = f"{file}:{line_no}"
        candle = _parse_candle(row, cols, where)
        if candles and candle[0] <= candles[-1][0]:
            raise DataError(f"{where}: time does not increase ({row[cols[0]]})")
        candles.append(candle)
    priced = [c for c in candles if c[1] is not None]
    if not candles:  # only a header: no data, which the bundle refuses naming the file
        return KlineSeries(symbol, interval_s or 0, [], [], str(file))
    if interval_s is None:
        interval_s = detect_interval([c[0] for c in candles], file)
    else:
        _check_interval(interval_s, file)
    interval_ns = interval_s * NS_PER_SECOND
    bars: list[Bar] = []
    gaps: list[Gap] = []
    for open_ns, prices in priced:
        assert prices is not None
        closed = open_ns + interval_ns
        if bars:
            missing = missing_between(bars[-1].ts_event, closed, interval_ns)
            if missing > 0:
                gaps.append(Gap(bars[-1].ts_event - interval_ns, missing))
        bars.append(Bar(closed, closed, symbol, interval_s, *prices))
    return KlineSeries(symbol, interval_s, bars, gaps, str(file))


def detect_interval(open_times: list[int], file: Path | str = "") -> int:
    """The bar interval (seconds) of candles opening at ``open_times`` (ns, increasing): the
    median spacing, which a few gaps do not move. :class:`DataError` when it cannot be told (fewer
    than two candles) or is outside one minute .. one week."""
    if len(open_times) < 2:
        raise DataError(
            f"{file}: fewer than two bars cannot show their interval: set [paper] bar_interval "
            f'(e.g. "1d") or --bar-interval'
        )
    steps = [b - a for a, b in itertools.pairwise(open_times)]
    seconds = statistics.median_low(steps) // NS_PER_SECOND
    _check_interval(seconds, file, detected=True)
    return seconds


def _check_interval(seconds: int, file: Path | str, *, detected: bool = False) -> None:
    try:
        check_bar_interval(seconds)
    except ValueError as exc:
        how = " (the median spacing of its times)" if detected else ""
        raise DataError(f"{file}: {exc}{how}") from None


_Prices = tuple[Decimal, Decimal, Decimal, Decimal, Decimal]
_Candle = tuple[int, _Prices | None]
"""(open time ns, (open, high, low, close, volume) or None for a row of ``null`` prices)."""


def _parse_candle(row: list[str], cols: _Cols, where: str) -> _Candle:
    try:
        opened = parse_timestamp(row[cols[0]])
        cells = [row[i].strip() for i in cols[1:]]
        if all(cell.lower() == "null" for cell in cells[:4]):
            return opened, None
        o, h, lo, c, v = (Decimal(cell) for cell in cells)
    except (IndexError, ArithmeticError, DataError) as exc:
        raise DataError(f"{where}: bad row {row!r}: {exc}") from None
    if not all(p.is_finite() and p > 0 for p in (o, h, lo, c)) or h < lo:
        raise DataError(f"{where}: impossible prices o={o} h={h} l={lo} c={c}")
    if not v.is_finite() or v < 0:
        raise DataError(f"{where}: impossible volume {v}")
    return opened, (o, h, lo, c, v)


_Cols = tuple[int, int, int, int, int, int]


def _columns(header: list[str], file: Path) -> _Cols:
    try:
        time_col = next(header.index(name) for name in _TIME_COLUMNS if name in header)
        rest = [header.index(name) for name in ("open", "high", "low", "close", "volume")]
    except (StopIteration, ValueError):
        raise DataError(
            f"{file}: header {header} lacks a time column or open/high/low/close/volume"
        ) from None
    return (time_col, rest[0], rest[1], rest[2], rest[3], rest[4])
