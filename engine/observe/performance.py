"""Performance statistics of a run, recorded from its events (live on the bus, or from a journal).

:class:`PerformanceRecorder` consumes PortfolioSnapshot, RiskBudgetChanged, RebalanceDecided,
OrderFilled, FundingPaid and SessionStarted, and keeps the curves and totals a report needs (and,
through :class:`~ballast.engine.observe.risk_activity.RiskActivityRecorder`, the events that say
which risk features acted);
:meth:`PerformanceRecorder.summary` turns them into a :class:`PerformanceSummary`.
:func:`from_journal` builds the same recorder from any journal, so every run (backtest, paper or
live) can be reported later; fed the same events, both give identical results.

Conventions (crypto trades every day):

- **Time** is event time (``ts_event``), never the wall clock. The measured window runs from the
  first to the last PortfolioSnapshot. A year is 365 days of 24 h (``DAYS_PER_YEAR``).
- **Returns are time-weighted**: each snapshot steps an equity index by
  ``(NAV − Δtransfers) / previous NAV``, so deposits and withdrawals are not returns. Without
  transfers the index is simply NAV / initial NAV. Total return = final index − 1.
- **Daily returns** come from the index at the *last snapshot of each UTC day* (the day's close):
  r_d = close_d / close_(d−1) − 1. The first return runs from the first snapshot to the close of
  its day, and is left out when that close *is* the first snapshot.
- **CAGR** = (1 + total return) ^ (1 / years) − 1, years = window length / 365 days (None for an
  empty window; −100 % when the index reached zero; +inf when it overflows). Short windows
  extrapolate wildly: read it together with the period.
- **Volatility** = sample standard deviation (n − 1) of daily returns × √365.
- **Sharpe** = (mean daily return − rf/365) / that standard deviation × √365, rf being the annual
  risk-free rate (0 by default).
- **Sortino** = (mean daily return − rf/365) / downside deviation × √365, downside deviation =
  √(Σ min(0, r_d − rf/365)² / n) over all n days (Sortino & Price). Sharpe, Sortino and volatility
  need two daily returns and a non-zero deviation, else they are None.
- **Max drawdown** = the largest fall of the equity index from its running peak, as a positive
  fraction (0.25 = −25 %), checked on every snapshot, with the dates of the peak, the trough and the
  recovery (the first snapshot back at the peak; None while not recovered).
- **Turnover** = Σ |qty × price| of all fills, in the quote currency (exact). Annualised turnover
  = turnover / average NAV / years, average NAV being the mean of the daily closing NAVs.
- **Fees paid, funding PnL, transfers**: changes of the snapshots' cumulative figures since the
  first snapshot (exact Decimals). Funding per symbol adds up FundingPaid amounts.
- **Rebalances**: RebalanceDecided events that carry at least one intent.
- **Targets and bands** are known from RebalanceDecided (target, band edges per asset); between
  decisions a RiskBudgetChanged moves the band around the last target to its new widths, as the
  planner would (the session's band rules, from its SessionStarted config: ``BandRules``).
- **Regime time**: the fraction of the window spent in each regime of RiskBudgetChanged; time
  before the first one counts as ``"unknown"``.
- **Several sessions in one journal**: a SessionStarted restarts the Portfolio's books. The
  recorder links them: its totals go on from where they were, and the NAV change across the
  restart is booked as a transfer (returns only measure what a running session saw).

Curves keep at most one point per ``sample_interval_ns`` of event time (the first snapshot, then
the last one of each interval; 0 keeps every snapshot). Statistics use every snapshot regardless.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import ClassVar, Final

import msgspec

from ballast.engine.kernel.bus import Bus, Subscription
from ballast.engine.kernel.clock import DAYS_PER_YEAR, NS_PER_DAY, NS_PER_HOUR, NS_PER_YEAR
from ballast.engine.kernel.config import config_from_json
from ballast.engine.kernel.events import (
    FundingPaid,
    Message,
    OrderFilled,
    PortfolioSnapshot,
    RebalanceDecided,
    RiskBudgetChanged,
    SessionStarted,
)
from ballast.engine.kernel.instruments import base_of
from ballast.engine.kernel.journal import JournalReader
from ballast.engine.kernel.timefmt import ns_to_iso
from ballast.engine.observe.risk_activity import RiskActivity, RiskActivityRecorder
from ballast.engine.trading.bands import BandRules

UNKNOWN_REGIME: Final = "unknown"


def _band_rules(config_json: str) -> BandRules:
    """The band rules of a session's recorded config (the default rules if it does not read)."""
    try:
        return BandRules.of(config_from_json(config_json)) if config_json else BandRules()
    except (ValueError, TypeError, msgspec.MsgspecError):
        return BandRules()


_ZERO: Final = Decimal(0)
_CENT: Final = Decimal("0.01")


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """One sampled snapshot. ``fees_paid``/``funding_pnl`` are cumulative since the first snapshot;
    ``drawdown`` is the equity index's fall from its running peak (≥ 0); weights are net weights."""

    ts_ns: int
    nav: Decimal
    gross_leverage: Decimal
    fees_paid: Decimal
    funding_pnl: Decimal
    index: float
    drawdown: float
    weights: tuple[tuple[str, Decimal], ...]

    def weight(self, asset: str) -> Decimal:
        """Net weight of ``asset`` (0 when it was not in the snapshot)."""
        return next((w for a, w in self.weights if a == asset), _ZERO)


@dataclass(frozen=True, slots=True)
class TargetPoint:
    """Target weight and band edges (absolute weights) of one asset, from a RebalanceDecided."""

    ts_ns: int
    target: Decimal
    band_low: Decimal
    band_high: Decimal


@dataclass(frozen=True, slots=True)
class RegimeChange:
    """From ``ts_ns`` on, this regime and gross leverage cap were in force."""

    ts_ns: int
    regime: str
    max_gross_leverage: Decimal


@dataclass(frozen=True, slots=True)
class DailyClose:
    """The last snapshot of a UTC day (``day`` = days since the Unix epoch)."""

    day: int
    ts_ns: int
    nav: Decimal
    index: float


@dataclass(frozen=True, slots=True)
class RebalanceMark:
    """When a rebalance traded, and which assets."""

    ts_ns: int
    assets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PerformanceSeries:
    """The curves of a run, for charts."""

    points: tuple[CurvePoint, ...]
    targets: Mapping[str, tuple[TargetPoint, ...]]
    regimes: tuple[RegimeChange, ...]
    rebalances: tuple[RebalanceMark, ...]
    closes: tuple[DailyClose, ...]

    @property
    def assets(self) -> tuple[str, ...]:
        """Every asset with a weight or a target, sorted."""
        seen = {a for p in self.points for a, _ in p.weights} | set(self.targets)
        return tuple(sorted(seen))


@dataclass(frozen=True, slots=True)
class PerformanceSummary:
    """Headline figures of a run (conventions in the module docstring). Ratios are fractions."""

    start_ns: int
    end_ns: int
    initial_nav: Decimal
    final_nav: Decimal
    total_return: float
    cagr: float | None
    volatility: float | None
    sharpe: float | None
    sortino: float | None
    risk_free_rate: float
    max_drawdown: float
    drawdown_peak_ns: int | None
    drawdown_trough_ns: int | None
    drawdown_recovery_ns: int | None
    turnover: Decimal
    average_nav: Decimal
    turnover_annual: float | None
    fees_paid: Decimal
    funding_pnl: Decimal
    funding_by_symbol: tuple[tuple[str, Decimal], ...]
    transfers: Decimal
    rebalances: int
    fills: int
    daily_returns: int
    regime_time: tuple[tuple[str, float], ...]

    @property
    def days(self) -> float:
        return (self.end_ns - self.start_ns) / NS_PER_DAY

    @property
    def years(self) -> float:
        return (self.end_ns - self.start_ns) / NS_PER_YEAR


@dataclass(frozen=True, slots=True)
class Performance:
    """A run's summary and curves: what :mod:`ballast.engine.observe.report` draws."""

    summary: PerformanceSummary
    series: PerformanceSeries
    risk: RiskActivity = field(default_factory=RiskActivity)
    """Which risk features acted (:mod:`ballast.engine.observe.risk_activity`)."""


# --------------------------------------------------------------------------- statistics


def daily_returns(closes: Sequence[DailyClose], start_ns: int) -> list[float]:
    """Close-to-close returns of the equity index (1.0 at the first snapshot, at ``start_ns``)."""
    if not closes:
        return []
    levels = [c.index for c in closes]
    if closes[0].ts_ns > start_ns:
        levels.insert(0, 1.0)
    return [b / a - 1.0 for a, b in pairwise(levels) if a > 0]


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _stdev(values: Sequence[float]) -> float:
    mean = _mean(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def annual_volatility(returns: Sequence[float]) -> float | None:
    """Sample standard deviation of daily returns × √365; None with fewer than two returns."""
    if len(returns) < 2:
        return None
    return _stdev(returns) * math.sqrt(DAYS_PER_YEAR)


def sharpe_ratio(returns: Sequence[float], risk_free_rate: float = 0.0) -> float | None:
    """(mean − rf/365) / sample stdev × √365; None with < 2 returns or no variation."""
    if len(returns) < 2:
        return None
    deviation = _stdev(returns)
    if deviation == 0:
        return None
    excess = _mean(returns) - risk_free_rate / DAYS_PER_YEAR
    return excess / deviation * math.sqrt(DAYS_PER_YEAR)


def sortino_ratio(returns: Sequence[float], risk_free_rate: float = 0.0) -> float | None:
    """(mean − rf/365) / √(Σ min(0, r − rf/365)² / n) × √365; None with < 2 returns or no
    return below the risk-free rate."""
    if len(returns) < 2:
        return None
    floor = risk_free_rate / DAYS_PER_YEAR
    downside = math.sqrt(math.fsum(min(0.0, r - floor) ** 2 for r in returns) / len(returns))
    if downside == 0:
        return None
    return (_mean(returns) - floor) / downside * math.sqrt(DAYS_PER_YEAR)


def cagr(growth: float, years: float) -> float | None:
    """Compound annual growth rate of a growth factor (final / initial) over ``years``."""
    if years <= 0:
        return None
    if growth <= 0:
        return -1.0
    try:
        return float(math.exp(math.log(growth) / years) - 1.0)
    except OverflowError:  # a big gain over a few hours: no finite annual rate
        return math.inf


class DrawdownTracker:
    """Running peak of a value series and its deepest fall, with the dates."""

    def __init__(self) -> None:
        self.peak = -math.inf
        self.peak_ns = 0
        self.current = 0.0
        self.max = 0.0
        self.max_peak_ns: int | None = None
        self.trough_ns: int | None = None
        self.recovery_ns: int | None = None

    def update(self, ts_ns: int, value: float) -> float:
        """Take the next value; return the current drawdown (≥ 0)."""
        if value >= self.peak:
            # The peak only rises by being reached again: back at (or above) the peak of the
            # deepest drawdown so far, which is therefore recovered.
            self.peak, self.peak_ns = value, ts_ns
            if self.max > 0 and self.recovery_ns is None:
                self.recovery_ns = ts_ns
        self.current = 1.0 - value / self.peak if self.peak > 0 else 0.0
        if self.current > self.max:
            self.max, self.max_peak_ns = self.current, self.peak_ns
            self.trough_ns, self.recovery_ns = ts_ns, None
        return self.current


# --------------------------------------------------------------------------- recording


def _curve_point(
    snap: PortfolioSnapshot, drawdown: float, fees: Decimal, funding: Decimal, index: float
) -> CurvePoint:
    return CurvePoint(
        ts_ns=snap.ts_event,
        nav=snap.nav,
        gross_leverage=snap.gross_leverage,
        fees_paid=fees,
        funding_pnl=funding,
        index=index,
        drawdown=drawdown,
        weights=tuple(sorted((a.asset, a.weight) for a in snap.assets)),
    )


class PerformanceRecorder:
    """Accumulates a run's performance from its events (``on_event``), one event at a time.

    Not an actor: feed it from the bus (:meth:`attach`) or from a journal (:func:`from_journal`).
    ``sample_interval_ns`` bounds the curves' memory (default: one point per hour).
    """

    CONSUMES: ClassVar[tuple[type[Message], ...]] = (
        SessionStarted,
        PortfolioSnapshot,
        RiskBudgetChanged,
        RebalanceDecided,
        OrderFilled,
        FundingPaid,
        *(
            t
            for t in RiskActivityRecorder.CONSUMES
            if t not in (PortfolioSnapshot, RiskBudgetChanged)
        ),
    )

    def __init__(self, *, sample_interval_ns: int = NS_PER_HOUR) -> None:
        if sample_interval_ns < 0:
            raise ValueError(f"sample_interval_ns must be >= 0, got {sample_interval_ns}")
        self.sample_interval_ns = sample_interval_ns
        self._first: PortfolioSnapshot | None = None
        self._last: PortfolioSnapshot | None = None
        self._restarted = False
        self._fees = self._funding = self._transfers = _ZERO
        self._index = 1.0
        self._drawdown = DrawdownTracker()
        self._points: list[CurvePoint] = []
        self._closes: list[DailyClose] = []
        # The last point and the last close are kept as their inputs and built only once a later
        # one no longer replaces them (or when read): most snapshots are overwritten by the next.
        self._point_tail: tuple[PortfolioSnapshot, float, Decimal, Decimal, float] | None = None
        self._close_tail: tuple[int, int, Decimal, float] | None = None
        self._targets: dict[str, list[TargetPoint]] = {}
        self._regimes: list[RegimeChange] = []
        self._marks: list[RebalanceMark] = []
        self._regime = UNKNOWN_REGIME
        self._regime_ns: dict[str, int] = {}
        self._clock_ns: int | None = None
        self._bands = BandRules()  # the session's band rules (its SessionStarted's config)
        self._turnover = _ZERO
        self._fills = 0
        self._rebalances = 0
        self._funding_by_symbol: dict[str, Decimal] = {}
        self._risk = RiskActivityRecorder()

    # ------------------------------------------------------------------ feeding

    def on_event(self, message: Message) -> None:
        """Take one event; events of other types are ignored."""
        self._risk.on_event(message)
        match message:
            case PortfolioSnapshot():
                self._on_snapshot(message)
            case RiskBudgetChanged():
                self._on_budget(message)
            case RebalanceDecided():
                self._on_decided(message)
            case OrderFilled():
                self._on_fill(message)
            case FundingPaid():
                self._on_funding(message)
            case SessionStarted():
                self._restarted = self._last is not None
                self._bands = _band_rules(message.config_json)

    def attach(self, bus: Bus) -> list[Subscription]:
        """Subscribe :meth:`on_event` to every consumed type on ``bus``."""
        return [bus.subscribe(t, self.on_event, name="performance") for t in self.CONSUMES]

    def _on_snapshot(self, snap: PortfolioSnapshot) -> None:
        prev = self._last
        if prev is None:
            self._first = snap
            self._clock_ns = snap.ts_event
        else:
            self._advance(snap.ts_event)
            self._step(prev, snap)
        self._last = snap
        drawdown = self._drawdown.update(snap.ts_event, self._index)
        self._close_day(snap)
        self._sample(snap, drawdown)

    def _step(self, prev: PortfolioSnapshot, snap: PortfolioSnapshot) -> None:
        """Add the changes since ``prev`` to the totals and step the equity index."""
        if self._restarted:
            self._restarted = False
            transfer = snap.nav - prev.nav
        else:
            transfer = snap.transfers - prev.transfers
            self._fees += snap.fees_paid - prev.fees_paid
            self._funding += snap.funding_pnl - prev.funding_pnl
        self._transfers += transfer
        if prev.nav > 0:
            self._index *= float((snap.nav - transfer) / prev.nav)

    def _close_day(self, snap: PortfolioSnapshot) -> None:
        """The day's close is its last snapshot: a later one of the same day replaces it."""
        close = (snap.ts_event // NS_PER_DAY, snap.ts_event, snap.nav, self._index)
        tail = self._close_tail
        if tail is not None and tail[0] != close[0]:
            self._closes.append(DailyClose(*tail))
        self._close_tail = close

    def _daily_closes(self) -> list[DailyClose]:
        tail = self._close_tail
        return self._closes if tail is None else [*self._closes, DailyClose(*tail)]

    def _sample(self, snap: PortfolioSnapshot, drawdown: float) -> None:
        """One point per sample interval (its last snapshot), the first two points always kept."""
        point = (snap, drawdown, self._fees, self._funding, self._index)
        tail, every = self._point_tail, self.sample_interval_ns
        if (
            tail is not None
            and every > 0
            and self._points  # with the tail: more than one point
            and tail[0].ts_event // every == snap.ts_event // every
        ):
            self._point_tail = point
            return
        if tail is not None:
            self._points.append(_curve_point(*tail))
        self._point_tail = point

    def _curve(self) -> list[CurvePoint]:
        tail = self._point_tail
        return self._points if tail is None else [*self._points, _curve_point(*tail)]

    def _advance(self, ts_ns: int) -> None:
        """Book the time since the last mark to the regime in force."""
        if self._clock_ns is not None and ts_ns > self._clock_ns:
            spent = ts_ns - self._clock_ns
            self._regime_ns[self._regime] = self._regime_ns.get(self._regime, 0) + spent
            self._clock_ns = ts_ns

    def _on_budget(self, event: RiskBudgetChanged) -> None:
        self._advance(event.ts_event)
        self._regime = event.regime
        last = self._regimes[-1] if self._regimes else None
        if last is None or (last.regime, last.max_gross_leverage) != (
            event.regime,
            event.max_gross_leverage,
        ):
            self._regimes.append(
                RegimeChange(event.ts_event, event.regime, event.max_gross_leverage)
            )
        for asset, history in self._targets.items():
            target = history[-1].target
            width = self._bands.width(asset, target, event.band_abs, event.band_rel, event.regime)
            self._add_target(
                history, TargetPoint(event.ts_event, target, target - width, target + width)
            )

    def _on_decided(self, event: RebalanceDecided) -> None:
        for decision in event.assets:
            point = TargetPoint(
                event.ts_event, decision.target, decision.band_low, decision.band_high
            )
            self._add_target(self._targets.setdefault(decision.asset, []), point)
        if event.intents:
            self._rebalances += 1
            assets = sorted({base_of(i.symbol) for i in event.intents})
            self._marks.append(RebalanceMark(event.ts_event, tuple(assets)))

    @staticmethod
    def _add_target(history: list[TargetPoint], point: TargetPoint) -> None:
        if not history or _band_of(history[-1]) != _band_of(point):
            history.append(point)

    def _on_fill(self, fill: OrderFilled) -> None:
        self._turnover += abs(fill.qty * fill.price)
        self._fills += 1

    def _on_funding(self, event: FundingPaid) -> None:
        total = self._funding_by_symbol.get(event.symbol, _ZERO)
        self._funding_by_symbol[event.symbol] = total + event.amount

    # ------------------------------------------------------------------ results

    @property
    def snapshots_seen(self) -> bool:
        return self._last is not None

    def series(self) -> PerformanceSeries:
        return PerformanceSeries(
            points=tuple(self._curve()),
            targets={a: tuple(h) for a, h in sorted(self._targets.items())},
            regimes=tuple(self._regimes),
            rebalances=tuple(self._marks),
            closes=tuple(self._daily_closes()),
        )

    def summary(self, *, risk_free_rate: float = 0.0) -> PerformanceSummary:
        """The headline figures so far. Raises ValueError before the first snapshot."""
        first, last = self._first, self._last
        if first is None or last is None:
            raise ValueError("no PortfolioSnapshot recorded: nothing to summarise")
        closes = self._daily_closes()
        returns = daily_returns(closes, first.ts_event)
        years = (last.ts_event - first.ts_event) / NS_PER_YEAR
        dd = self._drawdown
        average_nav = sum((c.nav for c in closes), _ZERO) / len(closes)
        return PerformanceSummary(
            start_ns=first.ts_event,
            end_ns=last.ts_event,
            initial_nav=first.nav,
            final_nav=last.nav,
            total_return=self._index - 1.0,
            cagr=cagr(self._index, years),
            volatility=annual_volatility(returns),
            sharpe=sharpe_ratio(returns, risk_free_rate),
            sortino=sortino_ratio(returns, risk_free_rate),
            risk_free_rate=risk_free_rate,
            max_drawdown=dd.max,
            drawdown_peak_ns=dd.max_peak_ns,
            drawdown_trough_ns=dd.trough_ns,
            drawdown_recovery_ns=dd.recovery_ns,
            turnover=self._turnover,
            average_nav=average_nav,
            turnover_annual=_annual_turnover(self._turnover, average_nav, years),
            fees_paid=self._fees,
            funding_pnl=self._funding,
            funding_by_symbol=tuple(sorted(self._funding_by_symbol.items())),
            transfers=self._transfers,
            rebalances=self._rebalances,
            fills=self._fills,
            daily_returns=len(returns),
            regime_time=self._regime_fractions(),
        )

    def result(self, *, risk_free_rate: float = 0.0) -> Performance:
        return Performance(
            self.summary(risk_free_rate=risk_free_rate), self.series(), self._risk.result()
        )

    def risk_activity(self) -> RiskActivity:
        """Which risk features acted so far."""
        return self._risk.result()

    def _regime_fractions(self) -> tuple[tuple[str, float], ...]:
        total = sum(self._regime_ns.values())
        if total == 0:
            return ((self._regime, 1.0),)
        return tuple((r, ns / total) for r, ns in sorted(self._regime_ns.items()) if ns > 0)


def _band_of(point: TargetPoint) -> tuple[Decimal, Decimal, Decimal]:
    return point.target, point.band_low, point.band_high


def _annual_turnover(turnover: Decimal, average_nav: Decimal, years: float) -> float | None:
    if years <= 0 or average_nav <= 0:
        return None
    return float(turnover / average_nav) / years


async def from_journal(
    path: str | Path,
    *,
    sample_interval_ns: int = NS_PER_HOUR,
    since_ns: int | None = None,
    until_ns: int | None = None,
) -> PerformanceRecorder:
    """A recorder fed with the journal's events (optionally only ``ts_event`` in
    [since_ns, until_ns)), in seq order: the same result as recording the run live."""
    recorder = PerformanceRecorder(sample_interval_ns=sample_interval_ns)
    names = [t.__name__ for t in PerformanceRecorder.CONSUMES]
    async with JournalReader(path) as reader:
        async for record in reader.records(types=names, since_ns=since_ns, until_ns=until_ns):
            recorder.on_event(record.message)
    return recorder


# --------------------------------------------------------------------------- tables

Row = tuple[str, tuple[str, ...]]


def _date(ns: int | None) -> str:
    return "—" if ns is None else ns_to_iso(ns)[:10]


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:+.2f} %" if signed else f"{value * 100:.2f} %"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _money(value: Decimal, signed: bool = False) -> str:
    amount = value.quantize(_CENT)
    return f"{amount:+,.2f}" if signed else f"{amount:,.2f}"


def _drawdown_dates(s: PerformanceSummary) -> str:
    if s.drawdown_peak_ns is None:
        return "—"
    return f"{_date(s.drawdown_peak_ns)} → {_date(s.drawdown_trough_ns)}"


def _recovered(s: PerformanceSummary) -> str:
    if s.drawdown_peak_ns is None:
        return "—"
    return "not yet" if s.drawdown_recovery_ns is None else _date(s.drawdown_recovery_ns)


def _metric_rows(quote: str) -> list[tuple[str, Callable[[PerformanceSummary], str]]]:
    return [
        ("Period", lambda s: f"{_date(s.start_ns)} → {_date(s.end_ns)}"),
        ("Days", lambda s: f"{s.days:,.1f}"),
        (f"Initial NAV ({quote})", lambda s: _money(s.initial_nav)),
        (f"Final NAV ({quote})", lambda s: _money(s.final_nav)),
        ("Total return", lambda s: _pct(s.total_return, signed=True)),
        ("CAGR", lambda s: _pct(s.cagr, signed=True)),
        ("Volatility (annualised)", lambda s: _pct(s.volatility)),
        ("Sharpe (rf {rf})", lambda s: _ratio(s.sharpe)),
        ("Sortino", lambda s: _ratio(s.sortino)),
        ("Max drawdown", lambda s: _pct(-s.max_drawdown, signed=s.max_drawdown > 0)),
        ("Drawdown peak → trough", _drawdown_dates),
        ("Drawdown recovered", _recovered),
        (f"Turnover ({quote})", lambda s: _money(s.turnover)),
        ("Turnover (× avg NAV / year)", lambda s: _ratio(s.turnover_annual)),
        (f"Fees paid ({quote})", lambda s: _money(s.fees_paid)),
        (f"Funding PnL ({quote})", lambda s: _money(s.funding_pnl, signed=True)),
        ("Rebalances", lambda s: f"{s.rebalances:,}"),
        ("Fills", lambda s: f"{s.fills:,}"),
    ]


def summary_rows(summaries: Sequence[PerformanceSummary], *, quote: str = "USDT") -> list[Row]:
    """Metric rows (label, one formatted value per summary), then one row per regime seen."""
    rates = sorted({s.risk_free_rate for s in summaries})
    rf = "/".join(_pct(r) for r in rates) if rates else "0.00 %"
    rows: list[Row] = [
        (label.replace("{rf}", rf), tuple(fn(s) for s in summaries))
        for label, fn in _metric_rows(quote)
    ]
    regimes = sorted({r for s in summaries for r, _ in s.regime_time})
    for regime in regimes:
        values = tuple(_pct(dict(s.regime_time).get(regime, 0.0)) for s in summaries)
        rows.append((f"Time in {regime}", values))
    return rows


def _render(header: Sequence[str], rows: Iterable[Row]) -> str:
    table = [tuple(header), *((label, *values) for label, values in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(table[0]), rule, *(line(r) for r in table[1:])])


def format_summary(summary: PerformanceSummary, *, title: str = "", quote: str = "USDT") -> str:
    """A two-column terminal table of one summary."""
    return _render(("Metric", title or "Value"), summary_rows([summary], quote=quote))


def format_comparison(summaries: Mapping[str, PerformanceSummary], *, quote: str = "USDT") -> str:
    """Side by side: one column per named summary (in the mapping's order), one row per metric."""
    rows = summary_rows(list(summaries.values()), quote=quote)
    return _render(("Metric", *summaries), rows)
