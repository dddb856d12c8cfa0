"""A paper-trading engine serving its metrics, for the Prometheus integration test (or by hand).

``python -m tests.support.metrics_driver --journal DIR/journal.db``

It runs what ``ballast run`` runs in paper mode, from the same building blocks: the shipped
``deploy/paper.toml`` (with the overrides below), a real :class:`~engine.session.Session` with the
trading pipeline on the :class:`~adapters.sim.venue.SimulatedVenue` and a
:class:`~engine.clock.LiveClock`, metrics served by :func:`engine.http_server.serve_metrics`. The
market is the bundled Binance data (:class:`~adapters.data.bundle.MarketBundle`: spot and perp
bars, marks with funding, funding settlements) replayed at an accelerated pace: one hour of market
every ``--step-s`` seconds, each event re-stamped with the wall-clock time it is sent at, so data
ages and lags are real ones.

Metrics are served on ``--address`` (default ``127.0.0.1:0``: a free port). Overrides of the
paper config: the journal at ``--journal``, the bundled data folder of this checkout,
``risk.stale_after_s = --stale-after-s`` and a short rebalance cooldown (the market runs fast).

Prints ``listening HOST:PORT`` once ``/metrics`` is served. SIGUSR1 stops the feed (the data goes
stale, the engine keeps serving); SIGTERM or SIGINT stops the engine; it also stops by itself
after ``--max-runtime-s``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import msgspec

from adapters.data.bundle import FundingSettlement, MarketBundle
from adapters.sim.venue import SimulatedVenue
from engine.backtest import assets_of, sim_config
from engine.clock import LiveClock
from engine.config import Config, load_config
from engine.events import MarketData
from engine.http_server import serve_metrics
from engine.instruments import binance_defaults
from engine.journal import Journal
from engine.session import Session

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "deploy" / "paper.toml"
DATA = ROOT / "data" / "market"


def driver_config(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
    replace = msgspec.structs.replace
    return replace(
        config,
        journal=replace(config.journal, path=str(args.journal)),
        paper=replace(config.paper, data_dir=str(args.data)),
        risk=replace(config.risk, stale_after_s=args.stale_after_s),
        execution=replace(config.execution, cooldown_s=2.0, check_interval_s=1.0),
    )


class Feed:
    """Replays a bundle into the venue, one bar timestamp per ``step_s``, re-stamped to now."""

    def __init__(self, bundle: MarketBundle, venue: SimulatedVenue, session: Session) -> None:
        self.bundle = bundle
        self.venue = venue
        self.session = session
        self.halted = asyncio.Event()
        self.sent = 0

    async def run(self, step_s: float) -> None:
        settlements = iter(self.bundle.settlements)
        pending = next(settlements, None)
        current: int | None = None
        for event in self.bundle.events():
            if event.ts_event != current:
                if current is not None and await self._halted_within(step_s):
                    return
                current = event.ts_event
                pending = await self._settle_before(current, pending, settlements)
            await self.venue.on_market(self._restamp(event))
            await self.session.idle()
            self.sent += 1

    async def _halted_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.halted.wait(), seconds)
        return self.halted.is_set()

    async def _settle_before(
        self,
        ts: int,
        pending: FundingSettlement | None,
        rest: Iterator[FundingSettlement],
    ) -> FundingSettlement | None:
        while pending is not None and pending.ts_ns < ts:
            mark = pending.mark or self.venue.exchange.mark_price(pending.symbol)
            if mark is not None and mark > 0:
                now = self.session.clock.now_ns()
                await self.venue.settle_funding(pending.symbol, pending.rate, mark, now)
                await self.session.idle()
            pending = next(rest, None)
        return pending

    def _restamp(self, event: MarketData) -> MarketData:
        now = self.session.clock.now_ns()
        return msgspec.structs.replace(event, ts_event=now, ts_init=now)


async def serve(args: argparse.Namespace) -> None:
    config = driver_config(args)
    bundle = MarketBundle.load(args.data, assets_of(config), config.venue.quote)
    clock = LiveClock()
    instruments = binance_defaults(assets_of(config), config.venue.quote)
    venue = SimulatedVenue(instruments, clock, sim_config(config))
    stop = asyncio.Event()
    async with venue, Journal(args.journal) as journal:
        session = Session(config, clock, journal=journal, venue=venue)
        feed = Feed(bundle, venue, session)
        _on_signals(stop, feed.halted)
        async with serve_metrics(session, args.address) as server, session:
            print(f"listening {server.host}:{server.port}", flush=True)
            feeding = asyncio.create_task(feed.run(args.step_s))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.max_runtime_s)
            feed.halted.set()
            await feeding


def _on_signals(stop: asyncio.Event, halt_feed: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, halt_feed.set)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=PAPER)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--address", default="127.0.0.1:0")
    parser.add_argument("--step-s", type=float, default=0.05)
    parser.add_argument("--stale-after-s", type=float, default=3.0)
    parser.add_argument("--max-runtime-s", type=float, default=300.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
