"""Run by tests/test_strategy_plugins.py in a fresh interpreter (not part of the package).

Loads the strategies named on the command line by entry-point name through
``ballast.engine.strategy.registry.load_strategy``, calls each through a ``GuardedStrategy`` three
times, and prints what happened as JSON on stdout.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from typing import Any

from ballast.engine.kernel.events import PortfolioSnapshot
from ballast.engine.strategy.api import MarketView, StrategyContext
from ballast.engine.strategy.guard import GuardedStrategy
from ballast.engine.strategy.registry import known_strategies, load_strategy

_ZERO = Decimal(0)
_NAV = Decimal(100_000)


def context(ts_ns: int) -> StrategyContext:
    snapshot = PortfolioSnapshot(
        ts_event=ts_ns,
        ts_init=ts_ns,
        trigger="price",
        nav=_NAV,
        cash=_NAV,
        gross_leverage=_ZERO,
        net_leverage=_ZERO,
        margin_used=_ZERO,
        realized_pnl=_ZERO,
        unrealized_pnl=_ZERO,
        price_pnl=_ZERO,
        funding_pnl=_ZERO,
        fees_paid=_ZERO,
        transfers=_ZERO,
        peak_nav=_NAV,
        drawdown=_ZERO,
        assets=(),
    )
    market = MarketView(spot_prices={"BTC": Decimal(50_000)}, perp_marks={}, funding_rates={})
    return StrategyContext(
        ts_ns=ts_ns, snapshot=snapshot, market=market, budget=None, kill_switch=False
    )


def run(names: list[str]) -> dict[str, Any]:
    guards = [GuardedStrategy(load_strategy(name, {}), name) for name in names]
    calls: list[dict[str, Any]] = []
    for ts_ns in (1, 2, 3):
        for guard in guards:
            targets = guard.call(context(ts_ns))
            event = guard.failure_event(ts_ns)
            calls.append(
                {
                    "ts": ts_ns,
                    "name": guard.name,
                    "weights": None
                    if targets is None
                    else {a: str(w) for a, w in targets.weights.items()},
                    "failure_event": None if event is None else [event.strategy, event.error],
                }
            )
    errors = {
        g.name: None if g.error is None else [type(g.error).__name__, str(g.error)] for g in guards
    }
    return {"known": known_strategies(), "calls": calls, "errors": errors}


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:])))
