"""Backtests: the very same session and actors as live, with a simulated clock and the simulated
venue injected, driven through historical (or synthetic) market data.

The bundle's market events are taken in order, an instant (one event time) at a time:

1. when an event is later than the clock, the instant before is closed first: timers set for its
   own time fire (the portfolio's price snapshot of that instant, and the decision on it);
2. funding settlements due strictly before the new time are settled, at the mark the venue knows
   (a settlement at 00:00 is paid at the 00:00 close);
3. the clock moves to the new time one timer deadline at a time (trailing snapshots, risk checks,
   order latency): what a timer sets off (a decision, its orders, their fills) runs at that
   deadline, before time moves on, as it would on a live clock;
4. the venue takes the event (fills resting orders, liquidates, then publishes the event and what
   it caused), and the driver waits until every actor is idle. Events of one instant see the
   clock stand still, so the portfolio is valued once all of them are in.

Every event goes through the journal, so ``ballast replay --verify`` reproduces a backtest like
any run. The journal is a new file, marked as a backtest's; what an earlier file at its path may be
is decided in :mod:`ballast.engine.app.backtest_journal` (never a paper or live journal).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from ballast.adapters.data.bundle import (
    FundingSettlement,
    MarketBundle,
    MarketSeries,
    SettlementSchedule,
    TimeLike,
)
from ballast.adapters.sim.config import Latency, SimConfig
from ballast.adapters.sim.fees import FeeSchedule
from ballast.adapters.sim.slippage import SlippageConfig
from ballast.adapters.sim.venue import SimulatedVenue
from ballast.engine.app import backtest_journal
from ballast.engine.app.session import Session
from ballast.engine.kernel.clock import NS_PER_MILLISECOND, Clock, SimulatedClock
from ballast.engine.kernel.config import BandsConfig, Config, RebalanceConfig
from ballast.engine.kernel.events import DataRejected, KillSwitchTriggered
from ballast.engine.kernel.instruments import base_of
from ballast.engine.kernel.journal import Journal
from ballast.engine.kernel.journal_lock import JournalLock
from ballast.engine.kernel.simulated_instruments import simulated_instruments
from ballast.engine.observe.performance import Performance, PerformanceRecorder

Progress = Callable[[int, int], None]
"""Called with (events done, ts_event of the last one)."""


@dataclass(frozen=True)
class BacktestRun:
    name: str
    journal: Path
    performance: Performance
    events: int
    seconds: float
    kill_switches: tuple[KillSwitchTriggered, ...] = ()
    rejected: tuple[DataRejected, ...] = ()
    """Market data the gate rejected (never seen by the engine's actors)."""

    def rejections(self) -> dict[tuple[str, str], int]:
        """Rejected data points by (symbol, reason)."""
        return dict(Counter((event.symbol, event.reason) for event in self.rejected))

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def simulated_venue(config: Config, clock: Clock) -> SimulatedVenue:
    """The simulated exchange backtests, paper runs and ``ballast plan`` trade on: ``config``'s
    instruments with Binance's filters and ``[fees]``, ``[instruments]`` precision and specs
    applied (:func:`~ballast.engine.kernel.simulated_instruments.simulated_instruments`), and
    :func:`sim_config` (one unified account)."""
    return SimulatedVenue(simulated_instruments(config), clock, sim_config(config))


def sim_config(config: Config) -> SimConfig:
    """The simulated exchange of ``[paper]``: balances, fixed slippage, order latency, and the
    fees of its instruments (``[fees]``: each instrument charged its own maker/taker rate)."""
    return SimConfig(
        fees=FeeSchedule.from_instruments(simulated_instruments(config)),
        balances=dict(config.paper.balances),
        slippage=SlippageConfig(model="fixed", bps=config.paper.slippage_bps),
        latency=Latency(fill_ns=config.paper.latency_ms * NS_PER_MILLISECOND),
        quote_asset=config.venue.quote,
        default_leverage=config.execution.perp_leverage,
    )


def assets_of(config: Config) -> list[str]:
    return sorted({base_of(s) for s in [*config.instruments.spot, *config.instruments.perp]})


def load_market(
    config: Config,
    folder: str | Path,
    *,
    start: TimeLike | None,
    end: TimeLike | None,
    interval_s: int | None = None,
) -> MarketBundle:
    """The market data of ``config``'s instruments in ``folder``: every configured spot and perp
    must have data (a perp its funding too), funding rates beyond ``risk.max_abs_funding_rate``
    are left out and reported. Bars are ``interval_s`` long, else ``[paper] bar_interval``, else
    each file's own interval, detected from its times."""
    series = market_series(config, folder, interval_s=interval_s)
    return market_bundle(config, series, start=start, end=end)


def market_series(
    config: Config, folder: str | Path, *, interval_s: int | None = None
) -> MarketSeries:
    """The series :func:`load_market` cuts its bundle from (loaded once; a sweep cuts every
    window from them)."""
    return MarketSeries.load(
        folder,
        assets_of(config),
        config.venue.quote,
        interval_s=interval_s if interval_s is not None else config.paper.bar_interval_s,
        perp_assets=sorted({base_of(s) for s in config.instruments.perp}),
    )


def market_bundle(
    config: Config, series: MarketSeries, *, start: TimeLike | None, end: TimeLike | None
) -> MarketBundle:
    """``series`` cut to ``[start, end)``, funding screened by ``risk.max_abs_funding_rate``."""
    return series.bundle(
        start=start, end=end, max_abs_funding_rate=config.risk.max_abs_funding_rate
    )


def for_bars(config: Config, interval_s: int) -> Config:
    """The config a backtest on ``interval_s`` bars runs with: data is judged stale only after two
    bar intervals (a live default of 30 s would call every hourly bar stale between closes, and
    tick the staleness timer millions of times). Recorded in the journal like any config, beside
    the config it was derived from (``SessionStarted.source_config_json``), so that ``replay -c``
    with the backtest's own config file replays what ran."""
    stale = max(config.risk.stale_after_s, 2.0 * interval_s)
    if stale == config.risk.stale_after_s:
        return config
    return msgspec.structs.replace(
        config, risk=msgspec.structs.replace(config.risk, stale_after_s=stale)
    )


async def run_backtest(
    config: Config,
    bundle: MarketBundle,
    *,
    name: str,
    journal_path: Path | None,
    interval_s: int | None = None,
    progress: Progress | None = None,
    force: bool = False,
) -> BacktestRun:
    """Run ``config``'s strategy over ``bundle`` (bars of ``interval_s``, default the bundle's
    interval: :func:`for_bars`); writes a new journal at ``journal_path`` (None:
    no journal, for benchmarks; such a run cannot be replayed). A file already there is replaced
    if it is a backtest journal, or with ``force`` if it is not a paper or live journal
    (:mod:`ballast.engine.app.backtest_journal`); else JournalReplaceError."""
    started = time.perf_counter()
    interval = bundle.interval_s if interval_s is None else interval_s
    source, config = config, for_bars(config, interval)
    first, _ = bundle.span()
    clock = SimulatedClock(first - 1)
    venue = simulated_venue(config, clock)
    recorder = PerformanceRecorder()
    kills: list[KillSwitchTriggered] = []
    rejected: list[DataRejected] = []
    count = 0
    async with venue, _journal(journal_path, force=force) as journal:
        session = Session(config, clock, journal=journal, venue=venue, source=source)
        recorder.attach(session.bus)
        session.bus.subscribe(KillSwitchTriggered, kills.append, name="backtest.kill_switch")
        session.bus.subscribe(DataRejected, rejected.append, name="backtest.data_rejected")
        async with session:
            settlements = SettlementSchedule(bundle.settlements)
            on_market = venue.on_market
            instant = clock.now_ns()
            for event in bundle.events():
                ts = event.ts_event
                if ts != instant:  # within an instant time stands still
                    await _advance(clock, venue, session, instant)  # close the instant
                    for due in settlements.before(ts):
                        await _settle(clock, venue, session, due)
                    await _advance(clock, venue, session, ts)
                    instant = clock.now_ns()
                await on_market(event)
                if session.busy:  # else idle() would return at once: no await
                    await session.idle()
                count += 1
                if progress is not None:
                    progress(count, ts)
            await _advance(clock, venue, session, clock.now_ns())
            for due in settlements.before(clock.now_ns() + 1):
                await _settle(clock, venue, session, due)
    seconds = time.perf_counter() - started
    return BacktestRun(
        name,
        journal_path or Path(),
        recorder.result(),
        count,
        seconds,
        tuple(kills),
        tuple(rejected),
    )


@contextlib.asynccontextmanager
async def _journal(path: Path | None, *, force: bool) -> AsyncIterator[Journal | None]:
    """A new backtest journal at ``path``, under a writer lock held from before the earlier file
    is removed until the new one is closed."""
    if path is None:
        yield None
        return
    with JournalLock(path) as lock:
        await asyncio.to_thread(backtest_journal.clear, path, force=force)
        async with Journal(
            path, durable_sync=False, kind=backtest_journal.KIND, lock=lock
        ) as journal:  # fsync'd once, at the end
            yield journal


async def _advance(
    clock: SimulatedClock, venue: SimulatedVenue, session: Session, ts_ns: int
) -> None:
    """Move the clock to ``ts_ns`` one timer deadline at a time: what a timer sets off (a
    snapshot, the decision on it, the orders and their fills) happens at that deadline, before
    time moves on, as it would on a live clock."""
    while (deadline := clock.next_deadline_ns()) is not None and deadline <= ts_ns:
        clock.advance_to(deadline)
        await venue.drain()
        if session.busy:
            await session.idle()
    clock.advance_to(ts_ns)
    await venue.drain()


async def _settle(
    clock: SimulatedClock, venue: SimulatedVenue, session: Session, due: FundingSettlement
) -> None:
    await _advance(clock, venue, session, due.ts_ns)
    mark = due.mark if due.mark is not None else venue.exchange.mark_price(due.symbol)
    if mark is not None and mark > 0:
        await venue.settle_funding(due.symbol, due.rate, mark, due.ts_ns)
    await session.idle()


BASELINES = ("buy_and_hold", "calendar")


def initial_allocation(config: Config) -> dict[str, Decimal]:
    """What the baselines hold: the config's ``[targets]``, or else the spot weights (or, without
    them, the weights) the configured strategy asks for on an all-cash portfolio, scaled to at
    most 100 %."""
    if config.targets:
        return {a: w for a, w in config.targets.items() if w > 0}
    from ballast.engine.app.dry_run import (
        neutral_targets,  # lazy: only comparisons need a strategy call
    )

    wanted = neutral_targets(config)
    chosen = {a: max(Decimal(0), w) for a, w in (wanted.spot_weights or wanted.weights).items()}
    total = sum(chosen.values(), Decimal(0))
    scale = Decimal(1) / total if total > 1 else Decimal(1)
    return {a: (w * scale).quantize(Decimal("0.0001")) for a, w in chosen.items() if w > 0}


def variant(config: Config, strategy: str, allocation: dict[str, Decimal]) -> Config:
    """``config`` with another strategy: a baseline holds ``allocation`` in spot (the calendar
    one with a 0.1 pp band, so that its monthly trade really goes back to target) and is a
    reference, not a managed portfolio: its drawdown kill switch is off. ``threshold`` gets the
    allocation as its weights; another named strategy runs with its own defaults."""
    if strategy == config.strategy.name:
        return config
    takes_weights = strategy in (*BASELINES, "threshold")
    params: dict[str, Any] = {"weights": dict(allocation)} if takes_weights else {}
    changed = msgspec.structs.replace(
        config,
        strategy=msgspec.structs.replace(config.strategy, name=strategy, params=params),
        execution=msgspec.structs.replace(config.execution, mode="spot")
        if strategy in BASELINES
        else config.execution,
    )
    if strategy in BASELINES:
        # The baselines keep their own rules: the study's [rebalance] is not theirs.
        risk = msgspec.structs.replace(config.risk, drawdown_limit=Decimal(1))
        changed = msgspec.structs.replace(changed, risk=risk, rebalance=RebalanceConfig())
    if strategy == "calendar":
        bands = BandsConfig(abs_pp=Decimal("0.1"), rebalance_to=config.bands.rebalance_to)
        changed = msgspec.structs.replace(changed, bands=bands)
    return changed
