"""Kline (OHLCV candle) CSV loaders: Binance spot and perp exports, and generic OHLCV files.

Accepted headers (case-insensitive): a time column (``timestamp``, ``date``, ``open_time``,
``time``, ``datetime``) then ``open, high, low, close, volume``; extra columns are ignored.
Times are candle open times: ISO 8601 (naive means UTC) or Unix epoch seconds/milliseconds.
Prices stay exact (Decimal parsed from the text). Gaps are reported, never filled silently
(:mod:`ballast.adapters.data.gaps`; a kline gap's ``after_ns`` is the open time of the candle before
it).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

from ballast.adapters.data.gaps import Coverage, Gap, find_gaps, missing_between
from ballast.engine.kernel.clock import NS_PER_SECOND
from ballast.engine.kernel.errors import BallastError
from ballast.engine.kernel.events import Bar
from ballast.engine.kernel.timefmt import parse_time

__all__ = [
    "DataError",
    "Gap",
    "KlineSeries",
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


def load_klines(path: str | Path, symbol: str, interval_s: int = 3600) -> KlineSeries:
    """Load a kline CSV. Each Bar's ``ts_event`` is its close time (open + interval).

    Raises :class:`DataError` (with ``file:line``) for an unreadable row, a non-positive or
    non-finite price, high < low, a negative volume, or a time that does not increase.
    """
    file = Path(path)
    rows = read_csv(file)
    cols = _columns(read_header(rows), file)
    interval_ns = interval_s * NS_PER_SECOND
    bars: list[Bar] = []
    gaps: list[Gap] = []
    for line_no, row in rows:
        where = f"{file}:{line_no}"
        bar = _parse_bar(row, cols, symbol, interval_s, where)
        if bars:
            prev = bars[-1].ts_event
            if bar.ts_event <= prev:
                raise DataError(f"{where}: time does not increase ({row[cols[0]]})")
            missing = missing_between(prev, bar.ts_event, interval_ns)
            if missing > 0:
                gaps.append(Gap(prev - interval_ns, missing))
        bars.append(bar)
    return KlineSeries(symbol, interval_s, bars, gaps, str(file))


def _parse_bar(row: list[str], cols: _Cols, symbol: str, interval_s: int, where: str) -> Bar:
    try:
        closed = parse_timestamp(row[cols[0]]) + interval_s * NS_PER_SECOND
        o, h, lo, c, v = (Decimal(row[i]) for i in cols[1:])
    except (IndexError, ArithmeticError, DataError) as exc:
        raise DataError(f"{where}: bad row {row!r}: {exc}") from None
    if not all(p.is_finite() and p > 0 for p in (o, h, lo, c)) or h < lo:
        raise DataError(f"{where}: impossible prices o={o} h={h} l={lo} c={c}")
    if not v.is_finite() or v < 0:
        raise DataError(f"{where}: impossible volume {v}")
    return Bar(closed, closed, symbol, interval_s, o, h, lo, c, v)


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
