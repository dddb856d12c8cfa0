"""The loopback Binance exchange with its market, composed from a config (``ballast venue serve``,
and the live runner's ``venue.kind = "paper"``).

:func:`loopback_exchange` builds, on a :class:`~ballast.engine.kernel.clock.LiveClock`:

- the exchange core (``adapters/loopback/core.py``) over ``config``'s instruments with Binance's
  filters (:func:`~ballast.engine.kernel.instruments.binance_defaults` of its assets, as
  :func:`~ballast.engine.app.backtest.simulated_venue` does) and the simulated exchange of a paper
  run (:func:`~ballast.engine.app.backtest.sim_config`: ``[paper]`` balances, slippage, latency);
  durable in ``state_path`` when given;
- the loopback server (``adapters/loopback/server.py``) on ``host:port`` (port 0: any free one),
  accepting the one API key pair given;
- the market driver (:mod:`ballast.adapters.loopback.driver`) replaying ``[paper]``'s market data
  (``data_dir`` or ``paper.data_dir``, cut to ``paper.start`` .. ``paper.end``) or, with
  ``synthetic_seed``, a seeded synthetic market of the config's assets (bars of ``interval_s``
  seconds, default hourly), one bar time every ``step_s`` seconds. With a ``state_path`` the
  driver keeps its position beside it (``<state>.driver.json``): a restarted exchange goes on
  after the last step it sent. A position file without its state file is stale (the exchange
  starts over) and is removed.

and yields a :class:`LoopbackHandle`. ``autostart`` sends the first step (so the exchange has
prices when the handle is returned) and starts the driver's task; otherwise the caller starts it
(``handle.start_driver()``) or steps it (``await handle.driver.step()``). Leaving the context
halts the driver, stops the server and closes the core.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ballast.adapters.data.bundle import MarketBundle
from ballast.adapters.data.synthetic import (
    DEFAULT_ASSETS,
    AssetSpec,
    SyntheticConfig,
    SyntheticMarket,
)
from ballast.adapters.loopback.core import LoopbackCore
from ballast.adapters.loopback.driver import MarketDriver, StopReason
from ballast.adapters.loopback.faults import FaultPlan
from ballast.adapters.loopback.server import LoopbackServer
from ballast.adapters.loopback.stream_faults import StreamFaultPlan, install_stream_faults
from ballast.engine.app.backtest import assets_of, load_market, sim_config
from ballast.engine.app.bundled import data_dir as bundled_data_dir
from ballast.engine.kernel.clock import NS_PER_HOUR, NS_PER_SECOND, LiveClock
from ballast.engine.kernel.config import Config
from ballast.engine.kernel.instruments import binance_defaults
from ballast.engine.kernel.timefmt import parse_time

SYNTHETIC_BARS = 24 * 365
"""Hourly bars of a synthetic market without ``paper.end``: a year."""


@dataclass
class LoopbackHandle:
    """A running loopback exchange: its core, server and market driver, where it listens and
    the key pair it accepts."""

    core: LoopbackCore
    server: LoopbackServer
    driver: MarketDriver
    rest_url: str
    ws_url: str
    api_key: str
    api_secret: str = field(repr=False)
    bundle: MarketBundle = field(repr=False)
    task: asyncio.Task[StopReason] | None = field(default=None, repr=False)
    """The driver's task (None until started)."""

    def ccxt_config(self) -> dict[str, Any]:
        """The constructor config of a ``ccxt.pro.binance`` client for this exchange."""
        return self.server.ccxt_config(self.api_key, self.api_secret)

    def start_driver(self) -> asyncio.Task[StopReason]:
        """Start the market driver's task (once)."""
        if self.task is None:
            self.task = asyncio.create_task(self.driver.run(), name="loopback-market")
        return self.task


def position_path(state_path: Path) -> Path:
    """Where the market driver of an exchange kept in ``state_path`` keeps its position."""
    return state_path.with_name(state_path.name + ".driver.json")


def new_key_pair() -> tuple[str, str]:
    """A random API key and secret (for a local user of a loopback exchange)."""
    return secrets.token_hex(16), secrets.token_hex(32)


def market_of(
    config: Config,
    *,
    data_dir: Path | None = None,
    synthetic_seed: int | None = None,
    interval_s: int | None = None,
) -> MarketBundle:
    """The market the exchange serves: ``[paper]``'s data (or ``data_dir``) cut to
    ``paper.start`` .. ``paper.end``, or a seeded synthetic market of the config's assets (bars
    of ``interval_s`` seconds, hourly by default)."""
    paper = config.paper
    if synthetic_seed is not None:
        return synthetic_market(config, synthetic_seed, interval_s=interval_s)
    if interval_s is not None:
        raise ValueError("interval_s: only for a synthetic market (the data has its own bars)")
    folder = data_dir if data_dir is not None else bundled_data_dir(paper.data_dir)
    return load_market(config, folder, start=paper.start, end=paper.end)


def synthetic_market(config: Config, seed: int, *, interval_s: int | None = None) -> MarketBundle:
    """A seeded synthetic market (:mod:`ballast.adapters.data.synthetic`) of the config's assets
    (BTC and ETH as the generator knows them, others at 10 with the generic tick of
    :func:`binance_defaults`), hourly (or one bar every ``interval_s`` seconds: 1 gives the
    1-second quotes of a soak), from ``paper.start`` (default 2024-01-01) to ``paper.end``
    (default a year of hourly bars: :data:`SYNTHETIC_BARS` bars)."""
    known = {spec.name: spec for spec in DEFAULT_ASSETS}
    ticks = {i.base: i.tick_size for i in binance_defaults(assets_of(config)) if i.kind == "spot"}
    specs = tuple(
        known.get(asset) or AssetSpec(asset, 10.0, tick=ticks[asset]) for asset in assets_of(config)
    )
    base = SyntheticConfig()
    if interval_s is not None:
        if interval_s <= 0:
            raise ValueError(f"interval_s: must be > 0 seconds, got {interval_s}")
        base = SyntheticConfig(interval_s=interval_s)
    grid = base.funding_interval_h * NS_PER_HOUR
    start = base.start_ns
    if config.paper.start is not None:
        start = parse_time(config.paper.start) // grid * grid
    bars = SYNTHETIC_BARS
    if config.paper.end is not None:
        step = base.interval_s * NS_PER_SECOND
        bars = max(1, (parse_time(config.paper.end) - start) // step - 1)
    synthetic = SyntheticConfig(
        seed=seed,
        assets=specs,
        quote=config.venue.quote,
        start_ns=start,
        bars=bars,
        interval_s=base.interval_s,
    )
    return SyntheticMarket(synthetic).bundle()


@contextlib.asynccontextmanager
async def loopback_exchange(
    config: Config,
    *,
    step_s: float,
    host: str = "127.0.0.1",
    port: int = 0,
    state_path: Path | None = None,
    api_key: str,
    api_secret: str,
    data_dir: Path | None = None,
    synthetic_seed: int | None = None,
    interval_s: int | None = None,
    autostart: bool = True,
    spread_ticks: int = 1,
    stream_faults: StreamFaultPlan | None = None,
    faults: FaultPlan | None = None,
) -> AsyncIterator[LoopbackHandle]:
    """A loopback exchange serving ``config``'s market (module docstring)."""
    bundle = market_of(
        config, data_dir=data_dir, synthetic_seed=synthetic_seed, interval_s=interval_s
    )
    bundle.span()  # no bars in the data (or in paper.start .. paper.end): fail now
    instruments = binance_defaults(assets_of(config), config.venue.quote)
    clock = LiveClock()
    driver_position = None if state_path is None else _driver_position(state_path)
    core = LoopbackCore(instruments, sim_config(config), clock, state_path=state_path)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(core.close)
        driver = MarketDriver(
            bundle,
            core,
            clock,
            step_s=step_s,
            spread_ticks=spread_ticks,
            position_path=driver_position,
        )
        server = LoopbackServer(
            core, host=host, port=port, keys={api_key: api_secret}, faults=faults
        )
        driver.register(server)
        install_stream_faults(server, stream_faults)  # all off unless the plan says
        await server.start()
        stack.push_async_callback(server.stop)
        handle = LoopbackHandle(
            core, server, driver, server.rest_url, server.ws_url, api_key, api_secret, bundle
        )
        stack.push_async_callback(_stop_driver, handle)
        if autostart:
            await driver.step()  # priced before anyone is told where the exchange is
            handle.start_driver()
        yield handle


def _driver_position(state_path: Path) -> Path:
    """The driver's position file of ``state_path``, removed when stale (no state file: the
    exchange starts over, so does its market)."""
    path = position_path(state_path)
    if not state_path.exists():
        path.unlink(missing_ok=True)
    return path


async def _stop_driver(handle: LoopbackHandle) -> None:
    """Halt the driver and wait for its task (a step being sent is finished first)."""
    handle.driver.halt()
    if handle.task is not None:
        await handle.task
