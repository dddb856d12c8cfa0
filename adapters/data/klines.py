"""Kline (OHLCV candle) CSV loaders: Binance spot and perp exports, and generic OHLCV files.

Accepted headers (case-insensitive): a time column (``timestamp``, ``date``, ``open_time``,
``time``, ``datetime``) then ``open, high, low, close, volume``; extra columns are ignored.
Times are candle open times: ISO 8601 (naive means UTC) or Unix epoch seconds/milliseconds.
Prices stay exact (Decimal parsed from the text). Gaps are reported, never filled silently.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from engine.errors import BallastError
from engine.events import Bar

NS = 1_000_000_000
_TIME_COLUMNS = ("timestamp", "date", "open_time", "time", "datetime")


class DataError(BallastError):
    """A data file is missing or malformed."""


@dataclass(frozen=True)
class Gap:
    after_ns: int
    missing: int


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


def parse_timestamp(text: str) -> int:
    """Candle time to epoch ns: ISO 8601 (naive = UTC) or epoch seconds / milliseconds."""
    text = text.strip()
    if text.isdigit():
        value = int(text)
        return value * 1_000_000 if value > 10**11 else value * NS
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise DataError(f"unreadable timestamp {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * NS + moment.microsecond * 1000


def load_klines(path: str | Path, symbol: str, interval_s: int = 3600) -> KlineSeries:
    """Load a kline CSV. Each Bar's ``ts_event`` is its close time (open + interval)."""
    file = Path(path)
    try:
        handle = file.open(newline="")
    except OSError as exc:
        raise DataError(f"{file}: {exc.strerror}") from None
    with handle:
        reader = csv.reader(handle)
        header = [h.strip().lower() for h in next(reader, [])]
        cols = _columns(header, file)
        interval_ns = interval_s * NS
        bars: list[Bar] = []
        gaps: list[Gap] = []
        last_open: int | None = None
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                opened = parse_timestamp(row[cols[0]])
                o, h, lo, c, v = (Decimal(row[i]) for i in cols[1:])
            except (IndexError, ArithmeticError, DataError) as exc:
                raise DataError(f"{file}:{line_no}: bad row {row!r}: {exc}") from None
            if last_open is not None:
                step = opened - last_open
                if step <= 0:
                    raise DataError(f"{file}:{line_no}: time does not increase ({row[cols[0]]})")
                if step > interval_ns:
                    gaps.append(Gap(after_ns=last_open, missing=step // interval_ns - 1))
            last_open = opened
            closed = opened + interval_ns
            bars.append(Bar(closed, closed, symbol, interval_s, o, h, lo, c, v))
    return KlineSeries(symbol, interval_s, bars, gaps, str(file))


def _columns(header: list[str], file: Path) -> tuple[int, int, int, int, int, int]:
    try:
        time_col = next(header.index(name) for name in _TIME_COLUMNS if name in header)
        rest = [header.index(name) for name in ("open", "high", "low", "close", "volume")]
    except (StopIteration, ValueError):
        raise DataError(
            f"{file}: header {header} lacks a time column or open/high/low/close/volume"
        ) from None
    return (time_col, rest[0], rest[1], rest[2], rest[3], rest[4])
