"""The ``threshold`` preset: plain static target weights.

The idea: hold fixed net-exposure weights and let the rebalancer bring the portfolio back to them
whenever a weight leaves its band. The instrument used for each trade is the execution mode's
choice (spot, overlay or auto); the strategy adds no overlay of its own.

Params (``[strategy.params]``), all optional:

- ``weights`` (asset → net weight in [0, 1], summing to at most 1; the rest is stablecoin cash).
  Default: none. When ``[strategy.params]`` is empty the Rebalancer passes the config's
  ``[targets]`` here as ``weights``, so ``[targets] BTC = 0.4, ETH = 0.2`` is the usual way to set
  them. With no weights at all the target set is empty and nothing is traded.
- ``core_floors`` (asset → spot weight never sold below). Default: none.
- ``prefer`` (asset → "spot", "perp" or "auto"): instrument preference per asset. Default: auto.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

import msgspec

from ballast.engine.strategy.api import (
    Preference,
    Strategy,
    StrategyContext,
    StrategyParams,
    TargetSet,
    check_weights,
    parse_params,
)


class ThresholdParams(StrategyParams, frozen=True):
    weights: dict[str, Decimal] = msgspec.field(default_factory=dict)
    core_floors: dict[str, Decimal] = msgspec.field(default_factory=dict)
    prefer: dict[str, Preference] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        check_weights("weights", self.weights)
        check_weights("core_floors", self.core_floors)


class Threshold(Strategy):
    """Static target weights from params (or the config's ``[targets]``)."""

    name: ClassVar[str] = "threshold"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self.settings = parse_params(ThresholdParams, params)

    def targets(self, context: StrategyContext) -> TargetSet:
        return TargetSet(
            weights=dict(self.settings.weights),
            core_floors=dict(self.settings.core_floors),
            prefer=dict(self.settings.prefer),
            note="static target weights",
        )
