"""One task of a sweep: one variant's ordinary backtest (:func:`run_backtest`, the very path of
``ballast backtest``) over one date range of the market series, and the record it leaves."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import msgspec

from ballast.adapters.data.bundle import MarketSeries
from ballast.engine.app.backtest import market_bundle, run_backtest
from ballast.engine.app.event_loop import loop_factory
from ballast.engine.kernel.config import config_from_json
from ballast.engine.observe.performance import PerformanceSummary

FLOAT_METRICS: Final = (
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "turnover_annual",
)
MONEY_METRICS: Final = ("final_nav", "fees_paid", "funding_pnl", "turnover")
COUNT_METRICS: Final = ("rebalances", "fills")
METRICS: Final = (*FLOAT_METRICS, *MONEY_METRICS, *COUNT_METRICS)
LOWER_IS_BETTER: Final = frozenset({"volatility", "max_drawdown", "fees_paid", "turnover"})

Metric = float | int | str | None
"""A float metric, a count, or money as exact decimal text."""


@dataclass(frozen=True)
class Task:
    key: str
    """The resume key (:func:`ballast.engine.app.sweep.store.task_key`)."""
    variant: str
    phase: str
    """``full`` (the whole range), ``train`` or ``test`` (a walk-forward window's)."""
    window: int
    """The walk-forward window (-1 for ``full``)."""
    start_ns: int | None
    end_ns: int | None
    config_json: str
    journal: str
    """Where to keep its journal ("": none)."""


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """What a task leaves: its metrics (the summary of ``ballast backtest``) and equity curve."""

    key: str
    variant: str
    phase: str
    window: int
    start_ns: int
    end_ns: int
    metrics: dict[str, Metric]
    events: int
    seconds: float
    journal: str
    curve: list[tuple[int, str]]
    """(time, NAV) of each day's last snapshot."""


def metrics_of(summary: PerformanceSummary) -> dict[str, Metric]:
    values: dict[str, Metric] = {}
    for name in METRICS:
        value: Any = summary.final_nav if name == "final_nav" else getattr(summary, name)
        values[name] = str(value) if isinstance(value, Decimal) else value
    return values


def run_task(series: MarketSeries, task: Task) -> Record:
    """Run ``task`` in this process (its own event loop)."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(_run(series, task))


async def _run(series: MarketSeries, task: Task) -> Record:
    config = config_from_json(task.config_json)
    bundle = market_bundle(config, series, start=task.start_ns, end=task.end_ns)
    journal = Path(task.journal) if task.journal else None
    run = await run_backtest(config, bundle, name=task.variant, journal_path=journal)
    summary = run.performance.summary
    return Record(
        key=task.key,
        variant=task.variant,
        phase=task.phase,
        window=task.window,
        start_ns=summary.start_ns,
        end_ns=summary.end_ns,
        metrics=metrics_of(summary),
        events=run.events,
        seconds=round(run.seconds, 3),
        journal=task.journal,
        curve=[(c.ts_ns, str(c.nav)) for c in run.performance.series.closes],
    )
