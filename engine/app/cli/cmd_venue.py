"""``ballast venue serve -c CONFIG``: a loopback Binance exchange for the engine to trade on.

It serves Binance spot and USDⓈ-M futures (REST and WebSockets, as the real ccxt.pro client
speaks them) on 127.0.0.1, over the simulated exchange of ``[paper]`` (balances, fees, slippage,
latency), with ``[paper]``'s market data replayed at ``--step-s`` seconds per bar time (or a seeded
synthetic market: ``--synthetic SEED``); see :mod:`ballast.engine.app.venue_serve`.

Its first stdout line is ``listening http://HOST:PORT ws://HOST:PORT`` (``--port 0``: any free
port), then what it serves. It accepts the API key and secret in the environment variables the
config names (``venue.api_key_env``, ``venue.api_secret_env``); when neither is set it makes up a
pair and prints ``export NAME=...`` lines for them, which is fine for a loopback exchange that
holds no real money, and only that. ``--state FILE`` keeps the exchange (every order, fill,
balance) and the market's position in FILE: restarted on it, the exchange is the one it was and
the market goes on after the last bar time it sent.

SIGTERM or SIGINT stop it gracefully (exit 0); ``--exit-when-done`` also stops it once the data
is exhausted. A bad config exits 2 naming the key.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

from ballast.adapters.data.klines import DataError
from ballast.adapters.loopback.faults import (
    KINDS,
    PARAMS,
    FaultPlan,
    FaultSpec,
    FaultSpecError,
    parse_spec,
)
from ballast.adapters.loopback.permissions import KEY_RESTRICTIONS
from ballast.adapters.loopback.stream_faults import stream_plan
from ballast.engine.app.cli import exits
from ballast.engine.app.config_check import load_checked_config
from ballast.engine.app.venue_serve import (
    LoopbackHandle,
    loopback_exchange,
    new_key_pair,
    position_path,
)
from ballast.engine.kernel.config import Config, load_secrets, simulated_venue_overrides
from ballast.engine.kernel.errors import BallastError, ConfigError
from ballast.engine.kernel.instruments import is_perp
from ballast.engine.kernel.timefmt import ns_to_iso

DEFAULT_STEP_S = 1.0
DEFAULT_WEIGHT_LIMIT = 2400
"""Binance USD-M futures: request weight per minute and IP."""
DEFAULT_SPOT_WEIGHT_LIMIT = 6000
"""Binance spot: request weight per minute and IP."""


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    venue = sub.add_parser("venue", help="a loopback Binance exchange (for paper trading)")
    commands = venue.add_subparsers(dest="venue_command", metavar="COMMAND")
    commands.required = True
    serve = commands.add_parser(
        "serve",
        help="serve a loopback Binance exchange (spot + USD-M) over [paper]'s market",
        description=(
            "Serve a Binance-compatible exchange (REST + WebSockets) on loopback, over the "
            "simulated account of [paper] and its market data replayed at a pace. It accepts the "
            "API key pair in the environment variables venue.api_key_env and "
            "venue.api_secret_env name; if neither is set it makes up a pair and prints export "
            "lines for it (fine for a loopback exchange holding no real money). Stops on SIGTERM "
            "or SIGINT (exit 0)."
        ),
    )
    serve.add_argument("-c", "--config", required=True)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, default=0, help="port to bind (default 0: any free port)"
    )
    serve.add_argument(
        "--step-s",
        type=_step,
        default=DEFAULT_STEP_S,
        metavar="SECONDS",
        help="wall-clock seconds per bar time of the data "
        f"(default {DEFAULT_STEP_S:g}; 0: as fast as possible)",
    )
    serve.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="keep the exchange and its market position in FILE; restarted on it, it goes on",
    )
    market = serve.add_mutually_exclusive_group()
    market.add_argument("--data", type=Path, metavar="DIR", help="market data folder")
    market.add_argument(
        "--synthetic", type=int, metavar="SEED", help="serve a seeded synthetic market instead"
    )
    serve.add_argument(
        "--interval-s",
        type=_interval,
        metavar="SECONDS",
        help="bar interval of the --synthetic market in seconds (default 3600; 1: a quote "
        "every second of data time, e.g. for a soak at --step-s 0)",
    )
    serve.add_argument(
        "--key-restriction",
        choices=KEY_RESTRICTIONS,
        default="trade",
        help="what the served key may do, as GET /sapi/v1/account/apiRestrictions says and the "
        "exchange enforces: trade (default: read and trade, no withdrawals), withdraw (also "
        "withdraw), read (no orders: -2015), unanswered (trade; the query is not answered)",
    )
    serve.add_argument(
        "--exit-when-done", action="store_true", help="stop once the market data is exhausted"
    )
    serve.add_argument(
        "--weight-limit",
        type=_weight,
        default=DEFAULT_WEIGHT_LIMIT,
        metavar="N",
        help="USD-M futures request weight allowed per minute and IP, advertised in "
        f"exchangeInfo.rateLimits and enforced (HTTP 429 beyond; default {DEFAULT_WEIGHT_LIMIT}, "
        "Binance's)",
    )
    serve.add_argument(
        "--spot-weight-limit",
        type=_weight,
        metavar="N",
        help="the spot API's (default: --weight-limit scaled as on Binance, "
        f"{DEFAULT_SPOT_WEIGHT_LIMIT} per {DEFAULT_WEIGHT_LIMIT})",
    )
    serve.add_argument(
        "--faults",
        type=_faults,
        default=FaultSpec({}, {}),
        metavar="SPEC",
        help="inject faults, seeded: KIND=RATE and PARAM=VALUE, comma-separated (e.g. "
        "rest_5xx=0.05,slow=0.1,skew_ms=-3000; kinds: "
        + ", ".join(KINDS)
        + "; params: "
        + ", ".join(PARAMS)
        + "); GET/POST /_loopback/faults reads and changes them at run time (the stream kinds: "
        "/_loopback/stream-faults)",
    )
    serve.add_argument(
        "--fault-seed", type=int, default=0, metavar="N", help="the faults' seed (default 0)"
    )
    serve.set_defaults(func=serve_cmd)


def _faults(text: str) -> FaultSpec:
    try:
        return parse_spec(text)
    except FaultSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, got {port}")
    return port


def _step(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be >= 0 and finite, got {text}")
    return value


def _interval(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _weight(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def weight_limits(args: argparse.Namespace) -> tuple[int, int]:
    """(futures, spot) request weight per minute: the flags, spot scaled from futures when only
    that one is given."""
    futures = int(args.weight_limit)
    spot = args.spot_weight_limit
    if spot is None:
        spot = futures * DEFAULT_SPOT_WEIGHT_LIMIT // DEFAULT_WEIGHT_LIMIT
    return futures, int(spot)


def key_pair(config: Config) -> tuple[str, str, bool]:
    """(api key, secret, made up): from the environment variables the config names, or a new
    pair when neither is set. Only one of them set is a config error naming the other."""
    found = load_secrets(config.venue)
    if found.api_key is not None and found.api_secret is not None:
        return found.api_key, found.api_secret, False
    if found.api_key is None and found.api_secret is None:
        key, secret = new_key_pair()
        return key, secret, True
    missing = config.venue.api_key_env if found.api_key is None else config.venue.api_secret_env
    raise ConfigError(f"env:{missing}", "not set, while its pair is (set both or neither)")


async def serve_cmd(args: argparse.Namespace) -> int:
    config = load_checked_config(args.config)
    overrides = simulated_venue_overrides(config)
    if overrides:
        raise ConfigError(
            overrides[0],
            "applies to the simulated venue only; the loopback exchange serves Binance's own "
            "fees and filters",
            source=str(args.config),
        )
    if args.interval_s is not None and args.synthetic is None:
        raise ConfigError("--interval-s", "sets the bar interval of a --synthetic market only")
    key, secret, made_up = key_pair(config)
    stop = asyncio.Event()
    try:
        exchange = loopback_exchange(
            config,
            step_s=args.step_s,
            host=args.host,
            port=args.port,
            state_path=args.state,
            api_key=key,
            api_secret=secret,
            data_dir=args.data,
            synthetic_seed=args.synthetic,
            stream_faults=stream_plan(args.faults, args.fault_seed),
            faults=FaultPlan(args.faults, args.fault_seed),
            interval_s=args.interval_s,
        )
        with _signals(stop):
            async with exchange as handle:
                # before anyone knows where it is: every exchangeInfo advertises these
                handle.server.weight_limit, handle.server.spot_weight_limit = weight_limits(args)
                handle.server.permissions.by_key[key] = args.key_restriction
                print(f"listening {handle.rest_url} {handle.ws_url}", flush=True)
                if made_up:
                    print(f"export {config.venue.api_key_env}={key}", flush=True)
                    print(f"export {config.venue.api_secret_env}={secret}", flush=True)
                for line in _described(config, handle, args):
                    print(line, flush=True)
                await _serve(handle, stop, exit_when_done=args.exit_when_done)
    except DataError as exc:
        raise DataError(f"venue serve: {exc}") from None
    except OSError as exc:
        raise BallastError(f"venue serve: {exc}") from None
    print("stopped", flush=True)
    return exits.OK


def _described(config: Config, handle: LoopbackHandle, args: argparse.Namespace) -> list[str]:
    """What the exchange serves: symbols, market range and pace, state file, key env vars."""
    symbols = sorted(handle.core.exchange.instruments, key=lambda s: (is_perp(s), s))
    first, last = handle.bundle.span()
    source = f"synthetic seed {args.synthetic}" if args.synthetic is not None else "data"
    if args.synthetic is not None and args.interval_s is not None:
        source += f" ({args.interval_s} s bars)"
    if args.synthetic is None:
        source = str(args.data if args.data is not None else config.paper.data_dir)
    lines = [
        f"serving: {' '.join(symbols)}",
        f"market: {source} {ns_to_iso(first)[:16]} → {ns_to_iso(last)[:16]}, "
        f"one bar time every {args.step_s:g} s",
        f"keys: {config.venue.api_key_env} / {config.venue.api_secret_env}",
    ]
    resumed = handle.driver.resumed_from
    if args.state is None:
        lines.append("state: none (in memory; a restart starts over)")
    elif resumed is None:
        lines.append(f"state: {args.state} (new), market position {position_path(args.state)}")
    else:
        lines.append(
            f"state: {args.state}, market resumed after {ns_to_iso(resumed.data_ts_ns)[:16]} "
            f"({resumed.steps:,} bar times sent before)"
        )
    futures, spot = weight_limits(args)
    lines.append(f"request weight per minute: futures {futures}, spot {spot}")
    if args.faults.text:
        lines.append(f"faults: {args.faults.text} (seed {args.fault_seed})")
    lines.append(f"key restriction: {args.key_restriction}")
    if not _is_loopback(args.host):
        lines.append(f"warning: listening on {args.host}, not only on this machine")
    return lines


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _serve(handle: LoopbackHandle, stop: asyncio.Event, *, exit_when_done: bool) -> None:
    """Until ``stop`` (a signal), or the data is exhausted with ``exit_when_done``; a failing
    driver stops the exchange with its error."""
    task = handle.start_driver()
    waits = [asyncio.ensure_future(stop.wait()), task]
    if exit_when_done:
        waits.append(asyncio.ensure_future(handle.driver.finished.wait()))
    try:
        while True:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if task.done() and task.exception() is not None:
                task.result()  # raises
            if stop.is_set() or (exit_when_done and handle.driver.finished.is_set()):
                break
            if task.done():
                print("market: data exhausted; serving until SIGTERM or SIGINT", flush=True)
                waits.remove(task)
    finally:
        for wait in waits:
            if wait is not task:
                wait.cancel()


@contextlib.contextmanager
def _signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` while inside."""
    loop = asyncio.get_running_loop()
    handled = (signal.SIGTERM, signal.SIGINT)
    callback: Callable[[], None] = stop.set
    for sig in handled:
        loop.add_signal_handler(sig, callback)
    try:
        yield
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
