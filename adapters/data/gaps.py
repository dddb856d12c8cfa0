"""Gaps and coverage of market-data series: found, counted and reported, never filled.

A :class:`Gap` sits between two consecutive points of a series that are further apart than the
series' step. ``after_ns`` is the time of the last point present before the gap, in the series'
own naming: the candle *open* time for klines (Binance names candles by open time), the
settlement time for funding. The first missing point is therefore at ``after_ns + step``.

``missing`` = ceil(distance / step) − 1, so any distance longer than one step reports at least
one missing point (an off-grid timestamp is reported, not hidden).

A :class:`DataReport` lists, per series, the covered range and every gap, then every point the
loader rejected as bad data (:class:`RejectedPoint`), and renders lines such as
``gaps: BTC/USDT 1 missing bar at 2023-03-24 13:00`` and
``rejected: BTC/USDT:USDT funding rate 5.0 at 2023-03-10 08:00 (|rate| above 0.03)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from ballast.engine.kernel.clock import NS_PER_SECOND


@dataclass(frozen=True, slots=True)
class Gap:
    """``missing`` points absent after the point at ``after_ns`` (see the module docstring)."""

    after_ns: int
    missing: int


def missing_between(prev_ns: int, cur_ns: int, step_ns: int) -> int:
    """How many points of a ``step_ns`` grid are missing between two consecutive points."""
    return -(-(cur_ns - prev_ns) // step_ns) - 1


def find_gaps(times: Iterable[int], step_ns: int) -> list[Gap]:
    """Every gap of an increasing sequence of timestamps on a ``step_ns`` grid."""
    gaps: list[Gap] = []
    prev: int | None = None
    for ts in times:
        if prev is not None:
            missing = missing_between(prev, ts, step_ns)
            if missing > 0:
                gaps.append(Gap(prev, missing))
        prev = ts
    return gaps


def format_ts(ts_ns: int) -> str:
    """``2023-03-24 13:00`` (UTC; seconds shown only when not zero)."""
    moment = datetime.fromtimestamp(ts_ns / NS_PER_SECOND, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if moment.second else "%Y-%m-%d %H:%M")


@dataclass(frozen=True, slots=True)
class SeriesGap:
    """One gap of one named series. ``what`` is the point's noun: ``bar`` or ``settlement``."""

    symbol: str
    what: str
    after_ns: int
    missing: int
    step_ns: int

    @property
    def first_missing_ns(self) -> int:
        return self.after_ns + self.step_ns

    def describe(self) -> str:
        """``BTC/USDT 1 missing bar at 2023-03-24 13:00`` (or ``3 missing bars from ...``)."""
        noun = self.what if self.missing == 1 else f"{self.what}s"
        where = "at" if self.missing == 1 else "from"
        when = format_ts(self.first_missing_ns)
        return f"{self.symbol} {self.missing} missing {noun} {where} {when}"


@dataclass(frozen=True, slots=True)
class Coverage:
    """What one series covers. ``kind`` is ``spot``, ``perp`` or ``funding``.

    ``first_ns``/``last_ns`` are event times: bar *close* times, settlement times. Gaps use the
    series' own naming (see the module docstring).
    """

    symbol: str
    kind: str
    source: str
    count: int
    first_ns: int | None
    last_ns: int | None
    step_ns: int
    gaps: tuple[Gap, ...] = ()

    @property
    def missing(self) -> int:
        return sum(g.missing for g in self.gaps)

    @property
    def what(self) -> str:
        return "settlement" if self.kind == "funding" else "bar"

    def series_gaps(self) -> list[SeriesGap]:
        return [
            SeriesGap(self.symbol, self.what, g.after_ns, g.missing, self.step_ns)
            for g in self.gaps
        ]

    def describe(self) -> str:
        if self.first_ns is None or self.last_ns is None:
            return f"{self.symbol} {self.kind}: no data ({self.source})"
        span = f"{format_ts(self.first_ns)} .. {format_ts(self.last_ns)}"
        holes = f"{len(self.gaps)} gap(s), {self.missing} missing" if self.gaps else "no gaps"
        counted = f"{self.count:,} {self.what}s" + (" closing" if self.what == "bar" else "")
        return f"{self.symbol} {self.kind}: {counted} {span}, {holes} ({self.source})"


@dataclass(frozen=True, slots=True)
class RejectedPoint:
    """A data point left out as bad data: ``what`` it was, its ``value`` and ``why``."""

    symbol: str
    what: str
    ts_ns: int
    value: str
    why: str

    def describe(self) -> str:
        """``BTC/USDT:USDT funding rate 5.0 at 2023-03-10 08:00 (|rate| above 0.03)``."""
        return f"{self.symbol} {self.what} {self.value} at {format_ts(self.ts_ns)} ({self.why})"


@dataclass(frozen=True, slots=True)
class DataReport:
    """Coverage and gaps of every series of a market bundle, and the points it rejected."""

    series: tuple[Coverage, ...]
    rejected: tuple[RejectedPoint, ...] = ()

    def gaps(self) -> list[SeriesGap]:
        return [gap for cov in self.series for gap in cov.series_gaps()]

    @property
    def missing(self) -> int:
        return sum(cov.missing for cov in self.series)

    def lines(self) -> list[str]:
        """One line per series, one ``gaps: ...`` line per gap, one ``rejected: ...`` line per
        rejected point."""
        return (
            [cov.describe() for cov in self.series]
            + [f"gaps: {gap.describe()}" for gap in self.gaps()]
            + [f"rejected: {point.describe()}" for point in self.rejected]
        )

    def __str__(self) -> str:
        return "\n".join(self.lines())
