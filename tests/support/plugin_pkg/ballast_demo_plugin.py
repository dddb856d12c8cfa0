"""Demo strategies of an external package, registered under the ``ballast.strategies`` group."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from ballast.engine.strategy.api import Strategy, StrategyContext, TargetSet


class SteadyStrategy(Strategy):
    """Always half the portfolio in BTC."""

    name: ClassVar[str] = "demo_steady"

    def targets(self, context: StrategyContext) -> TargetSet:
        return TargetSet(weights={"BTC": Decimal("0.5")}, note=f"steady at {context.ts_ns}")


class ExplodingStrategy(Strategy):
    """Raises on every call, like a plug-in with a bug."""

    name: ClassVar[str] = "demo_exploding"

    def targets(self, context: StrategyContext) -> TargetSet:
        raise RuntimeError(f"demo plug-in blew up at {context.ts_ns}")
