"""The public strategy API: what a strategy sees and what it returns.

A strategy is a class with a ``targets(context) -> TargetSet`` method. It gets a read-only
context (frozen snapshot, copies of market data) and returns target weights, optional explicit
spot weights, core floors, hedge ratios and instrument preferences. It never sees or touches live
engine state, and it is called through a guard: if it raises, it is halted with a clear
``StrategyFailed`` event and the engine goes on.

Weights are fractions of NAV. For each asset the rebalancer resolves:

- ``spot`` target = ``spot_weights[a]`` if given, else (only when a hedge ratio is set)
  ``weights[a]``;
- ``net`` target = ``weights[a] − hedge_ratios[a] × spot`` (hedge ratio 1 = the spot book fully
  hedged with a perp short of the same value);
- the perp overlay makes up ``net − spot`` when a spot target is set; otherwise the execution mode
  (spot / overlay / auto, or ``prefer[a]``) chooses the instrument for each trade;
- spot is never sold below ``core_floors[a]``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar, Literal, TypeVar

import msgspec

from ballast.engine.kernel.clock import NS_PER_HOUR, NS_PER_YEAR
from ballast.engine.kernel.errors import ConfigError
from ballast.engine.kernel.events import PortfolioSnapshot, RiskBudgetChanged

Preference = Literal["spot", "perp", "auto"]
_ZERO = Decimal(0)
_ONE = Decimal(1)
_HOURS_PER_YEAR = Decimal(NS_PER_YEAR // NS_PER_HOUR)


class MarketView(msgspec.Struct, frozen=True, kw_only=True):
    """Latest market data by asset (copies). Funding rates are per funding interval."""

    spot_prices: Mapping[str, Decimal]
    perp_marks: Mapping[str, Decimal]
    funding_rates: Mapping[str, Decimal]
    funding_interval_h: int = 8
    volatility: Mapping[str, Decimal] = msgspec.field(default_factory=dict)

    def annualised_funding(self, asset: str) -> Decimal:
        rate = self.funding_rates.get(asset, _ZERO)
        return rate * _HOURS_PER_YEAR / Decimal(self.funding_interval_h)


class StrategyContext(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a strategy may look at, as immutable copies."""

    ts_ns: int
    snapshot: PortfolioSnapshot
    market: MarketView
    budget: RiskBudgetChanged | None
    kill_switch: bool

    @property
    def regime(self) -> str:
        return self.budget.regime if self.budget is not None else "normal"

    def weight(self, asset: str) -> Decimal:
        for state in self.snapshot.assets:
            if state.asset == asset:
                return state.weight
        return _ZERO

    def spot_weight(self, asset: str) -> Decimal:
        for state in self.snapshot.assets:
            if state.asset == asset:
                return state.spot_weight
        return _ZERO


class ResolvedTarget(msgspec.Struct, frozen=True, kw_only=True):
    asset: str
    net: Decimal
    spot: Decimal | None
    core_floor: Decimal
    prefer: Preference


class TargetSet(msgspec.Struct, frozen=True, kw_only=True):
    """What a strategy wants. See the module docstring for how the fields combine."""

    weights: dict[str, Decimal]
    spot_weights: dict[str, Decimal] = msgspec.field(default_factory=dict)
    core_floors: dict[str, Decimal] = msgspec.field(default_factory=dict)
    hedge_ratios: dict[str, Decimal] = msgspec.field(default_factory=dict)
    prefer: dict[str, Preference] = msgspec.field(default_factory=dict)
    note: str = ""

    def resolve(self) -> dict[str, ResolvedTarget]:
        out: dict[str, ResolvedTarget] = {}
        for asset in sorted(set(self.weights) | set(self.spot_weights)):
            weight = self.weights.get(asset, self.spot_weights.get(asset, _ZERO))
            hedge = self.hedge_ratios.get(asset, _ZERO)
            spot = self.spot_weights.get(asset)
            if spot is None and hedge != 0:
                spot = weight
            net = weight - hedge * (spot if spot is not None else weight)
            out[asset] = ResolvedTarget(
                asset=asset,
                net=net,
                spot=spot,
                core_floor=self.core_floors.get(asset, _ZERO),
                prefer=self.prefer.get(asset, "auto"),
            )
        return out


class Strategy(ABC):
    """Base class of strategies. ``params`` come from ``[strategy.params]`` in the config."""

    name: ClassVar[str] = "strategy"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params: Mapping[str, Any] = dict(params or {})

    @abstractmethod
    def targets(self, context: StrategyContext) -> TargetSet:
        """Target weights for the current context."""


# ------------------------------------------------------------------------------ parameters


class StrategyParams(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of a strategy's ``[strategy.params]`` struct: unknown keys are errors.

    A subclass's ``__post_init__`` may raise ``ValueError("field: problem")`` to name the bad key.
    """


ParamsT = TypeVar("ParamsT", bound=StrategyParams)


def check_fraction(
    field: str, value: Decimal, *, low: Decimal = _ZERO, high: Decimal = _ONE
) -> None:
    """For ``__post_init__``: raise ``ValueError("field: …")`` unless ``low <= value <= high``."""
    if not value.is_finite() or not low <= value <= high:
        raise ValueError(f"{field}: must be between {low} and {high}, got {value}")


def check_weights(field: str, weights: Mapping[str, Decimal]) -> None:
    """For ``__post_init__``: every weight in [0, 1] and their sum at most 1 (the rest is cash)."""
    for asset, weight in weights.items():
        check_fraction(f"{field}.{asset}", weight)
    total = sum(weights.values(), _ZERO)
    if total > _ONE:
        raise ValueError(f"{field}: weights add up to {total}, more than 1")


_AT_PATH = re.compile(r"^(?P<problem>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`$")
_NAMED = re.compile(r"^(?P<field>[\w.]+): (?P<problem>.*)$", re.DOTALL)


def parse_params(params_type: type[ParamsT], params: Mapping[str, Any] | None) -> ParamsT:
    """Validate ``[strategy.params]`` into ``params_type``.

    A bad value raises :class:`~ballast.engine.kernel.errors.ConfigError` whose key is
    ``strategy.params.<key>`` (``strategy.params.weights.BTC`` for an entry of a table).
    """
    data = dict(params or {})
    try:
        return msgspec.convert(data, type=params_type)
    except msgspec.ValidationError as exc:
        key, problem = _params_error(str(exc), data, params_type)
        raise ConfigError("strategy.params" + (f".{key}" if key else ""), problem) from None


def _params_error(text: str, data: dict[str, Any], params_type: type[Any]) -> tuple[str, str]:
    match = _AT_PATH.match(text)
    problem = match["problem"] if match else text
    path = re.sub(r"\['([^']*)'\]", r".\1", (match["path"] or "") if match else "").lstrip(".")
    if (unknown := _UNKNOWN.match(problem)) is not None:
        name = unknown["name"]
        return (f"{path}.{name}" if path else name), "unknown key (check the spelling)"
    if (named := _NAMED.match(problem)) is not None and not path:
        return named["field"], named["problem"]
    if path.endswith("[...]"):
        path = _table_entry(path.removesuffix("[...]"), data, params_type)
    return path, problem


def _table_entry(field: str, data: dict[str, Any], params_type: type[Any]) -> str:
    """msgspec reports a bad table value as ``field[...]``: find which entry by trying each."""
    table = data.get(field)
    if not isinstance(table, Mapping):
        return field
    for key, value in table.items():
        try:
            msgspec.convert({field: {key: value}}, type=params_type)
        except msgspec.ValidationError as exc:
            if f"$.{field}[...]" in str(exc):
                return f"{field}.{key}"
    return field
