"""``ballast run -c CONFIG``: the long-lived engine, as a service runs it.

With ``venue.kind = "simulated"`` it trades on paper: the trading pipeline in a session on a live
clock, against the simulated venue of ``[paper]`` (balances, slippage, latency), fed by the
recorded bars of ``paper.data_dir`` (optionally cut to ``paper.start`` .. ``paper.end``) replayed
at ``--step-s`` seconds of wall time per bar timestamp (:mod:`ballast.engine.app.paper_feed`). Every
event goes to the journal (``journal.path``; an existing journal is continued with a new session).
With ``[metrics] enabled`` it serves ``/metrics``, ``/healthz`` and ``/readyz`` and prints
``listening HOST:PORT`` as its first line on stdout.

When the data is exhausted the feed stops and says so; the engine keeps serving (the data goes
stale, ``/readyz`` reports it) until it is signalled. SIGTERM or SIGINT stop it gracefully
(session stopped, journal synced and closed, exit 0; ``SessionStopped.reason`` says
``signal:SIGTERM``, ``max_runtime`` or ``error: …``); SIGUSR1 halts the feed.

Restarted on a journal of earlier paper sessions (after a stop, a crash, a kill), it resumes:
the simulated exchange is rebuilt from the journal (:mod:`ballast.adapters.sim.recovery`), the
session's actors catch up on it (:mod:`ballast.engine.app.catch_up`: portfolio attribution, peak
NAV, regime, kill switch, cooldowns, id counters), and the feed goes on after the last bar it sent;
it prints
``resumed from seq N at T with NAV X``. A journal holding other sessions (a backtest) is refused.

``venue.kind = "paper"`` or ``"binance"`` trade through the real ccxt.pro client
(:mod:`ballast.engine.app.live_run`): ``paper`` on the loopback Binance-compatible exchange
started in-process (fed by ``[paper]``'s data at ``--step-s``), ``binance`` on the exchange (or
its sandbox, or any compatible one at ``venue.rest_url``), its keys from the environment variables
the config names (unset: exit 2 naming them). A restarted live run resumes its journal and
reconciles with the venue; ``--accept-venue-state`` accepts the venue's account where it differs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec

from ballast.adapters.data.bundle import MarketBundle
from ballast.adapters.data.klines import DataError
from ballast.adapters.sim.venue import SimulatedVenue
from ballast.engine.app.backtest import load_market, simulated_venue
from ballast.engine.app.bundled import data_dir
from ballast.engine.app.catch_up import CatchUpClock
from ballast.engine.app.cli import exits
from ballast.engine.app.config_check import load_checked_config
from ballast.engine.app.paper_feed import FeedResult, PaperFeed
from ballast.engine.app.paper_past import PaperPast, paper_past
from ballast.engine.app.service import host_port, journal_path, metrics_server, resume_point
from ballast.engine.app.session import Session
from ballast.engine.kernel.config import Config, config_from_json, require_secrets
from ballast.engine.kernel.config_diff import differing, shown
from ballast.engine.kernel.errors import BallastError, ConfigError
from ballast.engine.kernel.journal import Journal
from ballast.engine.kernel.timefmt import ns_to_iso
from ballast.engine.observe.http_server import parse_address

DEFAULT_STEP_S = 1.0


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "run",
        help="run the engine as a long-lived service (simulated paper, loopback paper exchange "
        "or a live venue, by venue.kind)",
    )
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--journal", help="journal file (default: [journal] path)")
    parser.add_argument(
        "--data", help="simulated/paper: market data folder (default: [paper] data_dir)"
    )
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
    parser.add_argument(
        "--view",
        action="store_true",
        help="show a compact live view (NAV, weights vs bands, leverage, regime, last orders); "
        "one line per event when stdout is not a terminal",
    )
    parser.add_argument(
        "--accept-venue-state",
        action="store_true",
        help="live venue: on restart, accept the venue's account where it differs from the "
        "journal (recorded as ReconcileResolved) instead of halting trading",
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
    if config.risk.rearm.enabled:
        raise ConfigError(
            "risk.rearm",
            "backtests only: the kill switch of a running engine is reset by an operator",
            source=str(args.config),
        )
    if not args.verbose:
        logging.getLogger().setLevel(config.engine.log_level)
    if config.venue.kind != "simulated":
        return await _run_live(args, config)
    source, config = config, _overridden(config, journal=args.journal, data=args.data)
    stop = asyncio.Event()
    halt_feed = asyncio.Event()
    signals: list[str] = []
    with _signals(stop, halt_feed, signals):
        result = await run_paper(
            config,
            stop=stop,
            halt_feed=halt_feed,
            metrics_address=args.metrics_address,
            step_s=args.step_s,
            max_runtime_s=args.max_runtime_s,
            signals=signals,
            source=source,
            watch=_viewer(args.view),
        )
    print(
        f"stopped: {result.events:,} market events over {result.steps:,} bar times sent; "
        f"journal {config.journal.path} closed",
        flush=True,
    )
    return exits.OK


async def _run_live(args: argparse.Namespace, config: Config) -> int:
    """``venue.kind`` paper or binance: :func:`ballast.engine.app.live_run.run_live`."""
    if config.venue.kind == "binance":
        require_secrets(config.venue)  # exit 2 naming the variables, before anything starts
    try:  # ccxt is imported only for a live run
        from ballast.engine.app.live_run import run_live
    except ImportError as exc:  # an install without the live venue's modules
        raise BallastError(
            f"run: venue.kind = {config.venue.kind!r} needs the ccxt.pro live venue, which this "
            f"installation lacks ({exc.name})"
        ) from None

    source, config = config, _overridden(config, journal=args.journal, data=args.data)
    stop = asyncio.Event()
    signals: list[str] = []
    with _signals(stop, asyncio.Event(), signals):
        result = await run_live(
            config,
            stop=stop,
            step_s=args.step_s,
            max_runtime_s=args.max_runtime_s,
            metrics_address=args.metrics_address,
            signals=signals,
            source=source,
            accept_venue_state=args.accept_venue_state,
            watch=_viewer(args.view),
        )
    print(f"stopped ({result.reason}); journal {config.journal.path} closed", flush=True)
    return exits.OK


Viewer = Callable[
    [Session, Callable[[], int | None] | None], contextlib.AbstractAsyncContextManager[object]
]


def _viewer(view: bool) -> Viewer | None:
    """``--view``: the live view (:mod:`ballast.engine.observe.live_view`) around the session."""
    if not view:
        return None
    try:
        from ballast.engine.observe.live_view import (  # type: ignore[import-not-found,unused-ignore]
            live_view,
        )
    except ImportError as exc:  # an installation without it
        raise BallastError(
            f"run: --view needs the live view, which is missing ({exc.name})"
        ) from None

    def watch(
        session: Session, data_time: Callable[[], int | None] | None
    ) -> contextlib.AbstractAsyncContextManager[object]:
        view_cm: contextlib.AbstractAsyncContextManager[object] = live_view(
            session, data_time=data_time
        )
        return view_cm

    return watch


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
def _signals(stop: asyncio.Event, halt_feed: asyncio.Event, seen: list[str]) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (their names go to ``seen``), SIGUSR1 sets
    ``halt_feed``, while inside."""
    loop = asyncio.get_running_loop()

    def stopping(sig: signal.Signals) -> Callable[[], None]:
        def handler() -> None:
            seen.append(sig.name)
            stop.set()

        return handler

    handlers = {
        signal.SIGTERM: stopping(signal.SIGTERM),
        signal.SIGINT: stopping(signal.SIGINT),
        signal.SIGUSR1: halt_feed.set,
    }
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
    signals: list[str] | None = None,
    source: Config | None = None,
    watch: Viewer | None = None,
) -> FeedResult:
    """Paper mode until ``stop`` is set (or ``max_runtime_s`` has passed); resumes the paper
    sessions its journal holds. ``signals``: names of the signals that set ``stop``; ``source``:
    the config as the file said, before the command line's journal and data folder."""
    bundle = _bundle(config)
    span = bundle.span()  # no bars in the data (or in paper.start .. paper.end): fail now
    path = journal_path(config)
    clock = CatchUpClock()
    venue = simulated_venue(config, clock)
    past = await paper_past(path, venue)
    async with venue, _journal(config, path) as journal:
        resume_from = resume_point(journal, past.last_seq if past is not None else None)
        session = Session(
            config, clock, journal=journal, venue=venue, resume_from=resume_from, source=source
        )
        resume = past.feed if past is not None else None
        feed = PaperFeed(bundle, venue, session, step_s=step_s, halted=halt_feed, resume=resume)
        viewing = watch(session, None) if watch is not None else contextlib.nullcontext()
        async with metrics_server(session, metrics_address) as server:
            if server is not None:  # first, before anything the session (or a view) prints
                print(f"listening {host_port(server)}", flush=True)
            async with viewing, session:
                _announce(config, span, path, step_s)
                for point in bundle.report().rejected:
                    print(f"data: rejected: {point.describe()}", flush=True)
                if past is not None:
                    print(_resumed(past, venue, config.venue.quote), flush=True)
                    for line in _config_changes(past, config):
                        print(line, flush=True)
                seen = signals if signals is not None else []
                result, session.stop_reason = await _serve(feed, stop, max_runtime_s, seen)
                return result


def _config_changes(past: PaperPast, config: Config) -> list[str]:
    """One line per key the configuration changed since the last session: the state rebuilt from
    the journal is the one the new configuration would have reached on the same events."""
    last = past.last_session
    if last is None or not last.config_json:
        return []
    before = config_from_json(last.config_json)
    return [
        f"resume: {key} was {shown(before, key)} in session {last.session_id}, now "
        f"{shown(config, key)}: the journal is caught up under the new value"
        for key in differing(before, config)
    ]


def _resumed(past: PaperPast, venue: SimulatedVenue, quote: str) -> str:
    """``resumed from seq N at T with NAV X``: T is the data time of the last bar sent."""
    at = "no bar" if past.feed is None else ns_to_iso(past.feed.data_ts_ns)[:16]
    nav = venue.exchange.account_value()
    return (
        f"resumed from seq {past.last_seq} at {at} with NAV {nav:,.2f} {quote} "
        f"({past.sessions} earlier session(s), book rebuilt from {past.book_inputs:,} inputs)"
    )


def _bundle(config: Config) -> MarketBundle:
    paper = config.paper
    try:
        return load_market(config, data_dir(paper.data_dir), start=paper.start, end=paper.end)
    except DataError as exc:
        raise DataError(f"paper mode: {exc}; set [paper] data_dir or pass --data DIR") from None


def _journal(config: Config, path: Path) -> Journal:
    """The session's journal, owned by this process while it runs (a second writer is refused),
    checked before it is appended to, and marked as a paper (or live) journal."""
    return Journal(
        path,
        batch_size=config.journal.batch_size,
        flush_interval_s=config.journal.flush_interval_ms / 1000,
        durable_on_loop=config.journal.durable_write == "loop",
        kind="paper" if config.venue.kind == "simulated" else "live",
    )


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


async def _serve(
    feed: PaperFeed, stop: asyncio.Event, max_runtime_s: float | None, signals: list[str]
) -> tuple[FeedResult, str]:
    """Feed the market until ``stop`` (or the runtime is over); keep serving after the data.
    Returns how the feed ended and why the session stops."""
    feeding = asyncio.create_task(_feed(feed, stop), name="paper-feed")
    reason = "completed"
    try:
        await asyncio.wait_for(stop.wait(), max_runtime_s)
    except TimeoutError:
        print(f"max runtime reached ({max_runtime_s:g} s): stopping", flush=True)
        reason = "max_runtime"
    finally:
        stop.set()
        feed.halt()
    result = await feeding
    if signals:
        reason = f"signal:{signals[0]}"
    return result, reason


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
