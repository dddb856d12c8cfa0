"""``ballast run -c CONFIG``: the long-lived engine, as a service runs it.

With ``venue.kind = "simulated"`` it trades on paper: the trading pipeline in a session on a live
clock, against the simulated venue of ``[paper]`` (balances, slippage, latency), fed by the
recorded bars of ``paper.data_dir`` (optionally cut to ``paper.start`` .. ``paper.end``) replayed
at ``--step-s`` seconds of wall time per bar timestamp (:mod:`engine.paper_feed`). Every event
goes to the journal (``journal.path``; an existing journal is continued with a new session).
With ``[metrics] enabled`` it serves ``/metrics``, ``/healthz`` and ``/readyz`` and prints
``listening HOST:PORT`` as its first line on stdout.

When the data is exhausted the feed stops and says so; the engine keeps serving (the data goes
stale, ``/readyz`` reports it) until it is signalled. SIGTERM or SIGINT stop it gracefully
(session stopped, journal synced and closed, exit 0); SIGUSR1 halts the feed.

``venue.kind = "binance"`` needs the ccxt.pro live venue, which is not available yet: exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import msgspec

from adapters.data.bundle import MarketBundle
from adapters.data.klines import DataError
from adapters.sim.venue import SimulatedVenue
from engine.backtest import assets_of, sim_config
from engine.cli import exits
from engine.clock import LiveClock
from engine.config import Config
from engine.config_check import load_checked_config
from engine.errors import BallastError, JournalError
from engine.http_server import MetricsServer, parse_address, serve_metrics
from engine.instruments import binance_defaults
from engine.journal import Journal
from engine.paper_feed import FeedResult, PaperFeed
from engine.session import Session
from engine.timefmt import ns_to_iso

DEFAULT_STEP_S = 1.0


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "run", help="run the engine as a long-lived service (paper mode; live venue: not yet)"
    )
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--journal", help="journal file (default: [journal] path)")
    parser.add_argument("--data", help="paper mode: market data folder (default: [paper] data_dir)")
    parser.add_argument(
        "--metrics-address",
        type=_address,
        metavar="HOST:PORT",
        help="serve /metrics /healthz /readyz here (default: [metrics] address; port 0: any free)",
    )
    parser.add_argument(
        "--step-s",
        type=_seconds(allow_zero=True),
        default=DEFAULT_STEP_S,
        metavar="SECONDS",
        help="paper mode: wall-clock seconds per bar timestamp of the data "
        f"(default {DEFAULT_STEP_S:g}: an hour of hourly bars per second; 0: as fast as possible)",
    )
    parser.add_argument(
        "--max-runtime-s",
        type=_seconds(allow_zero=False),
        metavar="SECONDS",
        help="stop by itself after this long (default: run until SIGTERM or SIGINT)",
    )
    parser.set_defaults(func=run_cmd)


def _address(text: str) -> str:
    try:
        parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _seconds(*, allow_zero: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
        if not value < float("inf") or value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(
                f"must be {'>= 0' if allow_zero else '> 0'} and finite, got {text}"
            )
        return value

    return parse


async def run_cmd(args: argparse.Namespace) -> int:
    config = load_checked_config(args.config)
    if not args.verbose:
        logging.getLogger().setLevel(config.engine.log_level)
    if config.venue.kind != "simulated":
        raise BallastError(
            f"run: venue.kind = {config.venue.kind!r} needs the ccxt.pro live venue, which is not "
            'available yet; paper mode (venue.kind = "simulated") works'
        )
    config = _overridden(config, journal=args.journal, data=args.data)
    stop = asyncio.Event()
    halt_feed = asyncio.Event()
    with _signals(stop, halt_feed):
        result = await run_paper(
            config,
            stop=stop,
            halt_feed=halt_feed,
            metrics_address=args.metrics_address,
            step_s=args.step_s,
            max_runtime_s=args.max_runtime_s,
        )
    print(
        f"stopped: {result.events:,} market events over {result.steps:,} bar times sent; "
        f"journal {config.journal.path} closed",
        flush=True,
    )
    return exits.OK


def _overridden(config: Config, *, journal: str | None, data: str | None) -> Config:
    """The config with the command line's journal and data folder (recorded in the journal as
    what ran)."""
    replace = msgspec.structs.replace
    if journal is not None:
        config = replace(config, journal=replace(config.journal, path=journal))
    if data is not None:
        config = replace(config, paper=replace(config.paper, data_dir=data))
    return config


@contextlib.contextmanager
def _signals(stop: asyncio.Event, halt_feed: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop``, SIGUSR1 sets ``halt_feed``, while inside."""
    loop = asyncio.get_running_loop()
    handlers = {signal.SIGTERM: stop.set, signal.SIGINT: stop.set, signal.SIGUSR1: halt_feed.set}
    for sig, handler in handlers.items():
        loop.add_signal_handler(sig, handler)
    try:
        yield
    finally:
        for sig in handlers:
            loop.remove_signal_handler(sig)


async def run_paper(
    config: Config,
    *,
    stop: asyncio.Event,
    halt_feed: asyncio.Event,
    metrics_address: str | None,
    step_s: float,
    max_runtime_s: float | None,
) -> FeedResult:
    """Paper mode until ``stop`` is set (or ``max_runtime_s`` has passed)."""
    bundle = _bundle(config)
    span = bundle.span()  # no bars in the data (or in paper.start .. paper.end): fail now
    journal_path = _journal_path(config)
    clock = LiveClock()
    instruments = binance_defaults(assets_of(config), config.venue.quote)
    venue = SimulatedVenue(instruments, clock, sim_config(config))
    async with venue, _journal(config, journal_path) as journal:
        session = Session(config, clock, journal=journal, venue=venue)
        feed = PaperFeed(bundle, venue, session, step_s=step_s, halted=halt_feed)
        async with _metrics(session, metrics_address) as server, session:
            if server is not None:
                print(f"listening {_host_port(server)}", flush=True)
            _announce(config, span, journal_path, step_s)
            return await _serve(feed, stop, max_runtime_s)


def _bundle(config: Config) -> MarketBundle:
    paper = config.paper
    try:
        return MarketBundle.load(
            paper.data_dir, assets_of(config), config.venue.quote, start=paper.start, end=paper.end
        )
    except DataError as exc:
        raise DataError(f"paper mode: {exc}; set [paper] data_dir or pass --data DIR") from None


def _journal_path(config: Config) -> Path:
    """The journal file, its folder created (a folder that cannot be is a journal error)."""
    path = Path(config.journal.path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JournalError(f"{path}: cannot create its folder: {exc.strerror}") from None
    return path


def _journal(config: Config, path: Path) -> Journal:
    return Journal(
        path,
        batch_size=config.journal.batch_size,
        flush_interval_s=config.journal.flush_interval_ms / 1000,
    )


@contextlib.asynccontextmanager
async def _metrics(session: Session, address: str | None) -> AsyncIterator[MetricsServer | None]:
    """The metrics server of ``[metrics]`` (at ``address`` if given), or None when disabled."""
    if not session.config.metrics.enabled:
        yield None
        return
    where = address or session.config.metrics.address
    async with contextlib.AsyncExitStack() as stack:
        try:
            server = await stack.enter_async_context(serve_metrics(session, where))
        except OSError as exc:
            raise BallastError(f"metrics: cannot listen on {where}: {exc.strerror}") from None
        yield server


def _host_port(server: MetricsServer) -> str:
    host = f"[{server.host}]" if ":" in server.host else server.host
    return f"{host}:{server.port}"


def _announce(config: Config, span: tuple[int, int], journal: Path, step_s: float) -> None:
    first, last = span
    print(
        f"paper: {config.paper.data_dir} {ns_to_iso(first)[:16]} → {ns_to_iso(last)[:16]}, "
        f"one bar time every {step_s:g} s; journal {journal}",
        flush=True,
    )
    if step_s >= config.risk.stale_after_s:
        print(
            f"warning: --step-s {step_s:g} is not below risk.stale_after_s "
            f"{config.risk.stale_after_s:g}: data will look stale between bars",
            flush=True,
        )


async def _serve(feed: PaperFeed, stop: asyncio.Event, max_runtime_s: float | None) -> FeedResult:
    """Feed the market until ``stop`` (or the runtime is over); keep serving after the data."""
    feeding = asyncio.create_task(_feed(feed, stop), name="paper-feed")
    try:
        await asyncio.wait_for(stop.wait(), max_runtime_s)
    except TimeoutError:
        print(f"max runtime reached ({max_runtime_s:g} s): stopping", flush=True)
    finally:
        stop.set()
        feed.halt()
    return await feeding


async def _feed(feed: PaperFeed, stop: asyncio.Event) -> FeedResult:
    """Run the feed and say how it ended; a failing feed stops the engine."""
    try:
        result = await feed.run()
    except BaseException:
        stop.set()
        raise
    if not stop.is_set():
        print(_ended(result), flush=True)
    return result


def _ended(result: FeedResult) -> str:
    at = "no data" if result.last_ns is None else f"at {ns_to_iso(result.last_ns)[:16]}"
    how = "data exhausted" if result.stopped == "exhausted" else "halted (SIGUSR1)"
    return (
        f"feed: {how} {at} after {result.events:,} market events over {result.steps:,} bar times"
        "; no more market data (it goes stale); serving until SIGTERM or SIGINT"
    )
