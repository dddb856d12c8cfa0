"""Configuration: TOML validated into msgspec structs.

A bad file raises :class:`~engine.errors.ConfigError` naming the key path
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
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from engine.errors import ConfigError
from engine.redaction import register_secret

_ONE: Final = Decimal(1)
_DELEVERAGE_MARGIN: Final = Decimal("0.05")


class _Section(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of config sections: unknown keys are errors."""


def _positive(name: str, value: Decimal | float | int) -> None:
    if value <= 0:
        raise ValueError(f"{name}: must be > 0, got {value}")


def _fraction(name: str, value: Decimal) -> None:
    if not Decimal(0) <= value <= _ONE:
        raise ValueError(f"{name}: must be between 0 and 1, got {value}")


class VenueConfig(_Section, frozen=True):
    """Which venue adapter is injected and how it authenticates (env variable names only)."""

    kind: Literal["simulated", "binance"] = "simulated"
    quote: str = "USDT"
    api_key_env: str = "BALLAST_API_KEY"
    api_secret_env: str = "BALLAST_API_SECRET"
    rest_url: str | None = None
    ws_url: str | None = None


class InstrumentsConfig(_Section, frozen=True):
    spot: list[str] = msgspec.field(default_factory=lambda: ["BTC/USDT", "ETH/USDT"])
    perp: list[str] = msgspec.field(default_factory=lambda: ["BTC/USDT:USDT", "ETH/USDT:USDT"])

    def __post_init__(self) -> None:
        for symbol in self.spot:
            if "/" not in symbol or ":" in symbol:
                raise ValueError(f"spot: {symbol!r} is not a spot symbol like 'BTC/USDT'")
        for symbol in self.perp:
            if "/" not in symbol or ":" not in symbol:
                raise ValueError(f"perp: {symbol!r} is not a perp symbol like 'BTC/USDT:USDT'")


class StrategyConfig(_Section, frozen=True):
    """A built-in strategy name or ``module:Class``, with its parameters."""

    name: str = "threshold"
    params: dict[str, Any] = msgspec.field(default_factory=dict)


class BandsConfig(_Section, frozen=True):
    """Tolerance around each target: absolute (percentage points) and/or relative (fraction)."""

    abs_pp: Decimal | None = Decimal(5)
    rel: Decimal | None = None
    rebalance_to: Literal["target", "edge"] = "target"

    def __post_init__(self) -> None:
        if self.abs_pp is None and self.rel is None:
            raise ValueError("abs_pp: at least one of abs_pp or rel must be set")
        if self.abs_pp is not None:
            _positive("abs_pp", self.abs_pp)
        if self.rel is not None:
            _positive("rel", self.rel)


class RiskConfig(_Section, frozen=True):
    """The mandate. The regime may tighten these, never loosen them.

    Leverage has three named limits (see :mod:`engine.measures`): ``max_net_leverage`` (the
    mandate's cap on Σ |net exposure| / NAV), and two exchange-side ones, ``max_gross_leverage``
    ((Σ |spot| + Σ |perp notional|) / NAV) and ``max_margin_usage`` (initial margin / margin
    balance). Before the exchange would liquidate, the risk actor asks for a reducing trade
    (``DeleverageRequired``) when a perp's distance to liquidation falls below
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

    def __post_init__(self) -> None:
        _positive("max_gross_leverage", self.max_gross_leverage)
        _positive("max_net_leverage", self.max_net_leverage)
        _positive("max_margin_usage", self.max_margin_usage)
        _fraction("max_margin_usage", self.max_margin_usage)
        _fraction("deleverage_buffer", self.deleverage_buffer)
        deleverage = self.deleverage_liquidation_distance
        if deleverage is not None:
            _fraction("deleverage_liquidation_distance", deleverage)
            if deleverage < self.min_liquidation_distance:
                raise ValueError(
                    "deleverage_liquidation_distance: must be >= min_liquidation_distance "
                    f"({self.min_liquidation_distance}), got {deleverage}"
                )
        _positive("max_order_notional", self.max_order_notional)
        _positive("stale_after_s", self.stale_after_s)
        _positive("vol_half_life_h", self.vol_half_life_h)
        _fraction("drawdown_limit", self.drawdown_limit)
        _fraction("min_liquidation_distance", self.min_liquidation_distance)
        _fraction("max_price_deviation", self.max_price_deviation)
        _positive("calm_vol", self.calm_vol)
        if self.stressed_vol <= self.calm_vol:
            raise ValueError(f"stressed_vol: must be above calm_vol ({self.calm_vol})")
        for index, window in enumerate(self.calendar):
            start, sep, end = window.partition("/")
            if not sep or not start or not end:
                raise ValueError(f"calendar[{index}]: expected 'START/END', got {window!r}")
        if self.max_asset_weight <= 0:
            raise ValueError(f"max_asset_weight: must be > 0, got {self.max_asset_weight}")
        _positive("max_abs_funding_rate", self.max_abs_funding_rate)

    @property
    def deleverage_distance(self) -> Decimal:
        """The distance to liquidation below which the risk actor asks to deleverage and the
        pre-trade check lets no order go: ``deleverage_liquidation_distance`` if set, else
        ``min_liquidation_distance`` + 0.05, at most 1."""
        if self.deleverage_liquidation_distance is not None:
            return self.deleverage_liquidation_distance
        return min(self.min_liquidation_distance + _DELEVERAGE_MARGIN, _ONE)


class ExecutionConfig(_Section, frozen=True):
    mode: Literal["spot", "overlay", "auto"] = "spot"
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

    def __post_init__(self) -> None:
        _positive("check_interval_s", self.check_interval_s)
        if not Decimal(0) <= self.margin_buffer < _ONE:
            raise ValueError(f"margin_buffer: must be >= 0 and < 1, got {self.margin_buffer}")
        if self.perp_leverage < _ONE:
            raise ValueError(f"perp_leverage: must be >= 1, got {self.perp_leverage}")
        _positive("submit_attempts", self.submit_attempts)
        if self.cooldown_s < 0:
            raise ValueError(f"cooldown_s: must be >= 0, got {self.cooldown_s}")
        if self.submit_retry_backoff_s < 0:
            raise ValueError(
                f"submit_retry_backoff_s: must be >= 0, got {self.submit_retry_backoff_s}"
            )


class JournalConfig(_Section, frozen=True):
    path: str = "var/journal.db"
    batch_size: int = 4096
    flush_interval_ms: int = 50

    def __post_init__(self) -> None:
        _positive("batch_size", self.batch_size)
        _positive("flush_interval_ms", self.flush_interval_ms)


class MetricsConfig(_Section, frozen=True):
    enabled: bool = True
    address: str = "127.0.0.1:9464"

    def __post_init__(self) -> None:
        host, sep, port = self.address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"address: expected HOST:PORT, got {self.address!r}")


class PaperConfig(_Section, frozen=True):
    """The simulated account and market of backtests, paper runs and ``ballast plan`` on a
    simulated venue: starting balances, the data folder, and an optional [start, end) range
    (ISO 8601 dates, UTC)."""

    balances: dict[str, Decimal] = msgspec.field(default_factory=lambda: {"USDT": Decimal(100_000)})
    data_dir: str = "data/market"
    start: str | None = None
    end: str | None = None
    slippage_bps: Decimal = Decimal(2)
    latency_ms: int = 0

    def __post_init__(self) -> None:
        for asset, amount in self.balances.items():
            if amount < 0:
                raise ValueError(f"balances.{asset}: must be >= 0, got {amount}")
        if self.slippage_bps < 0:
            raise ValueError(f"slippage_bps: must be >= 0, got {self.slippage_bps}")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms: must be >= 0, got {self.latency_ms}")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None:
                try:
                    datetime.fromisoformat(value)
                except ValueError:
                    raise ValueError(f"{name}: not an ISO 8601 date: {value!r}") from None


class EngineConfig(_Section, frozen=True):
    """Process-level settings. ``actors`` adds user actors as ``module:Class``."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    actors: list[str] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
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

    def __post_init__(self) -> None:
        for asset, weight in self.targets.items():
            if weight < 0 or weight > self.risk.max_asset_weight:
                raise ValueError(
                    f"targets.{asset}: weight must be between 0 and "
                    f"risk.max_asset_weight ({self.risk.max_asset_weight}), got {weight}"
                )
        total = sum(self.targets.values(), Decimal(0))
        if total > _ONE:
            raise ValueError(f"targets: weights add up to {total}, more than 1")


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
                return path.replace("[...]", f".{key}", 1)
    return path


def _config_error(exc: msgspec.ValidationError, source: str, text_in: str | bytes) -> ConfigError:
    text = str(exc)
    match = _PATH.match(text)
    key, problem = ("", text) if match is None else (_key_path(match["path"]), match["problem"])
    if "[...]" in key:
        key = _find_dict_key(tomllib.loads(_as_text(text_in)), key)
    field = re.match(r"^(?P<field>[^\s:`']+): (?P<rest>.*)$", problem, re.DOTALL)
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
        raise ConfigError("", f"invalid TOML: {exc}", source=source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"invalid TOML: not UTF-8 text ({exc})", source=source) from None
    bad = _non_finite(config)
    if bad is not None:
        raise ConfigError(bad[0], f"must be a finite number, got {bad[1]}", source=source)
    return config


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
    redaction. Missing variables give ``None`` (a paper or simulated venue needs none)."""
    env = os.environ if environ is None else environ
    key = env.get(venue.api_key_env) or None
    secret = env.get(venue.api_secret_env) or None
    for name, value in ((venue.api_key_env, key), (venue.api_secret_env, secret)):
        if value is not None and len(value) < 4:
            raise ConfigError(f"env:{name}", "value is too short to be a real credential")
        if value is not None:
            register_secret(value)
    return Secrets(api_key=key, api_secret=secret)


def config_to_json(config: Config) -> str:
    """Canonical JSON of a config (secret-free by construction), stored in the journal."""
    return msgspec.json.encode(config, order="sorted").decode()


def config_from_json(text: str) -> Config:
    return msgspec.json.decode(text, type=Config)


def json_schema() -> dict[str, Any]:
    """JSON Schema of the config file, for editors."""
    schema: dict[str, Any] = msgspec.json.schema(Config)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Ballast configuration"
    return schema
