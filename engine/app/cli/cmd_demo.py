"""``ballast demo``: the product as it runs live, with no keys and no network beyond 127.0.0.1.

It is ``ballast run`` (:func:`ballast.engine.app.live_run.run_live`) on ``examples/demo_live.toml``
(``venue.kind = "paper"``): the loopback Binance-compatible exchange starts in-process and replays
a slice of the bundled real Binance data at an accelerated pace, one hour of data every
``--step-s`` seconds (:data:`DEFAULT_STEP_S`: the slice lasts about a minute); the engine trades on
it through the real ccxt.pro Binance client (growth_optimizer on BTC and ETH, spot core plus
perpetual overlay), journaling to ``var/demo/journal.db``. The live view
(:mod:`ballast.engine.observe.live_view`) draws the portfolio while it runs (on a terminal; one
line per rebalance otherwise). Once the exchange has sent the last hour of data and the last
orders are answered, the demo stops the run (as SIGTERM would: graceful wind-down, venue closed,
journal closed), compares the engine's book with the exchange's durable state, prints the summary
(NAV start → end, return, max drawdown, rebalances, orders, fills, fees, funding), writes the
report and replays the journal with ``--verify``.

``ballast demo --backtest``: the former demo, unchanged: two years of bundled data through the
backtest path, growth_optimizer beside the buy-and-hold and monthly calendar baselines
(``examples/demo.toml``), its comparison, report and replay (in ``var/demo/backtest``).

On an accelerated live clock, everything the engine measures in event time runs on the wall
clock: the demo's config scales the rebalance cooldown down to a few data hours, and regime
volatility and momentum (hours of wall time) stay in their warm-up; the two-year backtest is where
they are at work.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import msgspec

from ballast.adapters.loopback import wire
from ballast.adapters.loopback.core import LoopbackCore
from ballast.engine.app.backtest import BASELINES, assets_of, load_market, sim_config
from ballast.engine.app.backtest_journal import inspect
from ballast.engine.app.bundled import data_dir, example_config, market_data
from ballast.engine.app.cli import exits
from ballast.engine.app.cli.cmd_backtest import print_results, run_all
from ballast.engine.app.cli.report_extra import skip_without_charts, write_runs_report
from ballast.engine.app.replay import replay
from ballast.engine.app.session import Session
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_HOUR, NS_PER_MILLISECOND, LiveClock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import Config, load_config
from ballast.engine.kernel.errors import BallastError
from ballast.engine.kernel.events import (
    BalanceUpdated,
    FundingPaid,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PortfolioSnapshot,
    PositionUpdated,
    RebalanceDecided,
)
from ballast.engine.kernel.instruments import binance_defaults
from ballast.engine.kernel.journal import JournalReader
from ballast.engine.kernel.timefmt import ns_to_iso
from ballast.engine.observe.live_view import live_view
from ballast.engine.observe.performance import from_journal
from ballast.engine.observe.risk_activity import from_journal as risk_activity
from ballast.engine.observe.risk_settings import risk_settings_line

LIVE_CONFIG: Final = "demo_live.toml"
BACKTEST_CONFIG: Final = "demo.toml"
DEFAULT_OUT: Final = Path("var/demo")
BACKTEST_OUT: Final = Path("var/demo/backtest")
DEFAULT_STEP_S: Final = 0.025
"""Wall seconds per hour of data: the demo's three months (2,200 hourly steps) in about 55 s."""
SETTLE_TIMEOUT_S: Final = 15.0
"""After the data: how long the last orders may take to be answered before the run stops."""
FUNDING_WAIT_S: Final = 1.5
"""After the data and the last orders: the venue reads funding payments from the income endpoint
a second after each funding time."""
VIEW_TITLE: Final = "Ballast demo"
MARKER: Final = ".ballast-demo"
"""A file the demo leaves in its folder: the journal there is the demo's, replaced by the next
run (a journal in a folder without it is never touched)."""
_CENT: Final = Decimal("0.01")
REPORT_TITLE: Final = "Ballast demo: growth_optimizer live through ccxt.pro, loopback exchange"


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo",
        help="the engine live through ccxt.pro against a local Binance-compatible exchange "
        "replaying bundled real data (no keys, no network); --backtest: the two-year comparison",
    )
    parser.add_argument(
        "--out",
        help=f"folder for journal and report (default {DEFAULT_OUT}; with --backtest "
        f"{BACKTEST_OUT})",
    )
    parser.add_argument("--data", help="market data folder (default: the bundled data)")
    parser.add_argument(
        "--backtest",
        action="store_true",
        help="instead: growth_optimizer vs buy-and-hold vs calendar over two years of bundled "
        "data, through the backtest path",
    )
    parser.add_argument(
        "--step-s",
        type=_step,
        default=DEFAULT_STEP_S,
        metavar="SECONDS",
        help=f"live demo: wall seconds per hour of data (default {DEFAULT_STEP_S:g})",
    )
    parser.set_defaults(func=demo_cmd)


def _step(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 60:
        raise argparse.ArgumentTypeError(f"must be between 0 and 60 seconds, got {text}")
    return value


async def demo_cmd(args: argparse.Namespace) -> int:
    data = Path(args.data) if args.data else None
    if args.backtest:
        return await backtest_demo(Path(args.out) if args.out else BACKTEST_OUT, data)
    return await live_demo(Path(args.out) if args.out else DEFAULT_OUT, data, step_s=args.step_s)


# ---------------------------------------------------------------------------- the backtest


async def backtest_demo(out: Path, data: Path | None) -> int:
    """The two-year comparison (the demo before live trading), exactly as it was."""
    out.mkdir(parents=True, exist_ok=True)
    demo_toml = example_config(BACKTEST_CONFIG)
    config = load_config(demo_toml)
    (out / "config.toml").write_text(demo_toml.read_text())
    print(
        "Ballast demo: a 100,000 USDT paper portfolio run by growth_optimizer on BTC and ETH "
        "(spot core + perp overlay), beside two baselines, over bundled Binance data."
    )
    runs = await run_all(
        config,
        [config.strategy.name, *BASELINES],
        data=data if data is not None else market_data(),
        start=None,
        end=None,
        journal=out / "journal.db",
    )
    print_results(runs, config)
    title = "Ballast demo: growth_optimizer vs baselines"
    write_runs_report(runs, out / "report", title=title, quote=config.venue.quote)
    if not await _verified(runs[0].journal):
        return exits.FAILURE
    print(f"next: ballast journal tail {runs[0].journal} --type RebalanceDecided -n 3")
    return exits.OK


async def _verified(journal: Path) -> bool:
    result = await replay(journal, verify=True)
    if result.divergence is not None:
        print(result.divergence.describe())
        return False
    print(
        f"replay: {result.records:,} records in {result.seconds:.1f} s, "
        f"{result.outputs_compared:,} decisions and commands reproduced identically (verify ok)"
    )
    return True


# ---------------------------------------------------------------------------- live


async def live_demo(out: Path, data: Path | None, *, step_s: float) -> int:
    source_toml = example_config(LIVE_CONFIG)
    source = load_config(source_toml)
    journal_path = out / "journal.db"
    config = _demo_config(source, journal_path, data)
    _prepare(out)
    (out / "config.toml").write_text(source_toml.read_text())
    paper = config.paper
    print(
        f"Ballast demo: a {_money(sum(paper.balances.values(), Decimal(0)))} "
        f"{config.venue.quote} portfolio run by {config.strategy.name} on "
        f"{', '.join(config.instruments.spot)} spot + perps, trading live through the real "
        "ccxt.pro Binance client against a Binance-compatible exchange on 127.0.0.1, which "
        f"replays Binance data {paper.start} → {paper.end} at one hour every {step_s:g} s.",
        flush=True,
    )
    started = time.monotonic()
    outcome = await run_live_demo(config, step_s=step_s)
    print(
        f"data: {outcome.hours:,} hours replayed in {time.monotonic() - started:.0f} s; the "
        f"exchange received {outcome.exchange_orders:,} orders",
        flush=True,
    )
    if outcome.book:
        print(f"book: the engine's differs from the exchange's ({outcome.compared}):")
        for line in outcome.book:
            print(f"  {line}")
    else:
        print(f"book: the engine's equals the exchange's exactly ({outcome.compared})")
    summary = await demo_summary(journal_path)
    for line in summary.lines(config.venue.quote):
        print(line)
    print(f"  {risk_settings_line(config)}")
    for line in (await risk_activity(journal_path)).lines():
        print(f"  risk: {line}")
    await _write_report(journal_path, out / "report", quote=config.venue.quote)
    if not await _verified(journal_path):
        return exits.FAILURE
    print(f"journal: {journal_path}  (ballast journal tail {journal_path} --type OrderFilled -n 5)")
    print(
        "next: the two-year backtest comparison (growth_optimizer vs buy_and_hold vs calendar): "
        "ballast demo --backtest"
    )
    return exits.OK


def _demo_config(source: Config, journal: Path, data: Path | None) -> Config:
    replace = msgspec.structs.replace
    config = replace(source, journal=replace(source.journal, path=str(journal)))
    if data is not None:
        config = replace(config, paper=replace(config.paper, data_dir=str(data)))
    if config.venue.kind != "paper":
        raise BallastError(f"{LIVE_CONFIG}: venue.kind must be 'paper', not {config.venue.kind!r}")
    return config


def _prepare(out: Path) -> None:
    """The demo's folder, without an earlier demo's journal, venue state and report."""
    out.mkdir(parents=True, exist_ok=True)
    marker = out / MARKER
    journal = out / "journal.db"
    if journal.exists() and not marker.exists() and inspect(journal).kind != "backtest":
        # (a backtest journal there is the former demo's: replaced, as a backtest replaces it)
        raise BallastError(
            f"{journal} exists and was not written by ballast demo: choose another --out"
        )
    for leftover in out.glob("journal.db*"):
        leftover.unlink()
    shutil.rmtree(out / "report", ignore_errors=True)
    marker.write_text("written by `ballast demo`: its journal here is replaced by the next run\n")


@dataclass(frozen=True, slots=True)
class LiveOutcome:
    hours: int
    """Hours of data the exchange replayed."""
    exchange_orders: int
    book: list[str]
    """Differences between the engine's book (its journal) and the exchange's (empty: none)."""
    compared: str
    """What was compared, in words."""


async def run_live_demo(
    config: Config,
    *,
    step_s: float,
    view: bool = True,
    settle_timeout_s: float = SETTLE_TIMEOUT_S,
) -> LiveOutcome:
    """``ballast run`` on ``config`` (:func:`~ballast.engine.app.live_run.run_live`, kind paper),
    stopped once the exchange has sent the last hour of data and the last orders are answered;
    then the engine's book against the exchange's durable state."""
    from ballast.engine.app.live_run import run_live  # ccxt: imported when used (CLI start-up)

    first_ns, last_ns = load_market(
        config, data_dir(config.paper.data_dir), start=config.paper.start, end=config.paper.end
    ).span()
    stop = asyncio.Event()

    @contextlib.asynccontextmanager
    async def watch(
        session: Session, data_time: Callable[[], int | None] | None
    ) -> AsyncIterator[None]:
        clock = data_time if data_time is not None else (lambda: None)
        orders = _OpenOrders(session.bus)
        watching = live_view(session, data_time=clock, title=VIEW_TITLE) if view else None
        async with _maybe(watching):
            ending = asyncio.create_task(
                _stop_when_done(clock, last_ns, step_s, orders, settle_timeout_s, stop),
                name="demo-end",
            )
            try:
                yield
            finally:
                ending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ending

    loop = asyncio.get_running_loop()
    signals: list[str] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _stopper(sig, stop, signals))
    try:
        await run_live(
            config,
            stop=stop,
            step_s=step_s,
            max_runtime_s=None,
            metrics_address=None,
            signals=signals,
            watch=watch,
        )
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    state = await exchange_state(config)
    differences, compared = await compare_books(Path(config.journal.path), state)
    hours = (last_ns - first_ns) // NS_PER_HOUR + 1
    return LiveOutcome(hours, len(state["orders"]), differences, compared)


def _stopper(sig: signal.Signals, stop: asyncio.Event, seen: list[str]) -> Callable[[], None]:
    def handler() -> None:
        seen.append(sig.name)
        stop.set()

    return handler


async def _stop_when_done(
    data_time: Callable[[], int | None],
    last_ns: int,
    step_s: float,
    orders: _OpenOrders,
    settle_timeout_s: float,
    stop: asyncio.Event,
) -> None:
    """Set ``stop`` once the exchange has sent the data's last hour, the orders sent are
    answered, and the venue had the time to read the last funding payments."""
    # The data time is the driver's property, read through run_live's watch hook: no event.
    while (now := data_time()) is None or now < last_ns:  # noqa: ASYNC110
        await asyncio.sleep(min(0.05, max(step_s, 0.001)))
    await orders.settled(settle_timeout_s)
    await asyncio.sleep(FUNDING_WAIT_S)
    stop.set()


async def exchange_state(config: Config) -> dict[str, Any]:
    """The paper exchange's ``/_loopback/state`` after the run, from its durable state (the
    loopback core rebuilt from the log it keeps beside the journal)."""
    from ballast.engine.app.live_run import venue_state_path

    clock = LiveClock()
    core = LoopbackCore(
        binance_defaults(assets_of(config), config.venue.quote),
        sim_config(config),
        clock,
        state_path=venue_state_path(Path(config.journal.path)),
    )
    try:
        state: dict[str, Any] = wire.state(core, clock.now_ns() // NS_PER_MILLISECOND)
    finally:
        core.close()
    return state


async def compare_books(journal: Path, state: dict[str, Any]) -> tuple[list[str], str]:
    """The engine's book as its journal last heard it (balances per asset over its accounts,
    perp positions, funding paid) against the exchange's ``/_loopback/state``, exactly."""
    balances: dict[tuple[str, str], Decimal] = {}
    positions: dict[str, Decimal] = {}
    funding = Decimal(0)
    names = ["BalanceUpdated", "PositionUpdated", "FundingPaid"]
    async with JournalReader(journal) as reader:
        async for record in reader.records(types=names):
            message = record.message
            if isinstance(message, BalanceUpdated):
                balances[message.account, message.asset] = message.free + message.locked
            elif isinstance(message, PositionUpdated):
                positions[message.symbol] = message.qty
            elif isinstance(message, FundingPaid):
                funding += message.amount
    engine_assets: dict[str, Decimal] = {}
    for (_, asset), amount in balances.items():
        engine_assets[asset] = engine_assets.get(asset, Decimal(0)) + amount
    differences = []
    venue_assets = {
        asset: Decimal(row["free"]) + Decimal(row["locked"])
        for asset, row in state["balances"].items()
    }
    for asset in sorted(engine_assets.keys() | venue_assets.keys()):
        mine, theirs = engine_assets.get(asset, Decimal(0)), venue_assets.get(asset, Decimal(0))
        if mine != theirs:
            differences.append(f"balance {asset}: engine {mine}, exchange {theirs}")
    venue_positions = {symbol: Decimal(row["qty"]) for symbol, row in state["positions"].items()}
    for symbol in sorted(positions.keys() | venue_positions.keys()):
        mine, theirs = positions.get(symbol, Decimal(0)), venue_positions.get(symbol, Decimal(0))
        if mine != theirs:
            differences.append(f"position {symbol}: engine {mine}, exchange {theirs}")
    paid = sum(
        (Decimal(i["income"]) for i in state["income"] if i["incomeType"] == "FUNDING_FEE"),
        Decimal(0),
    )
    if funding != paid:
        differences.append(f"funding: engine {funding}, exchange {paid}")
    compared = (
        f"{len(venue_assets)} balances, {len(venue_positions)} positions, funding "
        f"{_money(paid, signed=True)}"
    )
    return differences, compared


@contextlib.asynccontextmanager
async def _maybe(
    context: contextlib.AbstractAsyncContextManager[object] | None,
) -> AsyncIterator[None]:
    if context is None:
        yield
        return
    async with context:
        yield


class _OpenOrders:
    """Orders sent and not yet done (filled in full, rejected or canceled), from the bus."""

    def __init__(self, bus: Bus) -> None:
        self.open: dict[str, Decimal] = {}
        self._changed = asyncio.Event()
        bus.subscribe(SubmitOrder, self._on_submit, name="demo.open_orders")
        bus.subscribe(OrderFilled, self._on_fill, name="demo.open_orders")
        bus.subscribe(OrderRejected, self._on_done, name="demo.open_orders")
        bus.subscribe(OrderCanceled, self._on_done, name="demo.open_orders")

    def _on_submit(self, command: SubmitOrder) -> None:
        self.open[command.client_order_id] = command.qty
        self._changed.set()

    def _on_fill(self, fill: OrderFilled) -> None:
        left = self.open.get(fill.client_order_id)
        if left is not None:
            left -= fill.qty
            if left <= 0:
                del self.open[fill.client_order_id]
            else:
                self.open[fill.client_order_id] = left
        self._changed.set()

    def _on_done(self, event: OrderRejected | OrderCanceled) -> None:
        self.open.pop(event.client_order_id, None)
        self._changed.set()

    async def settled(self, timeout_s: float) -> None:
        """Wait until no order is open (at most ``timeout_s``)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self.open:
                    self._changed.clear()
                    await self._changed.wait()


# ---------------------------------------------------------------------------- summary


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """The live demo's figures, read back from its journal."""

    first_ns: int
    last_ns: int
    nav_start: Decimal
    nav_end: Decimal
    max_drawdown: Decimal
    rebalances: int
    orders: int
    fills: int
    rejected: int
    fees: Decimal
    funding: Decimal

    @property
    def total_return(self) -> Decimal:
        return self.nav_end / self.nav_start - 1 if self.nav_start else Decimal(0)

    def lines(self, quote: str) -> list[str]:
        seconds = (self.last_ns - self.first_ns) / 1e9
        return [
            "summary:",
            f"  NAV            {_money(self.nav_start)} → {_money(self.nav_end)} {quote}",
            f"  return         {self.total_return * 100:+.2f} %",
            f"  max drawdown   {self.max_drawdown * 100:.2f} %",
            f"  rebalances     {self.rebalances:,}",
            f"  orders         {self.orders:,} sent, {self.fills:,} fills, "
            f"{self.rejected:,} rejected",
            f"  fees           {_money(self.fees)} {quote}",
            f"  funding        {_money(self.funding, signed=True)} {quote}",
            f"  wall time      {seconds:.0f} s ({ns_to_iso(self.first_ns)[:19]} → "
            f"{ns_to_iso(self.last_ns)[11:19]})",
        ]


async def demo_summary(journal: Path) -> DemoSummary:
    first = last = 0
    nav_start = nav_end = peak = Decimal(0)
    drawdown = Decimal(0)
    rebalances = orders = fills = rejected = 0
    fees = funding = Decimal(0)
    names = [
        t.__name__
        for t in (
            PortfolioSnapshot,
            RebalanceDecided,
            SubmitOrder,
            OrderFilled,
            OrderRejected,
            FundingPaid,
        )
    ]
    async with JournalReader(journal) as reader:
        async for record in reader.records(types=names):
            message = record.message
            if isinstance(message, PortfolioSnapshot):
                nav = message.nav
                if not first:
                    first, nav_start = message.ts_event, nav
                last, nav_end = message.ts_event, nav
                peak = max(peak, nav)
                if peak > 0:
                    drawdown = max(drawdown, 1 - nav / peak)
            elif isinstance(message, RebalanceDecided):
                rebalances += bool(message.intents)
            elif isinstance(message, SubmitOrder):
                orders += 1
            elif isinstance(message, OrderFilled):
                fills += 1
                fees += message.fee
            elif isinstance(message, OrderRejected):
                rejected += 1
            elif isinstance(message, FundingPaid):
                funding += message.amount
    return DemoSummary(
        first,
        last,
        nav_start,
        nav_end,
        drawdown,
        rebalances,
        orders,
        fills,
        rejected,
        fees,
        funding,
    )


async def _write_report(journal: Path, folder: Path, *, quote: str) -> None:
    """The report of the live run (charts over its wall time), or why not."""
    try:
        from ballast.engine.observe.report import write_report
    except ImportError as exc:
        skip_without_charts(exc)
        return
    recorder = await from_journal(journal, sample_interval_ns=0)
    if not recorder.snapshots_seen:
        print("report: skipped, the run recorded no portfolio snapshot")
        return
    performance = recorder.result()
    files = await asyncio.to_thread(
        write_report, folder, {"live demo": performance}, title=REPORT_TITLE, quote=quote
    )
    print(f"report: {files.html}")


def _money(value: Decimal, *, signed: bool = False) -> str:
    amount = value.quantize(_CENT)
    return f"{amount:+,.2f}" if signed else f"{amount:,.2f}"
