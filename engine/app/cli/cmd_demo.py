"""``ballast demo``: the main job on the embedded default, with no keys and no network.

A paper portfolio (growth_optimizer on BTC and ETH, spot core plus perpetual overlay) runs over
two years of bundled Binance data through the backtest path, beside the buy-and-hold and monthly
calendar baselines: the very same actors as live, with a simulated clock and venue. It prints the
comparison, leaves the journal at ``var/demo/journal.db`` and the report in ``var/demo/report/``,
and ends by replaying the journal with ``--verify``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ballast.engine.app.backtest import BASELINES
from ballast.engine.app.bundled import example_config, market_data
from ballast.engine.app.cli import exits
from ballast.engine.app.cli.cmd_backtest import print_results, run_all
from ballast.engine.app.cli.report_extra import write_runs_report
from ballast.engine.app.replay import replay
from ballast.engine.kernel.config import load_config


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo", help="paper portfolio over bundled real data (no keys, no network)"
    )
    parser.add_argument("--out", default="var/demo", help="folder for journal and report")
    parser.add_argument("--data", help="market data folder (default: the bundled data)")
    parser.set_defaults(func=demo_cmd)


async def demo_cmd(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    demo_toml = example_config("demo.toml")
    config = load_config(demo_toml)
    (out / "config.toml").write_text(demo_toml.read_text())
    print(
        "Ballast demo: a 100,000 USDT paper portfolio run by growth_optimizer on BTC and ETH "
        "(spot core + perp overlay), beside two baselines, over bundled Binance data."
    )
    runs = await run_all(
        config,
        [config.strategy.name, *BASELINES],
        data=Path(args.data) if args.data else market_data(),
        start=None,
        end=None,
        journal=out / "journal.db",
    )
    print_results(runs, config)
    title = "Ballast demo: growth_optimizer vs baselines"
    write_runs_report(runs, out / "report", title=title, quote=config.venue.quote)
    result = await replay(runs[0].journal, verify=True)
    if result.divergence is not None:
        print(result.divergence.describe())
        return exits.FAILURE
    print(
        f"replay: {result.records:,} records in {result.seconds:.1f} s, "
        f"{result.outputs_compared:,} decisions and commands reproduced identically (verify ok)"
    )
    print(f"next: ballast journal tail {runs[0].journal} --type RebalanceDecided -n 3")
    return exits.OK
