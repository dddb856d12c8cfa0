"""A backtest's market data: spot and perp bars, perp marks with funding, funding settlements.

:class:`MarketBundle` turns a time-ordered feed of bars into the market event stream of a
backtest, plus the funding settlements the simulated venue must apply, plus a report of what the
data covers and where it has holes. It is built from CSV files (:meth:`MarketBundle.load`), from
loaded series (:meth:`MarketBundle.from_series`) or from a synthetic market
(``ballast.adapters.data.synthetic.SyntheticMarket.bundle()``): a backtester sees the same API.

**Event stream** (:meth:`MarketBundle.events`, a lazy iterator; ``list()`` it for a list):

- a :class:`Bar` per spot bar (``BTC/USDT``) and per perp bar (``BTC/USDT:USDT``);
- after the bars of a timestamp, one :class:`MarkPriceUpdated` per perp bar at that time:
  ``mark`` = perp close; ``index`` = the spot close at the same time, or the perp close when the
  spot bar is missing; ``funding_rate`` = the rate of the LAST settlement at or before that time
  (never a future one; 0 before the first known settlement); ``next_funding_ns`` = the next
  settlement strictly after that time on the UTC-midnight-aligned grid of the funding interval
  (00:00/08:00/16:00 UTC for 8 h).

Fixed order for equal timestamps: spot bars, then perp bars, then marks; each group by symbol.
``ts_event`` of a bar is its close time; ``ts_init`` equals ``ts_event``.

**Settlements** (:attr:`MarketBundle.settlements`): ``(ts_ns, symbol, rate)`` in time order (ties
by symbol). A settlement at ``t`` uses the mark at ``t``: apply it after the market events of ``t``
(the mark of ``t`` already carries the rate settled at ``t``).

**Date range** ``[start, end)`` filters by event time (bar close time, settlement time). The marks
near ``start`` still see the settlement made just before ``start`` (the rate was known then).

**Gaps** are reported (:meth:`MarketBundle.report`), never filled: a missing bar is simply not
emitted (and neither is its mark).

**Files** for asset ``A`` and quote ``Q`` (e.g. BTC, USDT) in the data folder, first match wins
(``<label>`` = ``1m``, ``5m``, ``1h``, ``4h``, ``1d``, ``1w``... the bar interval when one is
given; else any label, if only one file of the asset has such a name):

- spot klines: ``aq_spot_<label>.csv`` (lower case, as bundled), ``A_Q.csv`` or ``A-Q.csv`` (as
  Yahoo names its downloads, e.g. ``BTC-USD.csv``);
- perp klines: ``aq_perp_<label>.csv`` or ``A_Q_Q.csv`` (the symbol ``A/Q:Q`` with ``/`` and ``:``
  replaced by ``_``); optional: an asset without perp data is spot only;
- funding: ``aq_perp_funding_8h.csv`` or ``A_Q_Q_funding.csv``; required when perp klines exist.

**Bar interval**: given (``interval_s``), or detected per file from the spacing of its candles
(:func:`ballast.adapters.data.klines.load_klines`), then the same for every file (else
:class:`DataError` naming each file's); bars are stamped at their close and gaps are judged against
that interval.

**No usable data is an error**, never a skip: a missing spot file, a missing perp (or funding)
file of an asset listed in ``perp_assets``, a file with a header and no rows, or a series with no
bar in ``[start, end)`` while others have some, raise :class:`DataError` naming the file.

**Implausible funding rates** (``|rate| > max_abs_funding_rate`` for one settlement, default 3 %)
are bad data: such a settlement never happened. It is left out of the settlements and of the
marks (the rate of the settlement before it stays in force), and listed in the report as
``rejected: ...`` (those in ``[start, end)``, and one before ``start`` whose rate the marks at
``start`` would have carried).

The generic ``<SYMBOL>.csv`` files are any OHLCV CSV
:func:`ballast.adapters.data.klines.load_klines` reads (the generic layout
``timestamp,open,high,low,close,volume`` with candle open times, or a Yahoo download) and any
funding CSV
:func:`ballast.adapters.data.funding.load_funding` reads.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from pathlib import Path

from ballast.adapters.data.funding import FundingSeries, funding_gaps, load_funding
from ballast.adapters.data.gaps import Coverage, DataReport, RejectedPoint
from ballast.adapters.data.klines import DataError, KlineSeries, load_klines
from ballast.engine.kernel.bar_interval import interval_label
from ballast.engine.kernel.clock import NS_PER_HOUR, NS_PER_SECOND
from ballast.engine.kernel.events import Bar, MarketData, MarkPriceUpdated
from ballast.engine.kernel.instruments import is_perp, perp_symbol, spot_of, spot_symbol
from ballast.engine.kernel.timefmt import datetime_to_ns, ns_to_iso, parse_time
from ballast.engine.trading.market_guard import DEFAULT_MAX_ABS_FUNDING_RATE

TimeLike = int | str | datetime
"""Epoch ns (int), ISO 8601 text (naive = UTC) or an aware datetime."""

BarFeed = Callable[[], Iterable[Bar]]
"""Returns, on every call, a fresh iterator over all bars ordered by (ts_event, spot before perp,
symbol)."""

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class FundingSettlement:
    """Funding settled on ``symbol`` at ``ts_ns``: positions pay ``-qty × mark × rate``."""

    ts_ns: int
    symbol: str
    rate: Decimal
    interval_h: int = 8
    mark: Decimal | None = None


class SettlementSchedule:
    """Funding settlements in time order, handed out once each as a driver (the backtest, the
    paper feed) passes their times."""

    def __init__(self, settlements: Iterable[FundingSettlement]) -> None:
        self._items = sorted(settlements, key=lambda s: (s.ts_ns, s.symbol))
        self._next = 0

    def before(self, ts_ns: int) -> list[FundingSettlement]:
        """The settlements not handed out yet that are due strictly before ``ts_ns``."""
        start = self._next
        while self._next < len(self._items) and self._items[self._next].ts_ns < ts_ns:
            self._next += 1
        return self._items[start : self._next]


def to_ns(moment: TimeLike) -> int:
    """Epoch ns of an int (already ns), an aware datetime, or text read by the engine's one
    rule (:func:`ballast.engine.kernel.timefmt.parse_time`: ISO 8601, naive = UTC, or epoch
    s/ms/us/ns by magnitude)."""
    if isinstance(moment, int):
        return moment
    try:
        if isinstance(moment, datetime):
            return datetime_to_ns(moment)
        return parse_time(moment)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def symbol_file(symbol: str) -> str:
    """``BTC/USDT:USDT`` → ``BTC_USDT_USDT`` (a symbol as a file name)."""
    return symbol.replace("/", "_").replace(":", "_")


@dataclass(frozen=True)
class MarketSeries:
    """The loaded series of a data folder, before any date range is cut: what
    :meth:`MarketBundle.load` reads once, and a sweep ships once to its workers (plain data,
    picklable), each cutting its own windows with :meth:`bundle`."""

    spot: tuple[KlineSeries, ...]
    perp: tuple[KlineSeries, ...]
    funding: tuple[FundingSeries, ...]

    @classmethod
    def load(
        cls,
        folder: str | Path,
        assets: Iterable[str],
        quote: str = "USDT",
        *,
        interval_s: int | None = None,
        perp_assets: Iterable[str] = (),
    ) -> MarketSeries:
        """The series of :meth:`MarketBundle.load`."""
        root = Path(folder)
        required = set(perp_assets)
        spot: list[KlineSeries] = []
        perp: list[KlineSeries] = []
        funding: list[FundingSeries] = []
        for asset in assets:
            files = _AssetFiles.find(root, asset, quote, interval_s, perp=asset in required)
            spot.append(load_klines(files.spot, spot_symbol(asset, quote), interval_s))
            if files.perp is not None and files.funding is not None:
                symbol = perp_symbol(asset, quote)
                perp.append(load_klines(files.perp, symbol, interval_s))
                funding.append(load_funding(files.funding, symbol))
        if interval_s is None:
            _require_one_interval([*spot, *perp])
        return cls(tuple(spot), tuple(perp), tuple(funding))

    def between(self, start: TimeLike | None, end: TimeLike | None) -> MarketSeries:
        """Only the bars closing in ``[start, end)``, every funding settlement (the marks at
        ``start`` need the one before it): what any bundle within that range is cut from."""
        lo = None if start is None else to_ns(start)
        hi = None if end is None else to_ns(end)
        return MarketSeries(
            tuple(s.between(lo, hi) for s in self.spot),
            tuple(s.between(lo, hi) for s in self.perp),
            self.funding,
        )

    def bundle(
        self,
        *,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        max_abs_funding_rate: Decimal = DEFAULT_MAX_ABS_FUNDING_RATE,
    ) -> MarketBundle:
        """The bundle of ``[start, end)``: :meth:`MarketBundle.from_series`."""
        return MarketBundle.from_series(
            self.spot,
            self.perp,
            self.funding,
            start=start,
            end=end,
            max_abs_funding_rate=max_abs_funding_rate,
        )


class MarketBundle:
    """Market events, funding settlements and a gap report for one backtest (module docstring).

    ``bars`` is a :data:`BarFeed`; ``settlements`` are every settlement known (also those before
    ``start``: marks need the last one), kept in :attr:`funding_history`; those in
    ``[start, end)`` are :attr:`settlements`. ``report`` describes the data; ``span`` (first,
    last bar close) defaults to the report's bar coverage.
    """

    def __init__(
        self,
        bars: BarFeed,
        settlements: Sequence[FundingSettlement],
        report: DataReport,
        *,
        start: int | None = None,
        end: int | None = None,
        span: tuple[int, int] | None = None,
        available: tuple[int, int] | None = None,
    ) -> None:
        self._bars = bars
        self._range = (start, end)
        self._available = available
        self.funding_history: list[FundingSettlement] = sorted(
            settlements, key=lambda s: (s.ts_ns, s.symbol)
        )
        """Every settlement known, also before ``start``: what the marks are built from."""
        self.settlements: list[FundingSettlement] = [
            s for s in self.funding_history if _inside(s.ts_ns, start, end)
        ]
        """The settlements in ``[start, end)``: what the venue must apply."""
        self._report = report
        self._span = span

    # ------------------------------------------------------------------------ construction

    @classmethod
    def load(
        cls,
        folder: str | Path,
        assets: Iterable[str],
        quote: str = "USDT",
        *,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        interval_s: int | None = None,
        perp_assets: Iterable[str] = (),
        max_abs_funding_rate: Decimal = DEFAULT_MAX_ABS_FUNDING_RATE,
    ) -> MarketBundle:
        """Load the CSV files of ``assets`` from ``folder`` (names in the module docstring); the
        perp and funding files of ``perp_assets`` are required, the others' optional. Bars are
        ``interval_s`` long, or (None) each file's own interval, detected from its times."""
        series = MarketSeries.load(
            folder, assets, quote, interval_s=interval_s, perp_assets=perp_assets
        )
        return series.bundle(start=start, end=end, max_abs_funding_rate=max_abs_funding_rate)

    @classmethod
    def from_series(
        cls,
        spot: Sequence[KlineSeries],
        perp: Sequence[KlineSeries],
        funding: Sequence[FundingSeries],
        *,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        max_abs_funding_rate: Decimal = DEFAULT_MAX_ABS_FUNDING_RATE,
    ) -> MarketBundle:
        """A bundle over loaded series, cut to ``[start, end)`` (bar close / settlement times).
        Every series must have data (module docstring); implausible funding rates are left out
        and reported."""
        lo = None if start is None else to_ns(start)
        hi = None if end is None else to_ns(end)
        if lo is not None and hi is not None and lo >= hi:
            raise DataError(f"start {ns_to_iso(lo)[:16]} is not before end {ns_to_iso(hi)[:16]}")
        _require_rows(spot, perp, funding)
        closes = [bar.ts_event for s in (*spot, *perp) for bar in (s.bars[:1] + s.bars[-1:])]
        available = (min(closes), max(closes)) if closes else None
        cut = [s.between(lo, hi) for s in (*spot, *perp)]
        _require_bars_in_range([*spot, *perp], cut, lo, hi)
        spot, perp = cut[: len(spot)], cut[len(spot) :]
        funding, rejected = _screen_funding(funding, max_abs_funding_rate, lo, hi)
        report = DataReport(
            tuple(s.coverage("spot") for s in spot)
            + tuple(s.coverage("perp") for s in perp)
            + tuple(f.between(lo, hi).coverage() for f in funding),
            tuple(rejected),
        )
        settlements = [
            FundingSettlement(p.ts_ns, f.symbol, p.rate, p.interval_h, p.mark)
            for f in funding
            for p in f.points
        ]
        # One symbol per series: merged by time alone, ties in (spot before perp, symbol) order
        # (heapq.merge keeps the order of its inputs for equal keys), which is bar_order's.
        ranked = sorted((*spot, *perp), key=lambda s: (is_perp(s.symbol), s.symbol))
        lists = [s.bars for s in ranked]
        return cls(
            lambda: heapq.merge(*lists, key=_close_time),
            settlements,
            report,
            start=lo,
            end=hi,
            available=available,
        )

    # ------------------------------------------------------------------------------- queries

    def report(self) -> DataReport:
        """Covered range and every gap of every series."""
        return self._report

    def span(self) -> tuple[int, int]:
        """(first, last) bar close time over all bar series."""
        if self._span is not None:
            return self._span
        bars = [c for c in self._report.series if c.kind != "funding" and c.first_ns is not None]
        if not bars:
            raise DataError(self._why_no_bars())
        return min(_first(c) for c in bars), max(_last(c) for c in bars)

    def _why_no_bars(self) -> str:
        start, end = self._range
        if self._available is None or (start is None and end is None):
            return "the market data has no bars"
        wanted = _wanted(start, end)
        first, last = self._available
        return (
            f"no bars {wanted}: the data has bars closing from {ns_to_iso(first)[:16]} "
            f"to {ns_to_iso(last)[:16]}"
        )

    @property
    def interval_s(self) -> int:
        """The bar interval in seconds (the shortest over the bar series)."""
        steps = [c.step_ns for c in self._report.series if c.kind != "funding"]
        if not steps:
            raise DataError(self._why_no_bars())
        return min(steps) // NS_PER_SECOND

    def events(self) -> Iterator[MarketData]:
        """The market event stream, lazily (see the module docstring for content and order)."""
        marks = _MarkMaker(self.funding_history)
        mark, spot_close = marks.mark, marks.spot_close
        previous: tuple[int, bool, str] | None = None
        perps: list[Bar] = []
        perp_symbols: dict[str, bool] = {}
        for bar in self._bars():
            symbol = bar.symbol
            perp = perp_symbols.get(symbol)
            if perp is None:
                perp = perp_symbols[symbol] = is_perp(symbol)
            key = (bar.ts_event, perp, symbol)  # bar_order(bar)
            if previous is not None:
                if key <= previous:
                    raise DataError(f"bar feed out of order: {key} after {previous}")
                if perps and key[0] != previous[0]:  # the marks of the instant before
                    for perp_bar in perps:
                        yield mark(perp_bar)
                    perps.clear()
            previous = key
            if perp:
                perps.append(bar)
            else:
                spot_close(bar)
            yield bar
        for perp_bar in perps:
            yield mark(perp_bar)


def _wanted(start: int | None, end: int | None) -> str:
    """``from 2023-03-01T00:00 before 2023-03-22T00:00`` (the bounds that are set)."""
    bounds = [f"from {ns_to_iso(start)[:16]}"] if start is not None else []
    bounds += [f"before {ns_to_iso(end)[:16]}"] if end is not None else []
    return " ".join(bounds)


def _require_one_interval(series: Sequence[KlineSeries]) -> None:
    """Files whose detected intervals differ are refused: one study runs on one bar interval
    (a daily file beside hourly ones is a mistake to point out, not to trade through)."""
    intervals = {s.interval_s for s in series if s.bars}
    if len(intervals) > 1:
        found = ", ".join(
            f"{Path(s.source).name or s.symbol} {interval_label(s.interval_s)}" for s in series
        )
        raise DataError(
            f"bars of different intervals ({found}): give files of one interval, or choose it "
            f'with [paper] bar_interval (e.g. "1d") or --bar-interval'
        )


def _require_rows(
    spot: Sequence[KlineSeries], perp: Sequence[KlineSeries], funding: Sequence[FundingSeries]
) -> None:
    """Every series has at least one row: a file with only its header is no data."""
    for series in (*spot, *perp):
        if not series.bars:
            where = series.source or series.symbol
            raise DataError(f"{where}: no {series.symbol} bars, only a header")
    for rates in funding:
        if not rates.points:
            where = rates.source or rates.symbol
            raise DataError(f"{where}: no {rates.symbol} funding rates, only a header")


def _require_bars_in_range(
    whole: Sequence[KlineSeries], cut: Sequence[KlineSeries], lo: int | None, hi: int | None
) -> None:
    """Each series has bars in the range, unless none has (the bundle then says what the data
    covers when asked for its span)."""
    if not any(series.bars for series in cut):
        return
    for full, part in zip(whole, cut, strict=True):
        if not part.bars:
            first, last = full.bars[0].ts_event, full.bars[-1].ts_event
            raise DataError(
                f"{full.source or full.symbol}: no {full.symbol} bars {_wanted(lo, hi)}: the file "
                f"has bars closing from {ns_to_iso(first)[:16]} to {ns_to_iso(last)[:16]}"
            )


def _screen_funding(
    funding: Sequence[FundingSeries], limit: Decimal, lo: int | None, hi: int | None
) -> tuple[list[FundingSeries], list[RejectedPoint]]:
    """The series without their implausible rates, and the rejected points worth reporting:
    those in ``[lo, hi)`` and one before ``lo`` that the marks at ``lo`` would have carried."""
    kept: list[FundingSeries] = []
    rejected: list[RejectedPoint] = []
    for series in funding:
        good = [p for p in series.points if abs(p.rate) <= limit]
        kept.append(replace(series, points=good, gaps=funding_gaps(good)))
        carried = max((p.ts_ns for p in good if lo is not None and p.ts_ns < lo), default=None)
        why = f"|rate| above {limit}"
        rejected += [
            RejectedPoint(series.symbol, "funding rate", p.ts_ns, str(p.rate), why)
            for p in series.points
            if abs(p.rate) > limit and _reported(p.ts_ns, lo, hi, carried)
        ]
    return kept, sorted(rejected, key=lambda r: (r.ts_ns, r.symbol))


def _reported(ts: int, lo: int | None, hi: int | None, carried: int | None) -> bool:
    """In range, or before it but after the last good settlement before it."""
    if hi is not None and ts >= hi:
        return False
    return lo is None or ts >= lo or carried is None or ts > carried


_close_time = attrgetter("ts_event")


def bar_order(bar: Bar) -> tuple[int, bool, str]:
    """Sort key of the stream: time, spot (False) before perp (True), symbol."""
    return (bar.ts_event, is_perp(bar.symbol), bar.symbol)


def _inside(ts: int, start: int | None, end: int | None) -> bool:
    return (start is None or ts >= start) and (end is None or ts < end)


def _first(cov: Coverage) -> int:
    assert cov.first_ns is not None
    return cov.first_ns


def _last(cov: Coverage) -> int:
    assert cov.last_ns is not None
    return cov.last_ns


class _MarkMaker:
    """Builds the marks of one timestamp from its perp bars, the spot closes seen at the same
    timestamp and the settlements made so far (a cursor per symbol: no look-ahead)."""

    def __init__(self, history: Sequence[FundingSettlement]) -> None:
        self._by_symbol: dict[str, list[FundingSettlement]] = {}
        for s in history:
            self._by_symbol.setdefault(s.symbol, []).append(s)
        self._next: dict[str, int] = dict.fromkeys(self._by_symbol, 0)
        self._spot: dict[str, tuple[int, Decimal]] = {}
        self._spot_of: dict[str, str] = {}

    def spot_close(self, bar: Bar) -> None:
        self._spot[bar.symbol] = (bar.ts_event, bar.close)

    def mark(self, bar: Bar) -> MarkPriceUpdated:
        """The mark of perp ``bar`` (after every bar of its timestamp was seen)."""
        ts = bar.ts_event
        spot_symbol = self._spot_of.get(bar.symbol)
        if spot_symbol is None:
            spot_symbol = self._spot_of[bar.symbol] = spot_of(bar.symbol)
        spot = self._spot.get(spot_symbol)
        index = spot[1] if spot is not None and spot[0] == ts else bar.close
        rate, interval_h = self._settled(bar.symbol, ts)
        step = interval_h * NS_PER_HOUR
        next_ns = (ts // step + 1) * step
        return MarkPriceUpdated(ts, ts, bar.symbol, bar.close, index, rate, next_ns)

    def _settled(self, symbol: str, ts: int) -> tuple[Decimal, int]:
        """(rate, interval) of the last settlement at or before ``ts``; (0, first interval or 8)
        before any."""
        known = self._by_symbol.get(symbol, [])
        i = self._next.get(symbol, 0)
        while i < len(known) and known[i].ts_ns <= ts:
            i += 1
        self._next[symbol] = i
        if i == 0:
            return _ZERO, known[0].interval_h if known else 8
        return known[i - 1].rate, known[i - 1].interval_h


@dataclass(frozen=True, slots=True)
class _AssetFiles:
    spot: Path
    perp: Path | None
    funding: Path | None

    @classmethod
    def find(
        cls, root: Path, asset: str, quote: str, interval_s: int | None, *, perp: bool = False
    ) -> _AssetFiles:
        """The files of ``asset``; ``perp``: its perp klines (and so funding) are required.
        ``interval_s`` None: a bundled-style name of any interval (``aq_spot_1d.csv``), if only
        one."""
        pair = f"{asset}{quote}".lower()
        spot_sym, perp_sym = (
            symbol_file(spot_symbol(asset, quote)),
            symbol_file(perp_symbol(asset, quote)),
        )
        yahoo = f"{asset}-{quote}.csv"
        label = (
            interval_label(interval_s) if interval_s is not None else _label_in(root, pair, quote)
        )
        spot_named = [f"{pair}_spot_{label}.csv"]
        spot = _first_file(root, [*spot_named, f"{spot_sym}.csv", yahoo])
        perp_named = [f"{pair}_perp_{label}.csv"]
        perps = [*perp_named, f"{perp_sym}.csv"]
        klines = _first_file(root, perps)
        names = [f"{pair}_perp_funding_8h.csv", f"{perp_sym}_funding.csv"]
        funding = _first_file(root, names)
        if spot is None:
            tried = " or ".join([*spot_named, f"{spot_sym}.csv", yahoo])
            raise DataError(f"{root}: no spot klines for {asset} (tried {tried})")
        if perp and klines is None:
            raise DataError(
                f"{root}: no perp klines for {perp_symbol(asset, quote)}, a configured "
                f"instrument (tried {' or '.join(perps)})"
            )
        if klines is not None and funding is None:
            raise DataError(
                f"{root}: {klines.name} has no funding file (tried {' or '.join(names)})"
            )
        return cls(spot, klines, funding)


def _label_in(root: Path, pair: str, quote: str) -> str:
    """The interval label of the bundled-style names (``btcusdt_spot_1h.csv``) when none is given:
    the one of the pair's spot files, else of its perp files (:class:`DataError` if they have
    several: the interval must then be chosen); else, to name the file missing, the one of the
    folder's other files in ``quote`` if they agree; else ``<interval>``."""
    for pattern in (f"{pair}_spot_*.csv", f"{pair}_perp_*.csv"):
        files = sorted(p.name for p in root.glob(pattern) if _label_of(p) is not None)
        labels = sorted({label for name in files if (label := _label_of(Path(name)))})
        if len(labels) > 1:
            raise DataError(
                f"{root}: bars of several intervals ({', '.join(files)}): choose one with [paper] "
                f'bar_interval (e.g. "1d") or --bar-interval'
            )
        if labels:
            return labels[0]
    others = {label for p in root.glob(f"*{quote.lower()}_*_*.csv") if (label := _label_of(p))}
    return others.pop() if len(others) == 1 else "<interval>"


def _label_of(file: Path) -> str | None:
    """The interval label of a ``<pair>_spot_<label>.csv`` or ``<pair>_perp_<label>.csv`` file
    (None for another name, e.g. ``btcusdt_perp_funding_8h.csv``)."""
    match = _LABELLED.fullmatch(file.name)
    return None if match is None else match[1]


_LABELLED = re.compile(r"[a-z0-9]+_(?:spot|perp)_(\d+[smhdw])\.csv")


def _first_file(root: Path, names: list[str]) -> Path | None:
    return next((root / n for n in names if (root / n).is_file()), None)
