"""``ballast backtest -c CONFIG``: the configured strategy (or several) over historical data,
always beside two baselines (buy-and-hold of the initial allocation and monthly calendar
rebalancing), with a summary table, one journal per run and a report."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from ballast.adapters.data.gaps import format_ts
from ballast.engine.app.backtest import (
    BASELINES,
    BacktestRun,
    initial_allocation,
    load_market,
    run_backtest,
    variant,
)
from ballast.engine.app.backtest_journal import DEFAULT_PATH as DEFAULT_JOURNAL
from ballast.engine.app.backtest_journal import ensure_replaceable
from ballast.engine.app.bundled import data_dir
from ballast.engine.app.cli import exits
from ballast.engine.app.cli.options import BAR_INTERVAL_HELP, bar_interval_option, time_option
from ballast.engine.app.cli.progress import BacktestProgress
from ballast.engine.app.cli.report_extra import write_runs_report
from ballast.engine.app.config_check import load_checked_config
from ballast.engine.kernel.bar_interval import interval_label
from ballast.engine.kernel.config import Config
from ballast.engine.kernel.simulated_instruments import describe_costs
from ballast.engine.kernel.timefmt import TIME_FORMS, ns_to_iso
from ballast.engine.observe.performance import format_comparison, format_summary
from ballast.engine.observe.risk_settings import risk_settings_line
from ballast.engine.strategy.registry import strategy_class


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("backtest", help="backtest strategies over historical data")
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--data", help="data folder (default: [paper] data_dir)")
    parser.add_argument(
        "--start",
        type=time_option,
        metavar="TIME",
        help=f"first time, {TIME_FORMS} (default: [paper] start or all)",
    )
    parser.add_argument(
        "--end",
        type=time_option,
        metavar="TIME",
        help="end time, exclusive (default: [paper] end or all)",
    )
    parser.add_argument(
        "--bar-interval", type=bar_interval_option, metavar="INTERVAL", help=BAR_INTERVAL_HELP
    )
    parser.add_argument(
        "--journal",
        help=f"journal of the first strategy, the others beside it (default: {DEFAULT_JOURNAL}; "
        "never [journal] path, the paper or live engine's)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace a file at a journal path that is not a backtest journal (a paper or live "
        "journal is never replaced)",
    )
    parser.add_argument("--report", default="var/backtest/report", help="report folder")
    parser.add_argument("--strategies", help="comma-separated strategies to compare")
    parser.add_argument("--no-report", action="store_true", help="skip the charts and HTML page")
    parser.set_defaults(func=backtest_cmd)


async def backtest_cmd(args: argparse.Namespace) -> int:
    config = load_checked_config(args.config)
    if args.start is not None and args.end is not None and args.start >= args.end:
        print(
            f"ballast backtest: --start {format_ts(args.start)} is not before "
            f"--end {format_ts(args.end)}",
            file=sys.stderr,
        )
        return exits.USAGE
    chosen = _chosen(args.strategies, config)
    if not chosen:
        print(
            f"ballast backtest: --strategies {args.strategies!r} names no strategy", file=sys.stderr
        )
        return exits.USAGE
    names = chosen + [b for b in BASELINES if b not in chosen]
    for name in names:
        strategy_class(name)  # an unknown name is a usage error before any data is read
    runs = await run_all(
        config,
        names,
        data=Path(args.data) if args.data else data_dir(config.paper.data_dir),
        start=config.paper.start if args.start is None else args.start,
        end=config.paper.end if args.end is None else args.end,
        journal=Path(args.journal) if args.journal else DEFAULT_JOURNAL,
        force=args.force,
        interval_s=args.bar_interval,
    )
    print_results(runs, config)
    if not args.no_report:
        title = f"Ballast backtest: {', '.join(names)}"
        write_runs_report(runs, args.report, title=title, quote=config.venue.quote)
    return exits.OK


def _chosen(strategies: str | None, config: Config) -> list[str]:
    """The strategies to run, in the order given, each once (default: the configured one)."""
    if strategies is None:
        return [config.strategy.name]
    return [n for n in dict.fromkeys(s.strip() for s in strategies.split(",")) if n]


async def run_all(
    config: Config,
    names: Sequence[str],
    *,
    data: Path,
    start: int | str | None,
    end: int | str | None,
    journal: Path,
    force: bool = False,
    interval_s: int | None = None,
) -> list[BacktestRun]:
    """Run every named strategy over the same data (bars of ``interval_s``, default ``[paper]
    bar_interval`` or detected); journals beside ``journal``. Every journal path is checked before
    anything runs (:mod:`ballast.engine.app.backtest_journal`)."""
    paths = [journal_of(journal, index, name) for index, name in enumerate(names)]
    for path in paths:
        await asyncio.to_thread(ensure_replaceable, path, force=force)
    bundle = load_market(config, data, start=start, end=end, interval_s=interval_s)
    first, last = bundle.span()
    bars = interval_label(bundle.interval_s)
    print(f"data: {data} {ns_to_iso(first)[:16]} → {ns_to_iso(last)[:16]}, {bars} bars")
    for line in bundle.report().lines():
        print(f"  {line}")
    print(f"costs: {describe_costs(config)}")
    allocation = initial_allocation(config)
    runs = []
    for name, path in zip(names, paths, strict=True):
        with BacktestProgress(name, first, last) as progress:
            run = await run_backtest(
                variant(config, name, allocation),
                bundle,
                name=name,
                journal_path=path,
                progress=progress,
                force=force,
            )
        progress.done(run)
        runs.append(run)
    return runs


def journal_of(journal: Path, index: int, name: str) -> Path:
    """The journal of the ``index``-th strategy: ``journal`` itself, then ``STEM.NAME.SUFFIX``."""
    return journal if index == 0 else journal.with_name(f"{journal.stem}.{name}{journal.suffix}")


def print_results(runs: Sequence[BacktestRun], config: Config) -> None:
    """The summary: the risk settings line, the table, then per run the risk features that acted
    (from its recorded events) and its journal."""
    quote = config.venue.quote
    print(risk_settings_line(config))
    if len(runs) == 1:
        print(format_summary(runs[0].performance.summary, title=runs[0].name, quote=quote))
    else:
        print(format_comparison({r.name: r.performance.summary for r in runs}, quote=quote))
    for run in runs:
        for line in run.performance.risk.lines():
            print(f"{run.name}: {line}")
    for run in runs:
        print(f"journal {run.name}: {run.journal}")
