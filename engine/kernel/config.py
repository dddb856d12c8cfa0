"""Configuration: TOML validated into msgspec structs.

A bad file raises :class:`~ballast.engine.kernel.errors.ConfigError` naming the key path
(``risk.max_gross_leverage``) and the problem; the CLI turns it into exit code 2. Unknown keys
are errors (typos must not be silently ignored). Secrets are never in the file: it names the
environment variables that hold them, and :func:`load_secrets` reads those.
"""

from __future__ import annotations

import copy
import decimal
import math
import os
import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Final, Literal

import msgspec

from ballast.engine.kernel.bar_interval import parse_bar_interval
from ballast.engine.kernel.calendar_windows import parse_calendar
from ballast.engine.kernel.config_ranges import Range, between, check_ranges, json_number
from ballast.engine.kernel.errors import ConfigError
from ballast.engine.kernel.events import Mode
from ballast.engine.kernel.fee_presets import DEFAULT_FEE_PRESET, FeePresetName
from ballast.engine.kernel.instruments import base_of, quote_of
from ballast.engine.kernel.redaction import register_secret
from ballast.engine.kernel.timefmt import parse_time

_ONE: Final = Decimal(1)
_DELEVERAGE_MARGIN: Final = Decimal("0.05")

_OPEN_FRACTION: Final = between("0", "1", low_open=True)
"""(0, 1]: a share that must be something."""
_AMOUNT: Final = between("0", "1e15")
"""An amount of money or a notional: at most a quadrillion, so that no product overflows."""
_DAY_S: Final = 86_400


class _Section(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of config sections: unknown keys are errors, numeric keys are checked against
    ``RANGES`` (key → :class:`Range`; for a table, every value of it)."""

    RANGES: ClassVar[Mapping[str, Range]] = {}

    def __post_init__(self) -> None:
        check_ranges(self)


_ASSET: Final = re.compile(r"[A-Z0-9][A-Za-z0-9._-]*")
_SPOT: Final = re.compile(r"(?P<base>[A-Za-z0-9._-]+)/(?P<quote>[A-Za-z0-9._-]+)")
_PERP: Final = re.compile(
    r"(?P<base>[A-Za-z0-9._-]+)/(?P<quote>[A-Za-z0-9._-]+):(?P<settle>[A-Za-z0-9._-]+)"
)


def looks_like_a_credential(text: str) -> bool:
    """A long run of mixed-case letters and digits without an underscore: an API key or secret
    pasted where the name of its environment variable belongs (never echoed in an error)."""
    return (
        len(text) >= 24
        and text.isalnum()
        and any(c.isdigit() for c in text)
        and any(c.islower() for c in text)
        and any(c.isupper() for c in text)
    )


OrderTransport = Literal["rest", "websocket"]
DurableWrite = Literal["loop", "thread"]
"""How orders reach a ccxt.pro venue: REST requests, or the exchange's WebSocket API."""
DEFAULT_ORDER_TRANSPORT: Final[OrderTransport] = "websocket"
"""``venue.order_transport`` unless configured, and a ccxt venue's unless given: one default."""


class VenueConfig(_Section, frozen=True):
    """Which venue the engine trades on and how it authenticates (environment variable names
    only, never the keys themselves).

    ``kind``: ``"simulated"`` (the in-process simulator of backtests and the simulated paper run),
    ``"paper"`` (the loopback Binance-compatible exchange started in-process, traded through the
    real ccxt.pro client; its keys are generated per run) or ``"binance"`` (the real exchange, its
    sandbox with ``testnet = true``, or any Binance-compatible one at ``rest_url``/``ws_url``,
    e.g. a ``ballast venue serve``; the keys are read from ``api_key_env``/``api_secret_env``).
    ``silent_order_s``: an open order with no news for this long is looked up at the venue.
    ``shutdown_timeout_s``: on SIGTERM/SIGINT, how long orders being sent may take to finish.
    ``ws_keepalive_s``: ping every WebSocket this often and drop one whose pongs stop for twice
    as long (a half-open connection; 0: the exchange client's default, Binance 180 s).
    ``order_transport``: ``"websocket"`` (the default: the exchange's WebSocket API on a
    connection kept open, Binance ``order.place``; no HTTP round trip) or ``"rest"`` (an HTTP
    request per order).
    ``request_timeout_s``: how long a request (REST, or an order over the WebSocket API) may go
    unanswered before its outcome counts as unknown (ccxt's ``timeout``).
    """

    kind: Literal["simulated", "paper", "binance"] = "simulated"
    quote: str = "USDT"
    api_key_env: str = "BALLAST_API_KEY"
    api_secret_env: str = "BALLAST_API_SECRET"
    rest_url: str | None = None
    ws_url: str | None = None
    testnet: bool = False
    silent_order_s: float = 10.0
    shutdown_timeout_s: float = 10.0
    ws_keepalive_s: float = 0.0
    order_transport: OrderTransport = DEFAULT_ORDER_TRANSPORT
    request_timeout_s: float = 10.0

    RANGES: ClassVar[Mapping[str, Range]] = {
        "silent_order_s": Range(1, 3600),
        "shutdown_timeout_s": Range(0, 600),
        "ws_keepalive_s": Range(0, 3600),
        "request_timeout_s": Range(0.1, 120),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if not _ASSET.fullmatch(self.quote):
            raise ValueError(f"quote: {self.quote!r} is not an asset name like 'USDT'")
        for name in ("api_key_env", "api_secret_env"):
            if looks_like_a_credential(getattr(self, name)):
                raise ValueError(
                    f"{name}: looks like a key itself, not the name of an environment variable "
                    "(value not shown); put the key in an environment variable and its name here"
                )
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", getattr(self, name)):
                raise ValueError(f"{name}: {getattr(self, name)!r} is not an environment variable")
        for name, schemes in (
            ("rest_url", ("http://", "https://")),
            ("ws_url", ("ws://", "wss://")),
        ):
            url = getattr(self, name)
            if url is not None and not url.startswith(schemes):
                raise ValueError(f"{name}: {url!r} does not start with {' or '.join(schemes)}")
        if (self.rest_url is None) != (self.ws_url is None):
            missing = "ws_url" if self.ws_url is None else "rest_url"
            raise ValueError(f"{missing}: rest_url and ws_url are set together (one exchange)")
        if self.kind != "binance":
            for name in ("rest_url", "ws_url", "testnet"):
                if getattr(self, name):
                    raise ValueError(
                        f"{name}: only for kind = 'binance' (kind {self.kind!r} "
                        f"{'starts its own exchange' if self.kind == 'paper' else 'has none'})"
                    )
        if self.testnet and self.rest_url is not None:
            raise ValueError(
                "testnet: the sandbox has its own endpoints; set testnet or rest_url/ws_url, "
                "not both"
            )


class InstrumentSpecConfig(_Section, frozen=True):
    """Exchange filters of one symbol (``[instruments.specs."BTC/USDT"]``), each replacing the
    exchange's own; unset keys keep it. ``min_qty`` defaults to the lot size.

    ``contract_size`` (perps): the base units one contract holds. Ballast counts every quantity
    in base units (a linear perp's notional is quantity × price), so a contract size turns the
    lot and the minimum quantity into base units: with ``contract_size`` set, ``lot_size``
    (default 1) and ``min_qty`` (default the lot) count contracts, and an order is a whole number
    of lots of ``lot_size × contract_size`` base units. The journal's ``InstrumentsLoaded``
    records the resulting filters in base units."""

    lot_size: Decimal | None = None
    tick_size: Decimal | None = None
    min_qty: Decimal | None = None
    min_notional: Decimal | None = None
    contract_size: Decimal | None = None

    RANGES: ClassVar[Mapping[str, Range]] = {
        "lot_size": between("0", "1000000000", low_open=True),
        "tick_size": between("0", "1000000000", low_open=True),
        "min_qty": between("0", "1e15"),
        "min_notional": _AMOUNT,
        "contract_size": between("0", "1000000000", low_open=True),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if all(getattr(self, name) is None for name in self.__struct_fields__):
            raise ValueError("lot_size: no filter set (lot_size, tick_size, min_qty, min_notional)")


class InstrumentsConfig(_Section, frozen=True):
    """The symbols traded and, on the simulated venue, their filters: ``precision = "exchange"``
    (the exchange's lot, tick and minimums, with ``specs`` overriding them per symbol) or
    ``"exact"`` (no lot or tick rounding, no minimum quantity or notional: fractional quantities
    at exact prices)."""

    spot: list[str] = msgspec.field(default_factory=lambda: ["BTC/USDT", "ETH/USDT"])
    perp: list[str] = msgspec.field(default_factory=lambda: ["BTC/USDT:USDT", "ETH/USDT:USDT"])
    precision: Literal["exchange", "exact"] = "exchange"
    specs: dict[str, InstrumentSpecConfig] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.spot and not self.perp:
            raise ValueError("spot: no instrument to trade; list spot and/or perp symbols")
        for kind, pattern, example in (
            ("spot", _SPOT, "BTC/USDT"),
            ("perp", _PERP, "BTC/USDT:USDT"),
        ):
            symbols: list[str] = getattr(self, kind)
            for index, symbol in enumerate(symbols):
                match = pattern.fullmatch(symbol)
                if match is None:
                    raise ValueError(f"{kind}: {symbol!r} is not a {kind} symbol like {example!r}")
                if kind == "perp" and match["settle"] != match["quote"]:
                    raise ValueError(
                        f"perp[{index}]: {symbol!r} settles in {match['settle']}, not in its "
                        f"quote {match['quote']} (only linear perps are traded)"
                    )
                if symbol in symbols[:index]:
                    raise ValueError(f"{kind}[{index}]: {symbol!r} is listed twice")
        for symbol in self.specs:
            if symbol not in (*self.spot, *self.perp):
                raise ValueError(
                    f"specs.{toml_key(symbol)}: {symbol!r} is not a listed spot or perp symbol"
                )
            if self.precision == "exact":
                raise ValueError(
                    f"specs.{toml_key(symbol)}: precision = 'exact' has no lot, tick or "
                    "minimum to override; remove the spec or set precision = 'exchange'"
                )
            if self.specs[symbol].contract_size is not None and symbol not in self.perp:
                raise ValueError(
                    f"specs.{toml_key(symbol)}.contract_size: {symbol!r} is spot; a contract "
                    "size is a perp's"
                )

    def quotes(self) -> list[tuple[str, str]]:
        """(key, quote asset) of every instrument: ("instruments.spot[0]", "USDT"), …"""
        return [
            (f"instruments.{kind}[{index}]", quote_of(symbol))
            for kind in ("spot", "perp")
            for index, symbol in enumerate(getattr(self, kind))
        ]

    def assets(self) -> set[str]:
        """The base assets traded: BTC for BTC/USDT and BTC/USDT:USDT."""
        return {base_of(symbol) for symbol in [*self.spot, *self.perp]}


class FeeRatesConfig(_Section, frozen=True):
    """Maker and/or taker rate, fractions of notional (0.001 = 0.1 %); an unset one keeps the
    rate it overrides."""

    maker: Decimal | None = None
    taker: Decimal | None = None

    RANGES: ClassVar[Mapping[str, Range]] = {
        "maker": between("0", "0.1"),
        "taker": between("0", "0.1"),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.maker is None and self.taker is None:
            raise ValueError("maker: set maker and/or taker")


class FeesConfig(_Section, frozen=True):
    """Trading fees of the simulated venue: the named ``preset``
    (:data:`~ballast.engine.kernel.fee_presets.FEE_PRESETS`), then ``spot`` / ``perp`` rates of
    one market type, then ``symbols`` rates of one symbol, each overriding the one before. The
    planner, the simulated exchange and the journal's instruments use the same figures."""

    preset: FeePresetName = DEFAULT_FEE_PRESET
    spot: FeeRatesConfig | None = None
    perp: FeeRatesConfig | None = None
    symbols: dict[str, FeeRatesConfig] = msgspec.field(default_factory=dict)

    def overrides(self) -> list[str]:
        """The keys that change today's (Binance VIP 0) fees: ``fees.preset``, ``fees.spot``, …"""
        keys = [] if self.preset == DEFAULT_FEE_PRESET else ["fees.preset"]
        keys += [f"fees.{kind}" for kind in ("spot", "perp") if getattr(self, kind) is not None]
        return keys + [f"fees.symbols.{toml_key(symbol)}" for symbol in self.symbols]


def toml_key(key: str) -> str:
    """``key`` as one part of a TOML dotted key: ``BTC`` as is, ``"BTC/USDT"`` quoted."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else f'"{key}"'


class StrategyConfig(_Section, frozen=True):
    """A built-in strategy name or ``module:Class``, with its parameters."""

    name: str = "threshold"
    params: dict[str, Any] = msgspec.field(default_factory=dict)


BandCombine = Literal["narrower", "wider"]
DEFAULT_ABS_PP: Final = Decimal(5)
"""The band when ``[bands]`` sets neither ``abs_pp`` nor ``rel``: ±5 percentage points."""
_BAND_RANGES: Final[Mapping[str, Range]] = {
    "abs_pp": between("0", "100", low_open=True, high_open=True),
    "rel": _OPEN_FRACTION,
}


def _check_band_rule(abs_pp: Decimal | None, rel: Decimal | None, combine: str | None) -> None:
    """Both widths need the rule that combines them written out; a rule needs both widths."""
    if abs_pp is not None and rel is not None and combine is None:
        raise ValueError(
            "combine: abs_pp and rel are both set; say how they combine: combine = "
            "'narrower' (the nearer edge of the two) or 'wider' (the farther one)"
        )
    if combine is not None and (abs_pp is None or rel is None):
        missing = "abs_pp" if abs_pp is None else "rel"
        raise ValueError(
            f"combine: {combine!r} combines abs_pp and rel; it needs both set ({missing} is not)"
        )


class EffectiveBand(msgspec.Struct, frozen=True, kw_only=True):
    """The band rule in force for an asset: ``abs_pp`` (percentage points) and/or ``rel``
    (fraction of the target), ``combine`` when both are set, and ``source``: the config key that
    set it (``bands``, ``bands.assets.BTC``) or ``default`` (nothing set: ±5 pp)."""

    abs_pp: Decimal | None
    rel: Decimal | None
    combine: BandCombine
    source: str

    def describe(self) -> str:
        """``±5 pp``, ``±25 % of target``, ``narrower of ±5 pp and ±25 % of target``."""
        parts = [
            *([f"±{self.abs_pp.normalize():f} pp"] if self.abs_pp is not None else []),
            *([f"±{(self.rel * 100).normalize():f} % of target"] if self.rel is not None else []),
        ]
        if len(parts) == 2:
            return f"{self.combine} of {parts[0]} and {parts[1]}"
        return parts[0]


class AssetBandConfig(_Section, frozen=True):
    """One asset's band (``[bands.assets.BTC]``): replaces ``[bands]``'s ``abs_pp``, ``rel`` and
    ``combine`` for that asset as a whole (nothing is inherited)."""

    abs_pp: Decimal | None = None
    rel: Decimal | None = None
    combine: BandCombine | None = None

    RANGES: ClassVar[Mapping[str, Range]] = _BAND_RANGES

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.abs_pp is None and self.rel is None:
            raise ValueError("abs_pp: an asset's band sets abs_pp and/or rel")
        _check_band_rule(self.abs_pp, self.rel, self.combine)


class BandsConfig(_Section, frozen=True):
    """Tolerance around each target, stated explicitly: absolute (``abs_pp``, percentage points),
    relative (``rel``, a fraction of the target), or both with ``combine`` = ``"narrower"`` or
    ``"wider"``. Nothing set: ±5 pp. ``assets`` overrides the band of single assets."""

    abs_pp: Decimal | None = None
    rel: Decimal | None = None
    combine: BandCombine | None = None
    rebalance_to: Literal["target", "edge"] = "target"
    assets: dict[str, AssetBandConfig] = msgspec.field(default_factory=dict)

    RANGES: ClassVar[Mapping[str, Range]] = _BAND_RANGES

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_band_rule(self.abs_pp, self.rel, self.combine)
        for asset in self.assets:
            if not _ASSET.fullmatch(asset):
                raise ValueError(f"assets.{asset}: {asset!r} is not an asset name like 'BTC'")

    def band(self, asset: str | None = None) -> EffectiveBand:
        """The band rule for ``asset`` (its override, else ``[bands]``, else ±5 pp); ``None``:
        the rule of every asset without an override."""
        own = self.assets.get(asset) if asset is not None else None
        if own is not None:
            return EffectiveBand(
                abs_pp=own.abs_pp,
                rel=own.rel,
                combine=own.combine or "narrower",
                source=f"bands.assets.{asset}",
            )
        if self.abs_pp is None and self.rel is None:
            return EffectiveBand(
                abs_pp=DEFAULT_ABS_PP, rel=None, combine="narrower", source="default"
            )
        return EffectiveBand(
            abs_pp=self.abs_pp, rel=self.rel, combine=self.combine or "narrower", source="bands"
        )


class RebalanceConfig(_Section, frozen=True):
    """When the rebalancer looks and what it trades.

    ``trigger``: ``"threshold"`` (every snapshot, against the bands), ``"calendar"`` (at the first
    snapshot of every period of ``every_days`` counted from the first snapshot, every asset back
    to target whatever the drift; the bands are not used) or ``"hybrid"`` (the band check, but
    only at those calendar dates). ``scope``: ``"breached"`` (trade only the assets out of their
    band) or ``"all"`` (when any asset is out of its band, every asset goes back to target).
    Dates are counted from the first snapshot of a run (a restarted run counts anew). Whatever
    the trigger, the risk reactions act at once: the kill switch, deleveraging, and a stressed
    budget closing overlay longs.
    """

    trigger: Literal["threshold", "calendar", "hybrid"] = "threshold"
    scope: Literal["breached", "all"] = "breached"
    every_days: Decimal | None = None

    RANGES: ClassVar[Mapping[str, Range]] = {"every_days": between("0", "3650", low_open=True)}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.trigger == "threshold" and self.every_days is not None:
            raise ValueError(
                "every_days: only for trigger = 'calendar' or 'hybrid' (trigger is 'threshold')"
            )
        if self.trigger != "threshold" and self.every_days is None:
            raise ValueError(
                f"every_days: trigger = {self.trigger!r} needs its period in days "
                "(e.g. every_days = 30)"
            )


class RearmConfig(_Section, frozen=True):
    """Backtests only: when the kill switch re-arms by itself (``[risk.rearm]``; live it stays
    manual, and ``ballast run`` refuses a config that sets it). Off when neither key is set.

    ``after_days``: at least this long after the kill switch fired; ``recovery``: NAV at least
    this fraction above its lowest snapshot since it fired (0.05 = 5 % off the trough). With both
    set, both must hold. After a re-arm the drawdown limit is measured from the NAV at the re-arm
    (a new peak), not from the peak before the fall, so the same fall does not trip it again.
    """

    after_days: float | None = None
    recovery: Decimal | None = None

    RANGES: ClassVar[Mapping[str, Range]] = {
        "after_days": Range(0, 3650),
        "recovery": between("0", "100"),
    }

    @property
    def enabled(self) -> bool:
        return self.after_days is not None or self.recovery is not None


class RiskConfig(_Section, frozen=True):
    """The mandate. The regime may tighten these, never loosen them.

    Leverage has three named limits (see :mod:`ballast.engine.trading.measures`):
    ``max_net_leverage`` (the mandate's cap on Σ |net exposure| / NAV), and two exchange-side ones,
    ``max_gross_leverage`` ((Σ |spot| + Σ |perp notional|) / NAV) and ``max_margin_usage`` (initial
    margin / margin balance). Before the exchange would liquidate, the risk actor asks for a
    reducing trade (``DeleverageRequired``) when a perp's distance to liquidation falls below
    ``deleverage_liquidation_distance`` (default ``min_liquidation_distance`` + 0.05), margin
    usage rises above ``max_margin_usage`` or net leverage above its cap at the marks, and the
    pre-trade check lets no order take a perp that close; the kill switch at
    ``min_liquidation_distance`` stays the last resort. ``deleverage_buffer`` is how far inside
    the limit the reduction aims (fraction of the limit).
    """

    max_gross_leverage: Decimal = Decimal(3)
    max_asset_weight: Decimal = Decimal(1)
    drawdown_limit: Decimal = Decimal("0.25")
    min_liquidation_distance: Decimal = Decimal("0.15")
    max_order_notional: Decimal = Decimal(1_000_000)
    max_daily_turnover: Decimal = Decimal(2)
    max_price_deviation: Decimal = Decimal("0.10")
    stale_after_s: float = 30.0
    vol_half_life_h: float = 24.0
    regime_asset: str = "BTC"
    calm_vol: Decimal = Decimal("0.40")
    stressed_vol: Decimal = Decimal("0.90")
    calm_band_scale: Decimal = Decimal("1.4")
    stressed_band_scale: Decimal = Decimal("0.6")
    stressed_leverage_scale: Decimal = Decimal("0.5")
    calendar: list[str] = msgspec.field(default_factory=list)
    """High-risk windows, "START/END" in ISO 8601 UTC: "2024-03-20T18:00/2024-03-20T20:00"."""
    max_abs_funding_rate: Decimal = Decimal("0.03")
    """Largest plausible |funding rate| of one settlement (0.03 = 3 % per 8 h interval): a rate
    beyond it is bad data, rejected like an absurd price and never paid."""
    max_net_leverage: Decimal = Decimal(3)
    max_margin_usage: Decimal = Decimal(1)
    deleverage_liquidation_distance: Decimal | None = None
    """Default: ``min_liquidation_distance`` + 0.05 (0.20 with the defaults)."""
    deleverage_buffer: Decimal = Decimal("0.1")
    rearm: RearmConfig = msgspec.field(default_factory=RearmConfig)
    """Backtests only: the kill switch's re-arm policy (off by default)."""

    RANGES: ClassVar[Mapping[str, Range]] = {
        "max_gross_leverage": between("0", "100", low_open=True),
        # A weight cap above max_gross_leverage is no cap: tests and backtests use 1e6 for that.
        "max_asset_weight": between("0", "1e6", low_open=True),
        # 1 is "no kill switch" (what the backtest's baselines use); 0 would fire at the start.
        "drawdown_limit": _OPEN_FRACTION,
        "min_liquidation_distance": between("0", "1", high_open=True),
        "max_order_notional": between("0", "1e15", low_open=True),
        "max_daily_turnover": between("0", "1e6", low_open=True),
        "max_price_deviation": _OPEN_FRACTION,
        # The staleness timer ticks at half of it: under a second it would tick a billion
        # times per simulated second.
        "stale_after_s": Range(1, 7 * _DAY_S),
        "vol_half_life_h": Range(1, 24 * 365),  # volatility is sampled hourly
        "calm_vol": between("0", "100", low_open=True),
        "stressed_vol": between("0", "100", low_open=True),
        "calm_band_scale": between("0", "100", low_open=True),
        "stressed_band_scale": between("0", "100", low_open=True),
        "stressed_leverage_scale": between("0", "100", low_open=True),  # above 1: no effect
        "max_net_leverage": between("0", "100", low_open=True),
        "max_margin_usage": _OPEN_FRACTION,
        "deleverage_liquidation_distance": between("0", "1", high_open=True),
        "deleverage_buffer": between("0", "1"),
        "max_abs_funding_rate": _OPEN_FRACTION,
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        deleverage = self.deleverage_liquidation_distance
        if deleverage is not None and deleverage < self.min_liquidation_distance:
            raise ValueError(
                "deleverage_liquidation_distance: must be >= min_liquidation_distance "
                f"({self.min_liquidation_distance}), got {deleverage}"
            )
        if self.stressed_vol <= self.calm_vol:
            raise ValueError(f"stressed_vol: must be above calm_vol ({self.calm_vol})")
        if not _ASSET.fullmatch(self.regime_asset):
            raise ValueError(f"regime_asset: {self.regime_asset!r} is not an asset name like 'BTC'")
        for index, window in enumerate(self.calendar):
            start, sep, end = window.partition("/")
            if not sep or not start or not end:
                raise ValueError(f"calendar[{index}]: expected 'START/END', got {window!r}")
            try:
                parse_calendar([window])  # as the risk manager will
            except ValueError as exc:
                raise ValueError(f"calendar[{index}]: {exc}") from None

    @property
    def deleverage_distance(self) -> Decimal:
        """The distance to liquidation below which the risk actor asks to deleverage and the
        pre-trade check lets no order go: ``deleverage_liquidation_distance`` if set, else
        ``min_liquidation_distance`` + 0.05, at most 1."""
        if self.deleverage_liquidation_distance is not None:
            return self.deleverage_liquidation_distance
        return min(self.min_liquidation_distance + _DELEVERAGE_MARGIN, _ONE)


class ExecutionConfig(_Section, frozen=True):
    mode: Mode = "spot"
    cooldown_s: float = 3600.0
    check_interval_s: float = 60.0
    submit_attempts: int = 3
    """Sends of one order (same client order id) before the router gives up on the transport."""
    submit_retry_backoff_s: float = 0.5
    margin_buffer: Decimal = Decimal("0.05")
    """Share of the margin balance (cash + perp unrealised PnL) that no plan commits: spot buys
    and the initial margin of new perp orders are sized within free cash and available margin
    less this reserve."""
    perp_leverage: Decimal = Decimal(10)
    """Leverage set on the venue for the perps (initial margin = notional / leverage): the
    planner's figure until the venue reports a position's margin; the simulated venue uses it."""
    price_snapshot_interval_s: float = 1.0
    """A price move is valued (and the bands checked) at most once per this many seconds of
    event time; a move inside the interval after a valuation waits for its end. 0: every quote
    as it arrives (the fastest reaction, a decision's CPU per quote)."""

    RANGES: ClassVar[Mapping[str, Range]] = {
        "price_snapshot_interval_s": Range(0, 3600),
        "cooldown_s": Range(0, 30 * _DAY_S),
        "check_interval_s": Range(0, _DAY_S, low_open=True),
        "submit_attempts": Range(0, 100, low_open=True),
        "submit_retry_backoff_s": Range(0, 3600),
        "margin_buffer": between("0", "1", high_open=True),
        "perp_leverage": between("1", "125"),
    }


class JournalConfig(_Section, frozen=True):
    """``durable_write``: where a live run's durable writes (an order before it is sent, a fill
    before it is acted on) run: ``"loop"`` on the event loop's own thread (no hand-over to
    SQLite's thread and back: two thread wake-ups less on the path of every order), ``"thread"``
    on SQLite's thread like the group commits of market data (the loop keeps serving other
    sockets during the fsync)."""

    path: str = "var/journal.db"
    batch_size: int = 4096
    flush_interval_ms: int = 50
    durable_write: DurableWrite = "loop"

    RANGES: ClassVar[Mapping[str, Range]] = {
        "batch_size": Range(0, 1_000_000, low_open=True),
        "flush_interval_ms": Range(0, 60_000, low_open=True),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path.strip():
            raise ValueError("path: must name a file")


class MetricsConfig(_Section, frozen=True):
    enabled: bool = True
    address: str = "127.0.0.1:9464"

    def __post_init__(self) -> None:
        super().__post_init__()
        host, sep, port = self.address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"address: expected HOST:PORT, got {self.address!r}")


class SecurityConfig(_Section, frozen=True):
    """What the engine may do with the keys it is given (``[security]``).

    ``read_only``: the engine connects, tracks, plans and journals, but never sends an order:
    every intent the pre-trade check would approve is vetoed with reason ``read_only`` and the
    would-be order in its detail (a key without trade permission is enough).
    ``refuse_withdrawal_keys``: on a start with real keys (``venue.kind = "binance"``), exit
    instead of only warning when the exchange says the key can withdraw.
    """

    read_only: bool = False
    refuse_withdrawal_keys: bool = False


# [paper] data_dir by default: relative to the working folder, else the data bundled with Ballast.
DEFAULT_DATA_DIR = "data/market"


class PaperConfig(_Section, frozen=True):
    """The simulated account and market of backtests, paper runs and ``ballast plan`` on a
    simulated venue: starting balances, the data folder, and an optional [start, end) range
    (times as every time option reads them, see :mod:`ballast.engine.kernel.timefmt`: ISO 8601,
    naive = UTC, or epoch s/ms/us/ns)."""

    balances: dict[str, Decimal] = msgspec.field(default_factory=lambda: {"USDT": Decimal(100_000)})
    data_dir: str = DEFAULT_DATA_DIR
    start: str | None = None
    end: str | None = None
    slippage_bps: Decimal = Decimal(2)
    latency_ms: int = 0
    bar_interval: str | None = None
    """The bars' interval (``1m`` .. ``1w``, see :mod:`ballast.engine.kernel.bar_interval`);
    None: each data file's own, detected from the spacing of its times."""

    RANGES: ClassVar[Mapping[str, Range]] = {
        "balances": _AMOUNT,
        "slippage_bps": between("0", "10000", high_open=True),
        "latency_ms": Range(0, 3_600_000),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.data_dir.strip():
            raise ValueError("data_dir: must name a folder")
        start, end = _moment("start", self.start), _moment("end", self.end)
        if start is not None and end is not None and not start < end:
            raise ValueError(f"end: must be after start ({self.start}), got {self.end}")
        if self.bar_interval is not None:
            try:
                parse_bar_interval(self.bar_interval)
            except ValueError as exc:
                raise ValueError(f"bar_interval: {exc}") from None

    @property
    def bar_interval_s(self) -> int | None:
        """``bar_interval`` in seconds (None: detected from the data)."""
        return None if self.bar_interval is None else parse_bar_interval(self.bar_interval)


class EngineConfig(_Section, frozen=True):
    """Process-level settings. ``actors`` adds user actors as ``module:Class``."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    actors: list[str] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        for spec in self.actors:
            if not re.fullmatch(r"[\w.]+:[\w.]+", spec):
                raise ValueError(f"actors: {spec!r} is not of the form 'module:Class'")


class Config(_Section, frozen=True):
    """A whole Ballast configuration. Every section has defaults."""

    engine: EngineConfig = msgspec.field(default_factory=EngineConfig)
    venue: VenueConfig = msgspec.field(default_factory=VenueConfig)
    instruments: InstrumentsConfig = msgspec.field(default_factory=InstrumentsConfig)
    strategy: StrategyConfig = msgspec.field(default_factory=StrategyConfig)
    targets: dict[str, Decimal] = msgspec.field(default_factory=dict)
    bands: BandsConfig = msgspec.field(default_factory=BandsConfig)
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    execution: ExecutionConfig = msgspec.field(default_factory=ExecutionConfig)
    journal: JournalConfig = msgspec.field(default_factory=JournalConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    paper: PaperConfig = msgspec.field(default_factory=PaperConfig)
    rebalance: RebalanceConfig = msgspec.field(default_factory=RebalanceConfig)
    fees: FeesConfig = msgspec.field(default_factory=FeesConfig)
    security: SecurityConfig = msgspec.field(default_factory=SecurityConfig)

    RANGES: ClassVar[Mapping[str, Range]] = {"targets": between("0", "100")}

    def __post_init__(self) -> None:
        for asset, weight in self.targets.items():
            if weight < 0 or weight > self.risk.max_asset_weight:
                raise ValueError(
                    f"targets.{asset}: weight must be between 0 and "
                    f"risk.max_asset_weight ({self.risk.max_asset_weight}), got {weight}"
                )
        super().__post_init__()
        total = sum(self.targets.values(), Decimal(0))
        if total > _ONE:
            raise ValueError(f"targets: weights add up to {total}, more than 1")
        for check in _CROSS_CHECKS:
            check(self)


def _quote_matches_instruments(config: Config) -> None:
    """Every instrument is quoted in ``venue.quote`` (else every order would be vetoed)."""
    quote = config.venue.quote
    quotes = config.instruments.quotes()
    others = sorted({q for _, q in quotes if q != quote})
    if not others:
        return
    if len(others) == 1 and all(q != quote for _, q in quotes):  # the quote is the odd one out
        raise ValueError(f"venue.quote: {quote!r}, but the instruments are quoted in {others[0]}")
    key, odd = next((k, q) for k, q in quotes if q != quote)
    raise ValueError(f"{key}: quoted in {odd}, not in venue.quote ({quote})")


def _assets_are_traded(config: Config) -> None:
    """Targets, the regime asset and (on the simulated venue) the starting balances name traded
    assets: a target the strategy guard would refuse, a regime that could never be measured, a
    balance no price could ever value (so no snapshot, so no decision)."""
    traded = config.instruments.assets()
    listed = ", ".join(sorted(traded))
    for asset in config.targets:
        if asset not in traded:
            raise ValueError(f"targets.{asset}: {asset} is not traded (instruments: {listed})")
    if config.risk.regime_asset not in traded:
        raise ValueError(
            f"risk.regime_asset: {config.risk.regime_asset} is not traded (instruments: {listed})"
        )
    if config.venue.kind == "binance":
        return  # the real account's balances are the venue's, not [paper]'s
    for asset in config.paper.balances:
        if asset != config.venue.quote and asset not in traded:
            raise ValueError(
                f"paper.balances.{asset}: {asset} is not traded (instruments: {listed}) nor "
                f"the quote ({config.venue.quote}), so no price could value it; set [paper] "
                f"balances (default {{ USDT = 100000 }}) in {config.venue.quote}"
            )


def _rebalance_rules_agree(config: Config) -> None:
    """Band overrides name traded assets; "back to target" settings do not meet "to the edge"."""
    traded = config.instruments.assets()
    for asset in config.bands.assets:
        if asset not in traded:
            listed = ", ".join(sorted(traded))
            raise ValueError(f"bands.assets.{asset}: {asset} is not traded (instruments: {listed})")
    if config.bands.rebalance_to != "edge":
        return
    rebalance = config.rebalance
    if rebalance.scope == "all":
        raise ValueError(
            "rebalance.scope: 'all' brings every asset back to target, but bands.rebalance_to is "
            "'edge'; set one of them differently"
        )
    if rebalance.trigger == "calendar":
        raise ValueError(
            "bands.rebalance_to: 'edge' needs a band, and trigger = 'calendar' uses none (every "
            "asset goes back to target); use rebalance_to = 'target' or trigger = 'hybrid'"
        )


def simulated_venue_overrides(config: Config) -> list[str]:
    """The keys that set fees or instrument filters other than the exchange's own; only the
    simulated venue applies them (a live venue, and the loopback exchange, serve their own)."""
    keys = config.fees.overrides()
    if config.instruments.precision != "exchange":
        keys.append("instruments.precision")
    keys += [f"instruments.specs.{toml_key(symbol)}" for symbol in config.instruments.specs]
    return keys


def _fees_name_traded_symbols(config: Config) -> None:
    """Per-symbol fees name a listed instrument; fee and filter overrides are for the simulated
    venue only (a live venue charges its own fees and has its own filters)."""
    listed = (*config.instruments.spot, *config.instruments.perp)
    for symbol in config.fees.symbols:
        if symbol not in listed:
            raise ValueError(
                f"fees.symbols.{toml_key(symbol)}: {symbol!r} is not a listed spot or perp symbol"
            )
    overrides = simulated_venue_overrides(config)
    if overrides and config.venue.kind != "simulated":
        raise ValueError(
            f"{overrides[0]}: applies to the simulated venue only; venue.kind "
            f"{config.venue.kind!r} trades with the exchange's own fees and filters"
        )


_CROSS_CHECKS: Final = (
    _quote_matches_instruments,
    _assets_are_traded,
    _rebalance_rules_agree,
    _fees_name_traded_symbols,
)
"""Checks across sections, run after every section is valid on its own. Each raises
``ValueError("key.path: problem")``."""


def _moment(key: str, text: str | None) -> int | None:
    """Epoch ns of the time at ``key`` (see :func:`ballast.engine.kernel.timefmt.parse_time`),
    or None when missing."""
    try:
        return None if text is None else parse_time(text)
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None


class Secrets(msgspec.Struct, frozen=True):
    """Venue credentials read from the environment. Never logged, journaled or exported."""

    api_key: str | None = None
    api_secret: str | None = None

    def __repr__(self) -> str:
        return f"Secrets(api_key={'***' if self.api_key else None}, api_secret=***)"

    __str__ = __repr__


_PATH = re.compile(r"^(?P<problem>.*?) - at `\$(?P<path>.*)`$", re.DOTALL)


def _key_path(raw: str) -> str:
    """`$.risk.lev`, `$.targets['BTC']`, `$.instruments.spot[0]` → risk.lev, targets.BTC, …"""
    path = re.sub(r"\['([^']*)'\]", r".\1", raw)
    return path.lstrip(".")


def _find_dict_key(data: Any, path: str) -> str:
    """msgspec reports a bad dict value as `$.targets[...]`; find which key it was by validating
    the parsed document with that dict cut down to one entry at a time."""
    head = path.split("[...]", 1)[0]
    parts = [p for p in head.split(".") if p]
    node = data
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return path
        node = node[part]
    if not isinstance(node, dict):
        return path
    for key in node:
        trial = copy.deepcopy(data)
        target = trial
        for part in parts:
            target = target[part]
        target.clear()
        target[key] = node[key]
        try:
            msgspec.convert(trial, type=Config)
        except msgspec.ValidationError as exc:
            if f"{head}[...]" in str(exc):
                return path.replace("[...]", f".{toml_key(key)}", 1)
    return path


def _config_error(exc: msgspec.ValidationError, source: str, text_in: str | bytes) -> ConfigError:
    text = str(exc)
    match = _PATH.match(text)
    key, problem = ("", text) if match is None else (_key_path(match["path"]), match["problem"])
    if "[...]" in key:
        key = _find_dict_key(tomllib.loads(_as_text(text_in)), key)
    # "field: problem"; a quoted part of the field may hold a colon (fees.symbols."B/U:U")
    field = re.match(r"^(?P<field>(?:[^\s:`'\"]|\"[^\"]*\")+): (?P<rest>.*)$", problem, re.DOTALL)
    if field is not None:  # __post_init__ names its field: "field: problem"
        sub = field["field"]
        key = sub if sub.startswith(f"{key}.") or not key else f"{key}.{sub}"
        problem = field["rest"]
    unknown = re.match(r"^Object contains unknown field `(?P<name>[^`]*)`$", problem)
    if unknown is not None:
        key = f"{key}.{unknown['name']}" if key else unknown["name"]
        problem = "unknown key (check the spelling; `ballast config schema` lists every key)"
    return ConfigError(key, problem, source=source)


def parse_config(text: str | bytes, *, source: str = "<config>") -> Config:
    """Validate TOML text into a :class:`Config`."""
    try:
        try:
            config = msgspec.toml.decode(text, type=Config)
        except decimal.InvalidOperation:
            # A validator compared a NaN. Decode again with NaN comparing false, so that the
            # validators finish and _non_finite below can name its key.
            with decimal.localcontext() as ctx:
                ctx.traps[decimal.InvalidOperation] = False
                config = msgspec.toml.decode(text, type=Config)
    except msgspec.ValidationError as exc:
        raise _config_error(exc, source, text) from None
    except msgspec.DecodeError as exc:
        raise _syntax_error(str(exc), source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"invalid TOML: not UTF-8 text ({exc})", source=source) from None
    bad = _non_finite(config)
    if bad is not None:
        raise ConfigError(bad[0], f"must be a finite number, got {bad[1]}", source=source)
    return config


_AT_LINE: Final = re.compile(r"^(?P<problem>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)$")


def _syntax_error(text: str, source: str) -> ConfigError:
    """A TOML syntax error, located as FILE:LINE:COLUMN when the parser says where."""
    match = _AT_LINE.match(text)
    if match is None:
        return ConfigError("", f"invalid TOML: {text}", source=source)
    where = f"{match['line']}:{match['column']}"
    return ConfigError("", f"invalid TOML: {match['problem']}", source=source, line=where)


def _non_finite(value: Any, path: str = "") -> tuple[str, Any] | None:
    """The key path and value of the first NaN or infinity in a parsed config, if any."""
    items: Any = ()
    if isinstance(value, msgspec.Struct):
        items = ((f".{name}", getattr(value, name)) for name in value.__struct_fields__)
    elif isinstance(value, dict):
        items = ((f".{key}", item) for key, item in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"[{index}]", item) for index, item in enumerate(value))
    elif isinstance(value, Decimal | float) and not math.isfinite(value):
        return path.lstrip("."), value
    for suffix, item in items:
        found = _non_finite(item, f"{path}{suffix}")
        if found is not None:
            return found
    return None


def _as_text(text: str | bytes) -> str:
    return text.decode() if isinstance(text, bytes) else text


def load_config(path: str | os.PathLike[str]) -> Config:
    file = Path(path)
    try:
        text = file.read_bytes()
    except OSError as exc:
        raise ConfigError(
            "", f"cannot read config file: {exc.strerror}", source=str(file)
        ) from None
    return parse_config(text, source=str(file))


def load_secrets(venue: VenueConfig, environ: dict[str, str] | None = None) -> Secrets:
    """Read credentials from the environment variables the config names, and register them for
    redaction. Missing variables give ``None`` (a paper or simulated venue needs none; see
    :func:`require_secrets`)."""
    env = os.environ if environ is None else environ
    key = env.get(venue.api_key_env) or None
    secret = env.get(venue.api_secret_env) or None
    for name, value in ((venue.api_key_env, key), (venue.api_secret_env, secret)):
        if value is not None and len(value) < 4:
            raise ConfigError(f"env:{name}", "value is too short to be a real credential")
        if value is not None:
            register_secret(value)
    return Secrets(api_key=key, api_secret=secret)


def require_secrets(venue: VenueConfig, environ: dict[str, str] | None = None) -> Secrets:
    """:func:`load_secrets` for a venue that needs keys: a variable unset (or empty) is a
    :class:`ConfigError` naming the variables (never their values)."""
    secrets = load_secrets(venue, environ)
    missing = [
        name
        for name, value in (
            (venue.api_key_env, secrets.api_key),
            (venue.api_secret_env, secrets.api_secret),
        )
        if value is None
    ]
    if missing:
        raise ConfigError(
            f"env:{missing[0]}",
            f"venue.kind = {venue.kind!r} needs its API key and secret in the environment "
            f"variables {venue.api_key_env} and {venue.api_secret_env} (named by "
            f"venue.api_key_env / venue.api_secret_env); not set: {', '.join(missing)}",
        )
    return secrets


def config_to_json(config: Config) -> str:
    """Canonical JSON of a config (secret-free by construction), stored in the journal."""
    return msgspec.json.encode(config, order="sorted").decode()


def config_from_json(text: str) -> Config:
    """A config as :func:`config_to_json` stored it. A journal written before ``bands.combine``
    existed ran abs_pp and rel together as the narrower band: read so."""
    data = msgspec.json.decode(text)
    bands = data.get("bands") if isinstance(data, dict) else None
    if (
        isinstance(bands, dict)
        and "combine" not in bands
        and bands.get("abs_pp") is not None
        and bands.get("rel") is not None
    ):
        bands["combine"] = "narrower"
    return msgspec.convert(data, type=Config)


_DECIMAL_SCHEMA: Final = {"type": "string", "format": "decimal"}
_DECIMAL_STRING: Final = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"


def json_schema() -> dict[str, Any]:
    """JSON Schema of the config file, for editors and validators.

    Exact decimals are written as TOML numbers (``drawdown_limit = 0.25``), so the schema states
    them as numbers (a quoted decimal such as ``"0.25"`` is accepted too, as the loader does), and
    every numeric key carries the bounds of its :class:`Range`.
    """
    schema: dict[str, Any] = _numbers_as_numbers(msgspec.json.schema(Config))
    for section in _sections():
        properties = schema["$defs"][section.__name__]["properties"]
        for name, bounds in section.RANGES.items():
            node = properties[name]
            (node.get("additionalProperties") or node).update(bounds.schema())
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Ballast configuration"
    return schema


def _sections() -> list[type[_Section]]:
    """Config, the struct type of each of its sections, and the tables within sections."""
    sections = [type(getattr(Config(), name)) for name in Config.__struct_fields__]
    tables: list[type[_Section]] = [AssetBandConfig, InstrumentSpecConfig, FeeRatesConfig]
    return [
        Config,
        *(s for s in sections if isinstance(s, type) and issubclass(s, _Section)),
        *tables,
    ]


def _numbers_as_numbers(node: Any) -> Any:
    """msgspec states a Decimal as a string of format "decimal"; TOML has numbers."""
    if isinstance(node, list):
        return [_numbers_as_numbers(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _numbers_as_numbers(value) for key, value in node.items()}
    if node.get("type") == "string" and node.get("format") == "decimal":
        del out["type"], out["format"]
        out["anyOf"] = [{"type": "number"}, {"type": "string", "pattern": _DECIMAL_STRING}]
        return _with_numeric_default(out)
    if _DECIMAL_SCHEMA in node.get("anyOf", []):
        return _with_numeric_default(out)
    return out


def _with_numeric_default(node: dict[str, Any]) -> dict[str, Any]:
    default = node.get("default")
    if isinstance(default, str):
        node["default"] = json_number(Decimal(default))
    return node
