"""Funding-rate CSV loader: Binance ``fundingRate`` dumps and the common generic layout.

Accepted headers (case-insensitive, extra columns ignored):

- Binance (data.binance.vision): ``calc_time,funding_interval_hours,last_funding_rate``;
  ``calc_time`` is the settlement time in Unix ms, which Binance stamps with a few ms of jitter.
- generic: ``timestamp,funding_rate[,mark_price]`` with ISO 8601 times (naive = UTC) or epoch
  seconds/ms; also the Binance REST names ``fundingTime,fundingRate,markPrice``. Without an
  interval column every row gets the ``interval_h`` argument (8 by default).

Every settlement time is rounded to the nearest minute (this removes the jitter). Rates stay exact
(Decimal parsed from the text). Rate > 0: longs pay shorts. A missing settlement (two consecutive
settlements further apart than the row's funding interval) is reported as a gap, never filled.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

from ballast.adapters.data.gaps import Coverage, Gap, missing_between
from ballast.adapters.data.klines import DataError, parse_timestamp, read_csv, read_header
from ballast.engine.kernel.clock import NS_PER_HOUR, NS_PER_MINUTE

_TIME = ("calc_time", "fundingtime", "funding_time", "timestamp", "time", "date", "datetime")
_RATE = ("last_funding_rate", "funding_rate", "fundingrate", "rate")
_INTERVAL = ("funding_interval_hours", "interval_hours")
_MARK = ("mark_price", "markprice", "mark")


@dataclass(frozen=True, slots=True)
class FundingPoint:
    """One settlement: at ``ts_ns`` positions paid ``rate`` (> 0: longs pay) for the
    ``interval_h`` hours that ended then; ``mark`` is the settlement mark price when known."""

    ts_ns: int
    rate: Decimal
    interval_h: int
    mark: Decimal | None = None


@dataclass
class FundingSeries:
    """The settlements of one perpetual, in time order, with the missing ones as gaps
    (``Gap.after_ns`` = the settlement before the hole)."""

    symbol: str
    points: list[FundingPoint]
    gaps: list[Gap] = field(default_factory=list)
    source: str = ""

    @property
    def missing(self) -> int:
        return sum(g.missing for g in self.gaps)

    def between(self, start_ns: int | None, end_ns: int | None) -> FundingSeries:
        """Settlements with ``start_ns <= ts_ns < end_ns`` (None = unbounded), gaps inside only."""
        points = [
            p
            for p in self.points
            if (start_ns is None or p.ts_ns >= start_ns) and (end_ns is None or p.ts_ns < end_ns)
        ]
        return replace(self, points=points, gaps=funding_gaps(points))

    def coverage(self) -> Coverage:
        """Coverage of this series for a :class:`ballast.adapters.data.gaps.DataReport`."""
        pts = self.points
        first, last = (pts[0].ts_ns, pts[-1].ts_ns) if pts else (None, None)
        step = (pts[-1].interval_h if pts else 8) * NS_PER_HOUR
        return Coverage(
            self.symbol, "funding", self.source, len(pts), first, last, step, tuple(self.gaps)
        )


def funding_gaps(points: list[FundingPoint]) -> list[Gap]:
    """Missing settlements: a step longer than the later point's funding interval."""
    gaps: list[Gap] = []
    for prev, cur in pairwise(points):
        missing = missing_between(prev.ts_ns, cur.ts_ns, cur.interval_h * NS_PER_HOUR)
        if missing > 0:
            gaps.append(Gap(prev.ts_ns, missing))
    return gaps


def round_to_minute(ts_ns: int) -> int:
    """Nearest whole minute (half a minute rounds up)."""
    return (ts_ns + NS_PER_MINUTE // 2) // NS_PER_MINUTE * NS_PER_MINUTE


def load_funding(path: str | Path, symbol: str, interval_h: int = 8) -> FundingSeries:
    """Load a funding CSV (see the module docstring for the layouts).

    Raises :class:`DataError` naming ``file:line`` for a missing file, an unknown header, an
    unreadable row, a non-finite rate, a non-positive interval or a time that does not increase.
    """
    file = Path(path)
    rows = read_csv(file)
    cols = _columns(read_header(rows), file)
    points: list[FundingPoint] = []
    for line_no, row in rows:
        where = f"{file}:{line_no}"
        point = _parse_point(row, cols, interval_h, where)
        if points and point.ts_ns <= points[-1].ts_ns:
            raise DataError(f"{where}: time does not increase ({row[cols.time]})")
        points.append(point)
    return FundingSeries(symbol, points, funding_gaps(points), str(file))


@dataclass(frozen=True, slots=True)
class _Cols:
    time: int
    rate: int
    interval: int | None
    mark: int | None


def _columns(header: list[str], file: Path) -> _Cols:
    time, rate = _find(header, _TIME), _find(header, _RATE)
    if time is None or rate is None:
        raise DataError(
            f"{file}: header {header} lacks a time column ({', '.join(_TIME)}) "
            f"or a rate column ({', '.join(_RATE)})"
        )
    return _Cols(time, rate, _find(header, _INTERVAL), _find(header, _MARK))


def _find(header: list[str], names: tuple[str, ...]) -> int | None:
    return next((header.index(n) for n in names if n in header), None)


def _parse_point(row: list[str], cols: _Cols, interval_h: int, where: str) -> FundingPoint:
    try:
        ts = round_to_minute(parse_timestamp(row[cols.time]))
        rate = Decimal(row[cols.rate].strip())
        hours = interval_h if cols.interval is None else _hours(row[cols.interval])
        mark = None if cols.mark is None else _mark(row[cols.mark])
    except (IndexError, ArithmeticError, ValueError, DataError) as exc:
        raise DataError(f"{where}: bad row {row!r}: {exc}") from None
    if not rate.is_finite() or hours <= 0 or (mark is not None and mark <= 0):
        raise DataError(f"{where}: impossible values rate={rate} interval={hours} mark={mark}")
    return FundingPoint(ts, rate, hours, mark)


def _hours(text: str) -> int:
    value = Decimal(text.strip())
    if value != value.to_integral_value():
        raise ValueError(f"funding interval {text!r} is not a whole number of hours")
    return int(value)


def _mark(text: str) -> Decimal | None:
    """An empty mark cell means unknown (old Binance rows have none)."""
    text = text.strip()
    if not text:
        return None
    value = Decimal(text)
    if not value.is_finite():
        raise ValueError(f"mark price {text!r} is not finite")
    return value
