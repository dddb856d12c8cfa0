"""``ballast sweep -c CONFIG --grid GRID.toml``: many variants of a config, each an ordinary
backtest, on a local process pool (or Ray), with a results table, CSV and Parquet files and an
HTML report; optionally walk-forward (:mod:`ballast.engine.app.sweep`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ballast.adapters.data.gaps import format_ts
from ballast.engine.app.bundled import data_dir
from ballast.engine.app.cli import exits
from ballast.engine.app.cli.options import BAR_INTERVAL_HELP, bar_interval_option, time_option
from ballast.engine.app.cli.report_extra import skip_without_charts
from ballast.engine.app.cli.sweep_progress import sweep_progress
from ballast.engine.app.sweep.executors import ray_missing
from ballast.engine.app.sweep.runner import Options, Outcome, Runner, Sweep, prepare
from ballast.engine.app.sweep.table import (
    best_table,
    rows,
    walk_forward_rows,
    walk_forward_table,
    write_csv,
    write_parquet,
)
from ballast.engine.app.sweep.task import LOWER_IS_BETTER, METRICS
from ballast.engine.app.sweep.variants import size
from ballast.engine.kernel.timefmt import TIME_FORMS


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "sweep", help="run many variants of a config (a grid), optionally walk-forward"
    )
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--grid", required=True, help="grid file (TOML; examples/sweep.grid.toml)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="local worker processes (default: one per core)",
    )
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run on a Ray cluster: 'auto', 'local' or HOST:PORT (pip install 'ballast[ray]')",
    )
    parser.add_argument("--out", default="var/sweep", help="output folder (default: var/sweep)")
    parser.add_argument("--data", help="data folder (default: [paper] data_dir)")
    parser.add_argument(
        "--start", type=time_option, metavar="TIME", help=f"first time, {TIME_FORMS}"
    )
    parser.add_argument("--end", type=time_option, metavar="TIME", help="end time, exclusive")
    parser.add_argument(
        "--bar-interval", type=bar_interval_option, metavar="INTERVAL", help=BAR_INTERVAL_HELP
    )
    parser.add_argument(
        "--metric",
        default="sharpe",
        choices=METRICS,
        metavar="METRIC",
        help=f"rank by (default sharpe; lower is better for {', '.join(sorted(LOWER_IS_BETTER))}): "
        + ", ".join(METRICS),
    )
    parser.add_argument("--top", type=int, default=5, help="variants in the tables (5)")
    parser.add_argument("--heatmap", metavar="KEY,KEY", help="the report's two heatmap axes")
    parser.add_argument("--keep-journals", action="store_true", help="keep every run's journal")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report")
    parser.set_defaults(func=sweep_cmd)


def _usage(message: str) -> int:
    print(f"ballast sweep: {message}", file=sys.stderr)
    return exits.USAGE


def sweep_cmd(args: argparse.Namespace) -> int:
    if args.workers < 1:
        return _usage(f"--workers must be at least 1, got {args.workers}")
    if args.top < 1:
        return _usage(f"--top must be at least 1, got {args.top}")
    if args.start is not None and args.end is not None and args.start >= args.end:
        return _usage(f"--start {format_ts(args.start)} is not before --end {format_ts(args.end)}")
    sweep = prepare(args.config, args.grid)  # every variant checked: a bad one exits 2
    heatmap = None
    if args.heatmap is not None:
        heatmap = [k.strip() for k in args.heatmap.split(",")]
        keys = [axis.key for axis in sweep.spec.axes]
        if len(heatmap) != 2 or any(k not in keys for k in heatmap):
            return _usage(f"--heatmap needs two grid keys (of {', '.join(keys)})")
    if args.ray is not None and (why := ray_missing()) is not None:
        return _usage(why)
    config = sweep.base
    options = Options(
        out=Path(args.out),
        data=Path(args.data) if args.data else data_dir(config.paper.data_dir),
        start=config.paper.start if args.start is None else args.start,
        end=config.paper.end if args.end is None else args.end,
        interval_s=args.bar_interval,
        workers=args.workers,
        ray=args.ray,
        keep_journals=args.keep_journals,
        metric=args.metric,
    )
    kind = "random sample" if sweep.spec.random is not None else "grid"
    print(
        f"sweep: {len(sweep.variants)} variants ({kind} of {size(sweep.spec)}) over "
        f"{', '.join(a.key for a in sweep.spec.axes)}"
    )
    runner = Runner(sweep, options, progress=sweep_progress)
    outcome = runner.run()
    _write(sweep, outcome, options, args, heatmap)
    return exits.OK


def _write(
    sweep: Sweep,
    outcome: Outcome,
    options: Options,
    args: argparse.Namespace,
    heatmap: list[str] | None,
) -> None:
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    table = rows(outcome.records, sweep.by_id)
    write_csv(table, out / "results.csv")
    write_parquet(table, out / "results.parquet")
    print(
        f"results: {out / 'results.csv'}, {out / 'results.parquet'} ({len(table)} rows; "
        f"{outcome.ran} run, {outcome.reused} from earlier results)"
    )
    ranked = [r for r in outcome.records if r.phase in ("full", "train")]
    if outcome.choices:
        wf = walk_forward_rows(outcome.choices, sweep.by_id, options.metric)
        write_csv(wf, out / "walk_forward.csv")
        write_parquet(wf, out / "walk_forward.parquet")
        print(f"walk-forward (chosen by {options.metric} on each train window):")
        print(walk_forward_table(outcome.choices, options.metric))
        print(f"walk-forward: {out / 'walk_forward.csv'}")
    else:
        print(best_table(ranked, sweep.by_id, options.metric, top=args.top))
    if args.no_report:
        return
    try:
        from ballast.engine.app.sweep.report import write_sweep_report
    except ImportError as exc:
        skip_without_charts(exc)
        return
    page = write_sweep_report(
        out,
        ranked,
        sweep.by_id,
        metric=options.metric,
        title=f"Ballast sweep: {args.config} × {args.grid}",
        subtitle=f"{len(sweep.variants)} variants, ranked by {options.metric}",
        heatmap=heatmap,
        choices=outcome.choices,
        quote=sweep.base.venue.quote,
        top=args.top,
    )
    print(f"report: {page}")
