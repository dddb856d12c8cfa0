"""The guard around strategy code: a failing strategy halts itself, never the engine.

:class:`GuardedStrategy` hands the strategy a context it cannot use to change engine state (frozen
structs; market data as read-only copies), checks what it returns, and turns an exception or an
invalid :class:`~ballast.engine.strategy.api.TargetSet` into a
:class:`~ballast.engine.kernel.errors.StrategyError`. From then on the strategy is halted: it is not
called again, and :meth:`GuardedStrategy.failure_event` builds the
:class:`~ballast.engine.kernel.events.StrategyFailed` event that the Rebalancer publishes once.
"""

from __future__ import annotations

import inspect
import logging
import os
import traceback
from collections.abc import Collection, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final, get_args

import msgspec

from ballast.engine.kernel.errors import StrategyError
from ballast.engine.kernel.events import StrategyFailed
from ballast.engine.kernel.redaction import redact
from ballast.engine.strategy.api import (
    MarketView,
    Preference,
    ResolvedTarget,
    Strategy,
    StrategyContext,
    TargetSet,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_WEIGHT: Final = Decimal(3)
"""Largest |weight| a strategy may ask for unless told otherwise: the default leverage cap."""

_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)
_PREFERENCES: Final = frozenset(get_args(Preference))


class GuardedStrategy:
    """Calls ``strategy.targets`` behind a guard.

    ``max_weight`` bounds every weight (pass ``risk.max_gross_leverage``); ``assets``, when given,
    is the set of assets the engine trades, and a target for any other asset is invalid.
    """

    def __init__(
        self,
        strategy: Strategy,
        name: str,
        *,
        max_weight: Decimal = DEFAULT_MAX_WEIGHT,
        assets: Collection[str] | None = None,
    ) -> None:
        self.strategy = strategy
        self.name = name
        self.max_weight = max_weight
        self.assets = frozenset(assets) if assets is not None else None
        self.halted = False
        self.error: StrategyError | None = None
        self._failed_last_call = False
        self.resolved: dict[str, ResolvedTarget] = {}
        """The resolved targets (:meth:`TargetSet.resolve`) of the last set :meth:`call` returned,
        as its check resolved them: a caller need not resolve it again."""

    def call(self, context: StrategyContext) -> TargetSet | None:
        """The strategy's targets (a detached copy), or None if it failed now or earlier."""
        self._failed_last_call = False
        if self.halted:
            return None
        try:
            result: Any = self.strategy.targets(freeze_context(context))
        except (Exception, SystemExit) as exc:
            self._halt(_raised_message(self.name, exc), exc)
            return None
        problem, resolved = _check_target_set(result, self.max_weight, self.assets)
        if problem is not None or resolved is None:
            _discard(result)
            self._halt(f"strategy {self.name!r} returned an invalid target set: {problem}", None)
            return None
        self.resolved = resolved  # of ``result``, so of its copy: no strategy code runs between
        return copy_target_set(result)

    def failure_event(self, ts: int, *, ts_init: int | None = None) -> StrategyFailed | None:
        """``StrategyFailed`` for the call that just halted the strategy; None before that call
        and after any later call, so the Rebalancer publishes it exactly once."""
        if not self._failed_last_call or self.error is None:
            return None
        return StrategyFailed(
            ts_event=ts,
            ts_init=ts if ts_init is None else ts_init,
            strategy=self.name,
            error=str(self.error),
        )

    def _halt(self, message: str, cause: BaseException | None) -> None:
        self.halted = True
        self._failed_last_call = True
        self.error = StrategyError(redact(message))
        self.error.__cause__ = cause
        log.error("%s; the strategy is halted", self.error)


def freeze_context(context: StrategyContext) -> StrategyContext:
    """The context with every mapping (market data) replaced by a read-only copy and every list by
    a tuple; everything else in it is a frozen struct already."""
    return msgspec.structs.replace(
        context, market=_read_only_market(context.market), **_read_only_values(context)
    )


def _read_only_market(market: MarketView) -> MarketView:
    return msgspec.structs.replace(market, **_read_only_values(market))


def _read_only_values(struct: msgspec.Struct) -> dict[str, Any]:
    copies: dict[str, Any] = {}
    for field in struct.__struct_fields__:
        value = getattr(struct, field)
        if type(value) is dict or isinstance(value, Mapping):
            copies[field] = MappingProxyType(dict(value))
        elif isinstance(value, list):
            copies[field] = tuple(value)
    return copies


def copy_target_set(targets: TargetSet) -> TargetSet:
    """A copy sharing no mutable dict with the strategy that made it."""
    return TargetSet(
        weights=dict(targets.weights),
        spot_weights=dict(targets.spot_weights),
        core_floors=dict(targets.core_floors),
        hedge_ratios=dict(targets.hedge_ratios),
        prefer=dict(targets.prefer),
        note=targets.note,
    )


def target_set_problem(
    result: object, max_weight: Decimal, assets: frozenset[str] | None = None
) -> str | None:
    """Why ``result`` is not a usable TargetSet, or None.

    Weights must be finite Decimals with |weight| ≤ ``max_weight``; spot weights, core floors and
    hedge ratios lie in [0, ``max_weight``]; spot weights add up to at most 1 (spot cannot exceed
    NAV); every resolved net target lies within ±``max_weight``; preferences are spot, perp or
    auto; every asset is a known one when ``assets`` is given.
    """
    return _check_target_set(result, max_weight, assets)[0]


def _check_target_set(
    result: object, max_weight: Decimal, assets: frozenset[str] | None
) -> tuple[str | None, dict[str, ResolvedTarget] | None]:
    """(:func:`target_set_problem`, the resolved targets when there is no problem)."""
    if not isinstance(result, TargetSet):
        return f"expected a TargetSet, got {type(result).__name__}", None
    bounds = {
        "weights": (-max_weight, max_weight),
        "spot_weights": (_ZERO, max_weight),
        "core_floors": (_ZERO, max_weight),
        "hedge_ratios": (_ZERO, max_weight),
    }
    for field, (low, high) in bounds.items():
        problem = _decimal_table_problem(field, getattr(result, field), low, high, assets)
        if problem is not None:
            return problem, None
    problem = _prefer_problem(result.prefer, assets)
    if problem is not None:
        return problem, None
    return _totals_problem(result, max_weight)


def _decimal_table_problem(
    field: str, table: object, low: Decimal, high: Decimal, assets: frozenset[str] | None
) -> str | None:
    if type(table) is not dict and not isinstance(table, Mapping):
        return f"{field} is a {type(table).__name__}, not a mapping of asset to Decimal"
    for asset, value in table.items():
        if type(asset) is not str or not asset or (assets is not None and asset not in assets):
            problem = _asset_problem(field, asset, assets)
            if problem is not None:
                return problem
        if not isinstance(value, Decimal):
            return f"{field}[{asset!r}] is {value!r} ({type(value).__name__}), not a Decimal"
        if not value.is_finite() or not low <= value <= high:
            return f"{field}[{asset!r}] = {value} is outside [{low}, {high}]"
    return None


def _asset_problem(field: str, asset: object, assets: frozenset[str] | None) -> str | None:
    if not isinstance(asset, str) or not asset:
        return f"{field} has a key {asset!r} that is not an asset name"
    if assets is not None and asset not in assets:
        return f"{field} names {asset!r}, which is not traded (known: {', '.join(sorted(assets))})"
    return None


def _prefer_problem(prefer: object, assets: frozenset[str] | None) -> str | None:
    if type(prefer) is not dict and not isinstance(prefer, Mapping):
        return f"prefer is a {type(prefer).__name__}, not a mapping of asset to preference"
    for asset, value in prefer.items():
        problem = _asset_problem("prefer", asset, assets)
        if problem is not None:
            return problem
        if value not in _PREFERENCES:
            return f"prefer[{asset!r}] is {value!r}, not one of {sorted(_PREFERENCES)}"
    return None


def _totals_problem(
    result: TargetSet, max_weight: Decimal
) -> tuple[str | None, dict[str, ResolvedTarget] | None]:
    note: object = result.note  # a strategy may have put anything there
    if not isinstance(note, str):
        return f"note is a {type(note).__name__}, not a str", None
    spot = sum(result.spot_weights.values(), _ZERO)
    if spot > _ONE:
        return f"spot weights add up to {spot}, more than 1 (spot cannot exceed NAV)", None
    resolved = result.resolve()
    for asset, target in resolved.items():
        if abs(target.net) > max_weight:
            return f"net target of {asset!r} = {target.net} is outside ±{max_weight}", None
    return None, resolved


def _raised_message(name: str, exc: BaseException) -> str:
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        where = f" (in {last.name}, {os.path.basename(last.filename)}:{last.lineno})"
    return f"strategy {name!r} raised {type(exc).__name__}: {exc}{where}"


def _discard(result: object) -> None:
    """Close a coroutine returned by mistake (``async def targets``) so it is not left pending."""
    if inspect.iscoroutine(result):
        result.close()
