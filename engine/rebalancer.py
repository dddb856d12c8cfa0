"""The Rebalancer actor: on each portfolio snapshot, asks the strategy for targets, checks every
asset against its band under the current risk budget, and publishes one RebalanceDecided per
decision, carrying its inputs (weights, targets, bands, regime), its reasoning (instrument choices,
costs, floors, skips) and the exact intents. The risk actor approves, cuts or vetoes each intent.

It also reacts without any band breach: when the budget turns off overlay longs (stressed regime)
it closes them, and when the kill switch fires it flattens every perp with reduce-only orders.
A per-asset cooldown (event time) prevents churn while orders fill and prices settle.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from engine.actor import Actor
from engine.bus import Bus
from engine.clock import NS_PER_SECOND, Clock
from engine.config import Config
from engine.events import (
    InstrumentsLoaded,
    KillSwitchReset,
    KillSwitchTriggered,
    MarkPriceUpdated,
    OrderVetoed,
    PortfolioSnapshot,
    RebalanceDecided,
    RiskBudgetChanged,
)
from engine.instruments import Instrument, base_of
from engine.planner import (
    BudgetView,
    Mode,
    Plan,
    PlanInputs,
    plan_close_longs,
    plan_flatten,
    plan_rebalance,
)
from strategies.api import MarketView, Strategy, StrategyContext
from strategies.guard import GuardedStrategy
from strategies.registry import load_strategy

_HUNDRED = Decimal(100)


class Rebalancer(Actor):
    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        *,
        strategy: Strategy,
        strategy_name: str,
        mode: Mode = "spot",
        band_abs: Decimal | None = Decimal("0.05"),
        band_rel: Decimal | None = None,
        rebalance_to: Literal["target", "edge"] = "target",
        cooldown_s: float = 3600.0,
        retry_vetoed_s: float = 60.0,
        quote: str = "USDT",
        max_weight: Decimal = Decimal(3),
        assets: frozenset[str] | None = None,
        report_holds: bool = False,
    ) -> None:
        super().__init__(bus, clock)
        self.report_holds = report_holds  # also publish decisions without orders (ballast plan)
        self.strategy = GuardedStrategy(
            strategy, strategy_name, max_weight=max_weight, assets=assets
        )
        self.mode: Mode = mode
        self.rebalance_to: Literal["target", "edge"] = rebalance_to
        self.cooldown_ns = int(cooldown_s * NS_PER_SECOND)
        self.retry_vetoed_ns = int(retry_vetoed_s * NS_PER_SECOND)
        self.quote = quote
        self.budget = BudgetView(band_abs=band_abs, band_rel=band_rel)
        self.budget_event: RiskBudgetChanged | None = None
        self.instruments: dict[str, Instrument] = {}
        self.funding: dict[str, Decimal] = {}
        self.snapshot: PortfolioSnapshot | None = None
        self.kill_switch = False
        self.decisions = 0
        self._cooling: dict[str, int] = {}
        self._failure_published = False
        self.subscribe(InstrumentsLoaded, self.on_instruments)
        self.subscribe(MarkPriceUpdated, self.on_mark)
        self.subscribe(PortfolioSnapshot, self.on_snapshot)
        self.subscribe(RiskBudgetChanged, self.on_budget)
        self.subscribe(KillSwitchTriggered, self.on_kill_switch)
        self.subscribe(KillSwitchReset, self.on_kill_switch_reset)
        self.subscribe(OrderVetoed, self.on_vetoed)

    @classmethod
    def from_config(cls, config: Config, bus: Bus, clock: Clock) -> Rebalancer:
        params: dict[str, Any] = dict(config.strategy.params)
        if not params and config.targets:
            params["weights"] = dict(config.targets)
        strategy = load_strategy(config.strategy.name, params)
        bands = config.bands
        return cls(
            bus,
            clock,
            strategy=strategy,
            strategy_name=config.strategy.name,
            mode=config.execution.mode,
            band_abs=None if bands.abs_pp is None else bands.abs_pp / _HUNDRED,
            band_rel=bands.rel,
            rebalance_to=bands.rebalance_to,
            cooldown_s=config.execution.cooldown_s,
            retry_vetoed_s=config.execution.check_interval_s,
            quote=config.venue.quote,
            max_weight=config.risk.max_gross_leverage,
            assets=frozenset(
                base_of(s) for s in [*config.instruments.spot, *config.instruments.perp]
            ),
        )

    # ------------------------------------------------------------------ inputs

    def on_instruments(self, event: InstrumentsLoaded) -> None:
        self.instruments.update({i.symbol: i for i in event.instruments})

    def on_mark(self, event: MarkPriceUpdated) -> None:
        self.funding[base_of(event.symbol)] = event.funding_rate

    def on_budget(self, event: RiskBudgetChanged) -> None:
        self.budget_event = event
        self.budget = BudgetView(
            band_abs=event.band_abs,
            band_rel=event.band_rel,
            allow_overlay_longs=event.allow_overlay_longs,
            regime=event.regime,
        )
        snapshot = self.snapshot
        if event.allow_overlay_longs or snapshot is None or self.kill_switch:
            return
        if any(a.perp_qty > 0 for a in snapshot.assets):
            why = f"budget contracted ({event.regime}): close overlay longs"
            plan = plan_close_longs(self._inputs(snapshot, {}), self._next_id(), why)
            self._publish(plan, "budget", why, event.ts_event)

    def on_kill_switch(self, event: KillSwitchTriggered) -> None:
        self.kill_switch = True
        snapshot = self.snapshot
        if snapshot is None:
            return
        why = f"kill switch ({event.reason}): flatten the overlay"
        plan = plan_flatten(self._inputs(snapshot, {}), self._next_id(), why)
        self._publish(plan, "kill_switch", why, event.ts_event)

    def on_kill_switch_reset(self, event: KillSwitchReset) -> None:
        self.kill_switch = False

    def on_vetoed(self, event: OrderVetoed) -> None:
        """A vetoed trade did not happen: retry it after ``retry_vetoed_s`` rather than after the
        full cooldown (a stale mark is often fixed a second later; a persistent limit is not
        retried on every snapshot)."""
        asset = base_of(event.symbol)
        retry = event.ts_event + self.retry_vetoed_ns
        if self._cooling.get(asset, 0) > retry:
            self._cooling[asset] = retry

    def on_snapshot(self, snapshot: PortfolioSnapshot) -> None:
        self.snapshot = snapshot
        if self.kill_switch or self.strategy.halted or not self.instruments:
            return
        targets = self.strategy.call(self._context(snapshot))
        if targets is None:
            self._publish_strategy_failure()
            return
        plan = plan_rebalance(self._inputs(snapshot, targets.resolve()), self._peek_id())
        self._drop_cooling(plan, snapshot.ts_event)
        if plan.intents or self.report_holds:
            self.decisions += 1
            self._publish(plan, "band", targets.note, snapshot.ts_event)

    # ------------------------------------------------------------------ helpers

    def _context(self, snapshot: PortfolioSnapshot) -> StrategyContext:
        spot = {a.asset: a.spot_price for a in snapshot.assets}
        marks = {a.asset: a.perp_price for a in snapshot.assets if a.perp_price > 0}
        market = MarketView(spot_prices=spot, perp_marks=marks, funding_rates=dict(self.funding))
        return StrategyContext(
            ts_ns=snapshot.ts_event,
            snapshot=snapshot,
            market=market,
            budget=self.budget_event,
            kill_switch=self.kill_switch,
        )

    def _inputs(self, snapshot: PortfolioSnapshot, targets: Mapping[str, Any]) -> PlanInputs:
        return PlanInputs(
            snapshot=snapshot,
            targets=targets,
            budget=self.budget,
            instruments=self.instruments,
            mode=self.mode,
            rebalance_to=self.rebalance_to,
            quote=self.quote,
            funding_rates=dict(self.funding),
        )

    def _peek_id(self) -> str:
        return self._decision_id(self.decisions + 1)

    def _next_id(self) -> str:
        self.decisions += 1
        return self._decision_id(self.decisions)

    def _decision_id(self, n: int) -> str:
        """Unique across sessions (client order ids derive from it) and reproducible in replay:
        the session id is recorded in SessionStarted."""
        session = self.bus.session_id[:8]
        return f"{session}-d{n}" if session else f"d{n}"

    def _drop_cooling(self, plan: Plan, now: int) -> None:
        cooling = {a for a, until in self._cooling.items() if until > now}
        if not cooling:
            return
        kept = [i for i in plan.intents if base_of(i.symbol) not in cooling]
        if len(kept) < len(plan.intents):
            plan.notes.append(f"cooldown: no new orders for {', '.join(sorted(cooling))} yet")
        plan.intents[:] = kept

    def _publish(self, plan: Plan, trigger: str, note: str, ts_event: int) -> None:
        """Publish the decision. Cooldowns run on event time, so a replay decides the same."""
        if not plan.intents and not self.report_holds:
            return
        for intent in plan.intents:
            self._cooling[base_of(intent.symbol)] = ts_event + self.cooldown_ns
        reasoning = "; ".join([*(n for n in [note] if n), *plan.notes])
        self.publish(
            RebalanceDecided(
                ts_event=ts_event,
                ts_init=self.now(),
                decision_id=self._decision_id(self.decisions),
                trigger=trigger,
                mode=self.mode,
                regime=self.budget.regime,
                reasoning=reasoning,
                assets=tuple(plan.assets),
                intents=tuple(plan.intents),
            )
        )

    def _publish_strategy_failure(self) -> None:
        if self._failure_published:
            return
        self._failure_published = True
        event = self.strategy.failure_event(self.now())
        if event is not None:
            self.publish(event)
