"""``ballast plan -c CONFIG``: what a rebalance would do now, and nothing sent.

The plan runs on the simulated exchange that backtests and paper runs trade on (one unified
account, built from ``[paper]``), priced at the last bars of the data: for ``venue.kind``
``"simulated"`` and ``"paper"`` (the loopback exchange wraps the same exchange core and starts from
the same ``[paper]`` balances); ``"binance"`` is refused."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from ballast.adapters.data.klines import DataError
from ballast.adapters.sim.venue import SimulatedVenue
from ballast.engine.app.backtest import load_market, simulated_venue
from ballast.engine.app.bundled import data_dir
from ballast.engine.app.cli import exits
from ballast.engine.app.cli.options import BAR_INTERVAL_HELP, bar_interval_option, time_option
from ballast.engine.app.config_check import load_checked_config
from ballast.engine.app.dry_run import DryRun, dry_run
from ballast.engine.kernel.clock import SimulatedClock
from ballast.engine.kernel.config import Config
from ballast.engine.kernel.errors import BallastError
from ballast.engine.kernel.events import Bar
from ballast.engine.kernel.timefmt import TIME_FORMS, ns_to_iso, parse_time
from ballast.engine.trading.market_gate import MarketGate
from ballast.engine.trading.venue import Venue

_PCT = Decimal(100)


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("plan", help="print the orders a rebalance would send, send nothing")
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--data", help="data folder, as backtest's (default: [paper] data_dir)")
    parser.add_argument(
        "--bar-interval", type=bar_interval_option, metavar="INTERVAL", help=BAR_INTERVAL_HELP
    )
    parser.add_argument(
        "--at",
        type=time_option,
        metavar="TIME",
        help=f"simulated venue: price time, {TIME_FORMS} (default: [paper] end or the end of the "
        "data)",
    )
    parser.set_defaults(func=plan_cmd)


async def plan_cmd(args: argparse.Namespace) -> int:
    config = load_checked_config(args.config)
    folder = Path(args.data) if args.data else None
    venue, market = paper_venue(config, args.at, data=folder, interval_s=args.bar_interval)
    result = await dry_run(config, venue, market)
    if result.snapshot is None:
        print("ballast plan: no portfolio snapshot: some held asset has no price", file=sys.stderr)
        return exits.FAILURE
    print(render(config, venue, result))
    return exits.FAILURE if result.failures else exits.OK


def paper_venue(
    config: Config, at: int | None, *, data: Path | None = None, interval_s: int | None = None
) -> tuple[SimulatedVenue, list[Bar]]:
    """The simulated account of ``[paper]``, priced at the last bars at ``at`` (epoch ns) of its
    data, read as ``ballast backtest`` reads it (:func:`load_market`): from ``data`` (default
    ``[paper] data_dir``), bars of ``interval_s`` (default ``[paper] bar_interval`` or detected)."""
    if config.venue.kind == "binance":  # "paper" trades on this very exchange, in-process
        raise BallastError(
            f"plan: venue '{config.venue.kind}' needs its live adapter, not available yet"
        )
    until = at if at is not None else (parse_time(config.paper.end) if config.paper.end else None)
    folder = data if data is not None else data_dir(config.paper.data_dir)
    market = list(_last_bars(config, folder, until, interval_s).values())
    return priced_venue(config, market), market


def priced_venue(config: Config, market: Sequence[Bar]) -> SimulatedVenue:
    """The simulated exchange backtests and paper runs trade on (:func:`simulated_venue`),
    priced by ``market`` before any sink is attached (nothing of it is emitted), its clock at the
    latest of them."""
    venue = simulated_venue(
        config, SimulatedClock(max((bar.ts_event for bar in market), default=0))
    )
    for bar in market:
        venue.exchange.on_market(bar)
    return venue


def _last_bars(
    config: Config, folder: Path, until: int | None, interval_s: int | None
) -> dict[str, Bar]:
    """The last bar at or before ``until`` of every configured instrument's data (each must have
    one), from ``paper.start`` on, that the market gate accepts: the data is judged in order, as
    a run would, so a rejected bar never prices the plan."""
    start = parse_time(config.paper.start) if config.paper.start else None
    if start is not None and until is not None and start > until:
        start = None
    end = None if until is None else until + 1
    try:
        bundle = load_market(config, folder, start=start, end=end, interval_s=interval_s)
        bundle.span()
    except DataError as exc:
        raise DataError(
            f"plan: {exc}; set [paper] data_dir to the folder of the market data"
        ) from None
    gate = MarketGate.from_config(config, SimulatedClock(0), history=True)
    last: dict[str, Bar] = {}
    for event in bundle.events():
        if gate.screen(0, event) is None and isinstance(event, Bar):
            last[event.symbol] = event
    return dict(sorted(last.items()))


def render(config: Config, venue: Venue, result: DryRun) -> str:
    snap = result.snapshot
    if snap is None:
        return "no portfolio snapshot: some held asset has no price"
    lines = [
        f"Plan at {ns_to_iso(snap.ts_event)} on venue '{venue.name}' ({config.venue.kind}); "
        f"strategy {config.strategy.name}, mode {config.execution.mode}. Nothing is sent.",
        f"NAV {snap.nav:,.2f} {config.venue.quote}   gross leverage {snap.gross_leverage:.2f}x   "
        f"cash {snap.cash:,.2f}",
        "",
        f"{'asset':<6} {'weight':>8} {'target':>8} {'band':>17} {'net exposure':>15}  action",
    ]
    exposures = {a.asset: a.net_exposure for a in snap.assets}
    decision = result.decisions[-1] if result.decisions else None
    for row in decision.assets if decision else []:
        band = f"{row.band_low * _PCT:.2f}–{row.band_high * _PCT:.2f}%"
        lines.append(
            f"{row.asset:<6} {row.weight * _PCT:>7.2f}% {row.target * _PCT:>7.2f}% {band:>17} "
            f"{exposures.get(row.asset, Decimal(0)):>15,.2f}  {row.action}"
        )
    lines += ["", *_orders(result)]
    if decision and decision.reasoning:
        lines += ["", "why: " + decision.reasoning]
    lines += [f"strategy failed: {f.strategy}: {f.error}" for f in result.failures]
    return "\n".join(lines)


def _orders(result: DryRun) -> list[str]:
    intents = [i for d in result.decisions for i in d.intents]
    if not intents:
        return ["orders: none (every weight is inside its band)"]
    verdicts = {a.intent.intent_id: a for a in result.approved}
    vetoes = {v.intent_id: v for v in result.vetoed}
    lines = ["orders it would send:"]
    for intent in intents:
        approved = verdicts.get(intent.intent_id)
        if approved is not None:
            qty = approved.intent.qty
            verdict = "approved" + (f", cut: {approved.cut_reason}" if approved.cut_reason else "")
        else:
            qty = intent.qty
            veto = vetoes.get(intent.intent_id)
            verdict = f"VETOED {veto.reason}: {veto.detail}" if veto else "no risk verdict"
        flags = " reduce-only" if intent.reduce_only else ""
        order = f"{intent.symbol:<15} {intent.side:<4} {qty:>14} {intent.order_type}{flags}"
        lines.append(f"  {order}  [{verdict}]")
    return lines
