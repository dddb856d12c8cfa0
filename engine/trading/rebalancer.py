"""The Rebalancer actor: on each portfolio snapshot, asks the strategy for targets, checks every
asset against its band under the current risk budget, and publishes one RebalanceDecided per
decision, carrying its inputs (weights, targets, bands, regime), its reasoning (instrument choices,
costs, floors, skips) and the exact intents. The risk actor approves, cuts or vetoes each intent.

An asset with orders still in flight (live in its
:class:`~ballast.engine.trading.order_tracker.OrderTracker`: planned, not yet vetoed, rejected,
canceled or completely filled, where "completely" means the quantity the risk actor approved and
the router sent, so a cut order completes on its fill) is not planned again: planning on a
portfolio that has not seen its own fills yet would stack orders. An intent that was never sent
(no ``SubmitOrder`` for it: the risk actor or the router dropped it without a word) is abandoned
after ``in_flight_timeout_s``; one
whose order was sent never expires by time, since planning the asset again while that order may
still be live at the venue could double it: it waits for a fill, a cancel, a reject or the router's
status report.

Plans are sized within the account (free cash, available margin at the venue's leverage, learnt
from its position reports, less ``margin_buffer``). An order the venue refuses for insufficient
margin or balance frees its asset for the next check, re-planned on fresh figures; the very same
order is never sent again.

When it looks (``[rebalance] trigger``): at every snapshot (``"threshold"``), or only at the first
snapshot of every period of ``every_days`` counted from the first one: ``"calendar"`` then trades
every asset back to target whatever its drift, ``"hybrid"`` checks the bands there. The strategy
is asked for targets at every snapshot all the same. What it trades (``scope``): only the assets
out of band, or every asset when any is out (see
:func:`~ballast.engine.trading.planner.plan_rebalance`).

It also reacts without any band breach: when the budget turns off overlay longs (stressed regime)
it closes them, and when the kill switch fires it flattens every perp with reduce-only orders.
A per-asset cooldown (event time) prevents churn while orders fill and prices settle.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from ballast.engine.kernel.actor import Actor
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_DAY, NS_PER_SECOND, Clock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import Config
from ballast.engine.kernel.events import (
    DeleverageRequired,
    InstrumentsLoaded,
    IntentApproved,
    KillSwitchReset,
    KillSwitchTriggered,
    MarkPriceUpdated,
    Message,
    Mode,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatusReported,
    OrderSubmitted,
    OrderVetoed,
    PortfolioSnapshot,
    PositionUpdated,
    RebalanceDecided,
    RebalanceTrigger,
    RiskBudgetChanged,
)
from ballast.engine.kernel.instruments import Instrument, base_of
from ballast.engine.strategy.api import MarketView, Strategy, StrategyContext
from ballast.engine.strategy.guard import GuardedStrategy
from ballast.engine.strategy.registry import load_strategy, strategy_params
from ballast.engine.trading.bands import BandRules, BandSpec
from ballast.engine.trading.order_tracker import OrderTracker
from ballast.engine.trading.planner import (
    BudgetView,
    Plan,
    PlanInputs,
    plan_close_longs,
    plan_deleverage,
    plan_flatten,
    plan_rebalance,
    plan_reduce,
)

Trigger = Literal["threshold", "calendar", "hybrid"]
Scope = Literal["breached", "all"]


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
        margin_buffer: Decimal = Decimal("0.05"),
        perp_leverage: Decimal = Decimal(10),
        band_rules: BandRules | None = None,
        trigger: Trigger = "threshold",
        scope: Scope = "breached",
        every_ns: int | None = None,
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
        self.band_rules = band_rules or BandRules()  # how widths combine, per-asset rules
        self.budget = BudgetView(
            band_abs=band_abs,
            band_rel=band_rel,
            combine=self.band_rules.combine,
            asset_bands=self.band_rules.for_regime("normal"),
        )
        self.trigger: Trigger = trigger
        self.scope: Scope = scope
        if trigger != "threshold" and (every_ns is None or every_ns <= 0):
            raise ValueError(f"every_ns: trigger {trigger!r} needs a period, got {every_ns}")
        self.every_ns = every_ns or 0
        self._next_date_ns: int | None = None  # the next calendar date (None: the first snapshot)
        self.budget_event: RiskBudgetChanged | None = None
        self.instruments: dict[str, Instrument] = {}
        self.funding: dict[str, Decimal] = {}
        self.snapshot: PortfolioSnapshot | None = None
        self.kill_switch = False
        self.decisions = 0
        self._cooling: dict[str, int] = {}
        self.orders = OrderTracker()  # its decisions' orders, from planned to done
        self.in_flight_timeout_ns = 300 * NS_PER_SECOND
        self._failure_published = False
        self.margin_buffer = margin_buffer
        self.default_leverage = perp_leverage
        self.leverage: dict[str, Decimal] = {}  # asset → leverage learnt from position reports
        self._resolved: Mapping[str, Any] = {}  # the strategy's last resolved targets
        self._refused: dict[str, tuple[str, str, Decimal]] = {}  # asset → order refused for funds
        self.subscribe(InstrumentsLoaded, self.on_instruments)
        self.subscribe(PositionUpdated, self.on_position)
        self.subscribe(MarkPriceUpdated, self.on_mark)
        self.subscribe(PortfolioSnapshot, self.on_snapshot)
        self.subscribe(RiskBudgetChanged, self.on_budget)
        self.subscribe(KillSwitchTriggered, self.on_kill_switch)
        self.subscribe(KillSwitchReset, self.on_kill_switch_reset)
        self.subscribe(DeleverageRequired, self.on_deleverage_required)
        self.subscribe(OrderVetoed, self.on_vetoed)
        self.subscribe(IntentApproved, self.on_order_message)
        self.subscribe(SubmitOrder, self.on_order_message)
        self.subscribe(OrderSubmitted, self.on_order_message)
        self.subscribe(OrderAccepted, self.on_order_message)
        self.subscribe(OrderFilled, self.on_order_message)
        self.subscribe(OrderCanceled, self.on_order_done)
        self.subscribe(OrderRejected, self.on_order_done)
        self.subscribe(OrderStatusReported, self.on_order_message)

    @classmethod
    def from_config(cls, config: Config, bus: Bus, clock: Clock) -> Rebalancer:
        strategy = load_strategy(config.strategy.name, strategy_params(config))
        bands = config.bands
        default = BandSpec.of(bands.band())
        rebalance = config.rebalance
        every = rebalance.every_days
        return cls(
            bus,
            clock,
            strategy=strategy,
            strategy_name=config.strategy.name,
            mode=config.execution.mode,
            band_abs=default.band_abs,
            band_rel=default.band_rel,
            band_rules=BandRules.of(config),
            rebalance_to=bands.rebalance_to,
            cooldown_s=config.execution.cooldown_s,
            retry_vetoed_s=config.execution.check_interval_s,
            quote=config.venue.quote,
            max_weight=config.risk.max_gross_leverage,
            assets=frozenset(
                base_of(s) for s in [*config.instruments.spot, *config.instruments.perp]
            ),
            margin_buffer=config.execution.margin_buffer,
            perp_leverage=config.execution.perp_leverage,
            trigger=rebalance.trigger,
            scope=rebalance.scope,
            every_ns=None if every is None else int(every * NS_PER_DAY),
        )

    # ------------------------------------------------------------------ inputs

    def on_instruments(self, event: InstrumentsLoaded) -> None:
        self.instruments.update({i.symbol: i for i in event.instruments})

    def on_position(self, event: PositionUpdated) -> None:
        """The venue's leverage for the symbol, from the margin it reports for a position
        (initial margin = |qty| × mark / leverage)."""
        if event.qty != 0 and event.margin > 0 and event.mark_price > 0:
            self.leverage[base_of(event.symbol)] = abs(event.qty) * event.mark_price / event.margin

    def on_mark(self, event: MarkPriceUpdated) -> None:
        self.funding[base_of(event.symbol)] = event.funding_rate

    def on_budget(self, event: RiskBudgetChanged) -> None:
        self.budget_event = event
        self.budget = BudgetView(
            band_abs=event.band_abs,
            band_rel=event.band_rel,
            allow_overlay_longs=event.allow_overlay_longs,
            regime=event.regime,
            max_gross_leverage=event.max_gross_leverage,
            combine=self.band_rules.combine,
            asset_bands=self.band_rules.for_regime(event.regime),
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

    def deleverage(self, target_leverage: Decimal, why: str, ts_event: int) -> None:
        """Bring the mandate's leverage (Σ |net exposure| / NAV) back to ``target_leverage`` with
        reducing trades (:func:`~ballast.engine.trading.planner.plan_deleverage`), whatever the
        cooldown: for the risk actor's "leverage above the cap" event. Assets with orders in flight
        are skipped; core floors are those of the strategy's targets at the last snapshot."""
        snapshot = self.snapshot
        if snapshot is None:
            return
        plan = plan_deleverage(
            self._inputs(snapshot, self._resolved), self._peek_id(), why, target_leverage
        )
        busy = self._busy_assets()
        plan.intents[:] = [i for i in plan.intents if base_of(i.symbol) not in busy]
        if plan.intents:
            self.decisions += 1
            self._publish(plan, "deleverage", why, ts_event)

    def on_deleverage_required(self, event: DeleverageRequired) -> None:
        """The risk actor found a limit breached at the current marks (a perp near liquidation,
        margin usage or net leverage above its limit): reduce ``event.asset`` by the requested
        notional at once, whatever the cooldown, unless its orders are still in flight. Near
        liquidation or over the margin limit only the perp is reduced (reduce-only); for net
        leverage the perp first, then spot above the core floor of the last targets."""
        snapshot = self.snapshot
        if snapshot is None or self.kill_switch or not self.instruments:
            return
        if event.asset in self._busy_assets():
            return
        why = f"deleverage ({event.reason}): {event.detail}"
        delta = event.notional if event.side == "buy" else -event.notional
        plan = plan_reduce(
            self._inputs(snapshot, self._resolved),
            self._peek_id(),
            why,
            event.asset,
            delta,
            perp_only=bool(event.symbol),
        )
        if plan.intents:
            self.decisions += 1
            self._publish(plan, "deleverage", why, event.ts_event)

    def on_kill_switch_reset(self, event: KillSwitchReset) -> None:
        self.kill_switch = False

    def on_vetoed(self, event: OrderVetoed) -> None:
        """A vetoed trade did not happen: retry it after ``retry_vetoed_s`` rather than after the
        full cooldown (a stale mark is often fixed a second later; a persistent limit is not
        retried on every snapshot)."""
        self.orders.apply(event)
        asset = base_of(event.symbol)
        retry = event.ts_event + self.retry_vetoed_ns
        if self._cooling.get(asset, 0) > retry:
            self._cooling[asset] = retry

    def on_order_message(self, message: Message) -> None:
        """Follow its orders: the approved (maybe cut) and then the sent quantity is the one
        whose fills complete an order."""
        self.orders.apply(message)

    def on_order_done(self, event: OrderCanceled | OrderRejected) -> None:
        order = self.orders.get(event.client_order_id)
        refused = isinstance(event, OrderRejected) and _for_funds(event.reason)
        if refused and order is not None and order.working:
            # Re-plan at the next check with fresh account figures, never the same order again.
            self._refused[order.asset] = (order.symbol, order.side, order.qty)
            self._cooling[order.asset] = min(self._cooling.get(order.asset, 0), event.ts_event)
        self.orders.apply(event)

    def on_snapshot(self, snapshot: PortfolioSnapshot) -> None:
        self.snapshot = snapshot
        if self.kill_switch or self.strategy.halted or not self.instruments:
            return
        targets = self.strategy.call(self._context(snapshot))
        if targets is None:
            self._publish_strategy_failure()
            return
        self._resolved = self.strategy.resolved  # targets.resolve(), as the guard's check made it
        date = self._calendar_date(snapshot.ts_event)
        if self.trigger != "threshold" and not date:
            return  # between calendar dates nothing is checked
        inputs = self._inputs(
            snapshot, self._resolved, scope=self.scope, calendar_date=self.trigger == "calendar"
        )
        plan = plan_rebalance(inputs, self._peek_id())
        if date:
            plan.notes.insert(0, f"{self.trigger} check (every {self._every_text()})")
        self._drop_cooling(plan, snapshot.ts_event)
        self._drop_refused(plan)
        if plan.intents or self.report_holds:
            self.decisions += 1
            self._publish(plan, "band", targets.note, snapshot.ts_event)

    # ------------------------------------------------------------------ helpers

    def _calendar_date(self, now: int) -> bool:
        """Whether ``now`` is a calendar date (calendar and hybrid triggers): the first snapshot,
        then the first one at or after every period since. Moves the next date on."""
        if self.trigger == "threshold":
            return False
        if self._next_date_ns is not None and now < self._next_date_ns:
            return False
        start = now if self._next_date_ns is None else self._next_date_ns
        while start <= now:
            start += self.every_ns
        self._next_date_ns = start
        return True

    def _every_text(self) -> str:
        days = Decimal(self.every_ns) / NS_PER_DAY
        return f"{days.normalize():f} days"

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

    def _inputs(
        self,
        snapshot: PortfolioSnapshot,
        targets: Mapping[str, Any],
        *,
        scope: Literal["breached", "all"] = "breached",
        calendar_date: bool = False,
    ) -> PlanInputs:
        return PlanInputs(
            snapshot=snapshot,
            targets=targets,
            budget=self.budget,
            instruments=self.instruments,
            mode=self.mode,
            rebalance_to=self.rebalance_to,
            quote=self.quote,
            funding_rates=dict(self.funding),
            perp_leverage=dict(self.leverage),
            default_leverage=self.default_leverage,
            margin_buffer=self.margin_buffer,
            scope=scope,
            calendar_date=calendar_date,
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

    def _busy_assets(self) -> set[str]:
        """Assets with an intent or order still in flight: never planned again until it ends."""
        return self.orders.busy_assets()

    def _drop_cooling(self, plan: Plan, now: int) -> None:
        """Keep no intent for an asset in cooldown or with orders still in flight."""
        for order in self.orders.in_flight():
            if now - order.since_ns <= self.in_flight_timeout_ns:
                continue
            intent_id = order.intent_id
            if order.working:
                waited = (now - order.since_ns) // NS_PER_SECOND
                plan.notes.append(
                    f"{order.asset}: the order of {intent_id} is unanswered after {waited} s; "
                    "not planned again until the venue reports it"
                )
            else:
                self.orders.abandon(intent_id, "never sent")
                plan.notes.append(f"{order.asset}: {intent_id} was never sent, not waited for")
        cooling = {a for a, until in self._cooling.items() if until > now}
        busy = self._busy_assets()
        if busy and self.scope == "all" and plan.intents:
            # one rebalance of every asset at a time: the weights of a book half-way through
            # one (some orders filled, others not) are no breach
            plan.notes.append(
                f"scope all: orders in flight for {', '.join(sorted(busy))}; the next rebalance "
                "waits for them"
            )
            plan.intents.clear()
            return
        kept = [i for i in plan.intents if base_of(i.symbol) not in cooling | busy]
        if len(kept) < len(plan.intents):
            if cooling:
                plan.notes.append(f"cooldown: no new orders for {', '.join(sorted(cooling))} yet")
            if busy - cooling:
                plan.notes.append(f"orders in flight for {', '.join(sorted(busy - cooling))}")
        plan.intents[:] = kept

    def _drop_refused(self, plan: Plan) -> None:
        """Never send again an order the venue refused for lack of margin or balance: the plan
        was made on fresh account figures, so the same order means the figures disagree with
        the venue's, and it would be refused again."""
        kept = []
        for intent in plan.intents:
            asset = base_of(intent.symbol)
            if self._refused.get(asset) == (intent.symbol, intent.side, intent.qty):
                plan.notes.append(
                    f"{asset}: {intent.side} {intent.qty} {intent.symbol} was refused for "
                    "insufficient margin/balance: not sent again"
                )
                continue
            kept.append(intent)
        plan.intents[:] = kept
        for intent in kept:
            self._refused.pop(base_of(intent.symbol), None)

    def _publish(self, plan: Plan, trigger: RebalanceTrigger, note: str, ts_event: int) -> None:
        """Publish the decision. Cooldowns run on event time, so a replay decides the same."""
        if not plan.intents and not self.report_holds:
            return
        for intent in plan.intents:
            self._cooling[base_of(intent.symbol)] = ts_event + self.cooldown_ns
        reasoning = "; ".join([*(n for n in [note] if n), *plan.notes])
        decision = RebalanceDecided(
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
        self.orders.apply(decision)  # its intents are in flight before anyone answers them
        self.publish(decision)

    def _publish_strategy_failure(self) -> None:
        if self._failure_published:
            return
        self._failure_published = True
        event = self.strategy.failure_event(self.now())
        if event is not None:
            self.publish(event)


def _for_funds(reason: str) -> bool:
    """A venue refusal for lack of margin or balance (Binance -2019 "Margin is insufficient",
    -2010 "insufficient balance", the simulated venue's "insufficient margin/balance")."""
    text = reason.lower()
    return "insufficient" in text
