"""RiskManager: the risk-budget actor. It estimates the regime, publishes the budget in force,
checks every planned order before it may go out, and trips the kill switch.

Consumes: InstrumentsLoaded (exchange filters); QuoteTick (mid), Bar (close) and MarkPriceUpdated
(mark) as the latest price per symbol with its ``ts_event``, the ``risk.regime_asset`` spot price
also feeding the volatility estimator (market data only as accepted by the bus's market gate:
a rejected price never reaches the estimator or the pre-trade check); PortfolioSnapshot (latest;
drawdown and liquidation distance); RebalanceDecided (each intent checked in order); SubmitOrder,
OrderSubmitted, OrderAccepted, OrderFilled, OrderCanceled, OrderRejected, OrderStatusReported (the
orders of the intents it approved, followed in its own
:class:`~ballast.engine.trading.order_tracker.OrderTracker`: in-flight exposure; daily turnover);
KillSwitchTriggered / KillSwitchReset (operator); its own TimerFired (staleness and calendar).

Publishes: RiskBudgetChanged (on start with reason "start", then whenever the regime changes),
IntentApproved (maybe cut) or OrderVetoed per intent, DataStale (once per stale episode of a
symbol), KillSwitchTriggered (once per episode), DeleverageRequired (at a snapshot, see below).

Reconciliation: a ``ReconcileMismatch`` (the venue's account disagrees with the journal's book
after a restart or a gap, :mod:`ballast.engine.app.reconcile`) vetoes every intent with reason
``unreconciled`` until a ``ReconcileResolved``. Both are input events, so replay re-feeds them and
reaches the same verdicts.

Holding on a live venue (``await_reconcile``, from ``venue.kind`` ``paper``/``binance``): the
journal's book is not known to be the venue's until the venue caught up and a reconcile agreed, so
every intent is vetoed (``unreconciled``, the detail says why: :attr:`RiskManager.held`) from the
session's start (its ``InstrumentsLoaded``, the first input of a session, fresh or resumed) and
from a gap of a user stream (``VenueConnectionChanged`` ``disconnected`` of a ``user:*`` channel)
until a ``ReconcileResolved`` that follows a ``caught_up`` (a resolution of an older window does
not count). Reduce-only intents are held too: they are sized on the same stale book (a reduce of a
position the venue no longer holds), and the hold lasts the venue's catch-up plus the reconcile's
grace. The hold follows only journaled inputs, so a replay (and a resumed session's catch-up)
reaches the same verdicts.

Journal unwritable: while the journal cannot be written (a ``JournalWriteChanged`` with
``writable`` False: disk full, read-only), every intent is vetoed (``journal_unwritable``),
reduce-only ones too: an order is sent only once its ``SubmitOrder`` is durable, and nothing is
until the disk accepts writes again (the next ``JournalWriteChanged``, or a session's start: a
killed session may leave the unwritable one as its last record). An input event, so replay
reaches the same verdicts.

Liquidation distance: computed here, for every perp position, from the snapshot re-valued at the
latest perp marks (:mod:`ballast.engine.trading.measures`) with the simulated exchange's own
tiered-margin formula (:mod:`ballast.engine.trading.margin`); the venue's liquidation estimate,
updated only on a fill, is not used.

Deleveraging, before the exchange liquidates: at each snapshot, while the kill switch is off, for
each breach at the current marks a DeleverageRequired asks the rebalancer for a reducing trade
(at most one per asset and snapshot time; none for an asset with an approved order still in
flight), sized by :mod:`ballast.engine.trading.deleverage`: a perp closer to liquidation than
``risk.deleverage_distance`` (``liquidation_distance``), margin usage above ``max_margin_usage``
(``margin_usage``), Σ |net exposure| / NAV above the budget's net cap although no order took it
there (``net_leverage``).

Closing orders in flight: the liquidation check of the kill switch and the deleveraging requests
judge the book as it will be once the approved reduce-only market orders still live have filled
at the current marks (:meth:`~ballast.engine.trading.measures.Book.settled`): an exposure such an
order is removing is not a breach while it works. Live, a Case B unwind (the perp long closed, spot
bought with the proceeds, two orders sent together) often has its spot fill booked before the
close's: for a moment the long's collateral is spent while the long is still open, and without
this the kill switch halted the run on a position already being closed. When such an order ends
unfilled (refused, canceled, given up), the book is judged again at once without it: a genuine
breach still trips the switch. A reduce-only limit order (it may rest) is not counted. The
pre-trade liquidation guard (no order may take a perp below the deleveraging distance) judges the
same settled book (:meth:`RiskManager.settled_book`, passed to the check): the spot buy of a Case B
unwind, checked right after its close was approved, is judged on the book the close leaves, and
every order at the marks the kill switch reads, not the snapshot's. The caps (net and gross
leverage, margin usage, weight, turnover) still count every order in flight at its worst: the
venue may fill the orders of a decision in either order (:mod:`~ballast.engine.trading.pretrade`).

Kill switch, the last resort: trips when ``snapshot.drawdown ≥ drawdown_limit`` (reason
``drawdown``) or when a perp's distance to liquidation ``|mark − liquidation| / mark`` is below
``min_liquidation_distance`` (reason ``liquidation_distance``; checked at every snapshot, every
perp mark and the end of an unfilled closing order, closing orders in flight counted as above), or
when the venue refuses an order for the API key itself (an ``OrderRejected`` whose reason starts
with :data:`~ballast.engine.kernel.events.KEY_REFUSED`: the key is invalid or lost
its trade permission; reason ``key_refused``). While it is on only reduce-only intents pass. A
KillSwitchReset clears it; if a limit is still breached at the next snapshot it trips again (an
operator cannot reset a live breach away).

Re-arm, in backtests only (``[risk.rearm]``, off by default; ``ballast run`` refuses it, live the
reset stays an operator's): at each snapshot while a ``drawdown`` or ``liquidation_distance`` kill
switch is on, once ``after_days`` have passed since it fired and NAV is ``recovery`` above its
lowest snapshot since then (each condition only when set), the risk actor publishes a
KillSwitchReset (``by`` = ``rearm: ...``). From then on the drawdown limit is measured from the
NAV at the re-arm (its own running peak), not from the peak before the fall. A
``handler_failed`` or ``key_refused`` kill switch never re-arms by itself.

Duplicate reduce-only orders: a reduce-only intent may not take more than the position minus
the unfilled quantity of the reduce-only orders already approved for the same symbol (the kill
switch's close-everything order after a deleveraging one, both selling the same position):
cut to the rest, or vetoed ``reduce_in_flight`` when nothing is left.

Definitions used (see :mod:`ballast.engine.trading.pretrade`,
:mod:`ballast.engine.trading.measures`): NAV = cash + Σ spot value +
Σ perp unrealised PnL; net exposure(asset) = spot value + perp notional; weight = net exposure /
NAV; net leverage = Σ |net exposure| / NAV; gross leverage = Σ (|spot value| + |perp notional|) /
NAV; margin usage = initial margin / (cash + Σ perp unrealised PnL). Turnover = Σ fill qty × price
per UTC day.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

import msgspec

from ballast.engine.kernel.actor import Actor
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.calendar_windows import parse_calendar
from ballast.engine.kernel.clock import NS_PER_DAY, NS_PER_HOUR, NS_PER_SECOND, Clock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import BandsConfig, Config, RiskConfig
from ballast.engine.kernel.events import (
    KEY_REFUSED,
    Bar,
    DataStale,
    HandlerFailed,
    InstrumentsLoaded,
    IntentApproved,
    JournalWriteChanged,
    KillSwitchReason,
    KillSwitchReset,
    KillSwitchTriggered,
    MarkPriceUpdated,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderStatusReported,
    OrderSubmitted,
    OrderVetoed,
    PortfolioSnapshot,
    QuoteTick,
    RebalanceDecided,
    ReconcileMismatch,
    ReconcileResolved,
    Regime,
    TimerFired,
    VenueConnectionChanged,
)
from ballast.engine.kernel.instruments import Instrument, base_of, is_perp
from ballast.engine.trading.budget import RiskBudget
from ballast.engine.trading.deleverage import deleverage_requests
from ballast.engine.trading.margin import MarginTable, default_margin_table
from ballast.engine.trading.measures import Book, Liquidation
from ballast.engine.trading.money_state import MONEY_STATE_OWNERS
from ballast.engine.trading.order_tracker import OrderTracker
from ballast.engine.trading.pretrade import Approved, Verdict, Vetoed, check, read_only_veto
from ballast.engine.trading.regime import (
    DEFAULT_WARMUP,
    RegimeClassifier,
    VolatilityEstimator,
)

_ZERO: Final = Decimal(0)
_TWO: Final = Decimal(2)

LIVE_VENUES: Final = frozenset({"paper", "binance"})
"""``venue.kind`` values of a live venue: intents are held until it caught up and reconciled."""
HELD_START: Final = "start"
HELD_RECONCILING: Final = "reconciling"
HELD_MEANING: Final = {
    HELD_START: "the session started; waiting for the venue to catch up and the reconcile",
    HELD_RECONCILING: "the venue caught up; waiting for the reconcile to agree",
}


class RiskManager(Actor):
    """The risk-budget actor (see the module docstring)."""

    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        *,
        risk: RiskConfig,
        bands: BandsConfig,
        vol_interval_ns: int = NS_PER_HOUR,
        warmup: int = DEFAULT_WARMUP,
        margin: MarginTable | None = None,
        quote: str = "USDT",
        await_reconcile: bool = False,
        read_only: bool = False,
    ) -> None:
        super().__init__(bus, clock)
        self.read_only = read_only
        """Veto every intent the check approves (``[security] read_only``): no order is sent."""
        self.risk = risk
        self.margin = margin if margin is not None else default_margin_table()
        self.quote = quote
        self.bands = bands
        self.estimator = VolatilityEstimator(
            half_life_h=risk.vol_half_life_h, interval_ns=vol_interval_ns
        )
        self.classifier = RegimeClassifier(
            calm_vol=risk.calm_vol,
            stressed_vol=risk.stressed_vol,
            calendar=parse_calendar(risk.calendar),
            warmup=warmup,
        )
        self._budgets: dict[Regime, RiskBudget] = {}
        """The budget of each regime met so far (a pure function of the frozen risk and bands
        configs and the regime: derived once, not at every sample)."""
        self.budget = self._budget_of("normal")
        self.instruments: dict[str, Instrument] = {}
        self._perps: dict[str, Instrument] | None = None
        """asset → its perp instrument, built from ``instruments`` once per InstrumentsLoaded."""
        self._symbol_kinds: dict[str, tuple[str, bool]] = {}
        """symbol → (its base asset, is it a perp): parsed once per symbol."""
        self._regime_symbols: dict[str, bool] = {}
        """symbol → whether its prices feed the volatility estimator (``_is_regime_symbol``)."""
        self.marks: dict[str, tuple[Decimal, int]] = {}
        self.snapshot: PortfolioSnapshot | None = None
        self.kill_switch: KillSwitchReason | None = None
        self.mismatches: dict[str, ReconcileMismatch] = {}
        """Open reconciliation mismatches by subject (trading halted while any is open)."""
        self.await_reconcile = await_reconcile
        self.held: str | None = HELD_START if await_reconcile else None
        """Why intents are held on a live venue (module docstring), a short code: ``start``
        (the venue has not caught up since the session started), ``gap:VENUE:CHANNEL`` (a user
        stream dropped), ``reconciling`` (caught up; the reconcile has not agreed yet); None:
        not held."""
        self._caught_up = False
        self.journal_error: str | None = None
        """Why the journal cannot be written (from ``JournalWriteChanged``); None: it can."""
        self.stale_threshold_ns = int(risk.stale_after_s * NS_PER_SECOND)
        self.orders = OrderTracker()  # the orders of the intents it approved
        self._valued_at: dict[str, Decimal] = {}
        """intent id → the price its order's in-flight exposure is valued at (live ones)."""
        self._turnover_day = -1
        self._turnover = _ZERO
        self._stale: set[str] = set()
        self._asked: dict[str, int] = {}
        """asset → ts_event of the last DeleverageRequired for it."""
        self._reducing: set[str] = set()
        """Intent ids of the approved reduce-only intents (live ones)."""
        self._closing: set[str] = set()
        """Intent ids of the approved reduce-only market intents (live ones): the exposure they
        remove is not a breach while they work (module docstring, "Closing orders in flight")."""
        self._fired_ns: int | None = None
        """ts_event of the kill switch in force (None: off)."""
        self._trough: Decimal | None = None
        """Lowest NAV seen since the kill switch in force fired (re-arm policy)."""
        self._peak: Decimal | None = None
        """After a re-arm: the running peak NAV the drawdown limit is measured from."""
        self._subscribe_all()

    @classmethod
    def from_config(cls, config: Config, bus: Bus, clock: Clock) -> RiskManager:
        return cls(
            bus,
            clock,
            risk=config.risk,
            bands=config.bands,
            quote=config.venue.quote,
            await_reconcile=config.venue.kind in LIVE_VENUES,
            read_only=config.security.read_only,
        )

    def _subscribe_all(self) -> None:
        self.subscribe(InstrumentsLoaded, self.on_instruments)
        self.subscribe(QuoteTick, self.on_quote)
        self.subscribe(Bar, self.on_bar)
        self.subscribe(MarkPriceUpdated, self.on_mark_price)
        self.subscribe(PortfolioSnapshot, self.on_snapshot)
        self.subscribe(RebalanceDecided, self.on_decided)
        self.subscribe(SubmitOrder, self.on_order_message)
        self.subscribe(OrderSubmitted, self.on_order_message)
        self.subscribe(OrderAccepted, self.on_order_message)
        self.subscribe(OrderFilled, self.on_filled)
        self.subscribe(OrderCanceled, self.on_order_message)
        self.subscribe(OrderRejected, self.on_order_message)
        self.subscribe(OrderStatusReported, self.on_order_message)
        self.subscribe(KillSwitchTriggered, self.on_kill_switch)
        self.subscribe(KillSwitchReset, self.on_kill_switch_reset)
        self.subscribe(HandlerFailed, self.on_handler_failed)
        self.subscribe(ReconcileMismatch, self.on_mismatch)
        self.subscribe(ReconcileResolved, self.on_resolved)
        self.subscribe(VenueConnectionChanged, self.on_connection)
        self.subscribe(JournalWriteChanged, self.on_journal)

    async def on_start(self) -> None:
        now = self.now()
        self.publish(self.budget.to_event(now, "start", volatility=self.estimator.annualised))
        self._reassess(now)
        interval = max(1, self.stale_threshold_ns // 2)
        self.every("stale", interval, self.on_timer)

    # ------------------------------------------------------------------ state views

    def in_flight(self) -> dict[str, Decimal]:
        """Signed notional (buy > 0) of approved intents not yet filled, by symbol: the
        unfilled quantity of each live order at the price it was approved at."""
        out: dict[str, Decimal] = {}
        for order in self.orders.live():
            price = self._valued_at.get(order.intent_id)
            if price is None:
                continue  # not approved here (an order found at the venue)
            sign = Decimal(1) if order.side == "buy" else Decimal(-1)
            notional = sign * (order.qty - order.filled_qty) * price
            out[order.symbol] = out.get(order.symbol, _ZERO) + notional
        return out

    def reducing_in_flight(self) -> dict[str, Decimal]:
        """Unfilled quantity (signed, buy > 0) of the approved reduce-only orders, by symbol."""
        return self._unfilled(self._reducing)

    def closing_in_flight(self) -> dict[str, Decimal]:
        """Unfilled quantity (signed, buy > 0) of the approved reduce-only market orders still
        live, by symbol: what will be closed a moment from now unless the venue refuses it."""
        return self._unfilled(self._closing)

    def _unfilled(self, intent_ids: set[str]) -> dict[str, Decimal]:
        """Unfilled quantity (signed, buy > 0) of the live orders of ``intent_ids``, by symbol."""
        out: dict[str, Decimal] = {}
        for order in self.orders.live():
            if order.intent_id not in intent_ids:
                continue
            sign = Decimal(1) if order.side == "buy" else Decimal(-1)
            rest = sign * (order.qty - order.filled_qty)
            out[order.symbol] = out.get(order.symbol, _ZERO) + rest
        return out

    def settled_book(self) -> Book | None:
        """The book as it will be once the closing orders in flight have filled at the current
        marks (:meth:`Book.settled`); the book itself while none is in flight."""
        book = self.book()
        if book is None or not self._closing:
            return book
        return book.settled(self.closing_in_flight())

    def book(self) -> Book | None:
        """The latest snapshot re-valued at the freshest perp marks (None before a snapshot)."""
        snapshot = self.snapshot
        if snapshot is None:
            return None
        marks = {
            s.asset: self._perp_mark(s.asset, s.perp_price) for s in snapshot.assets if s.perp_qty
        }
        perps = self._perps
        if perps is None:
            perps = self._perps = {i.base: i for i in self.instruments.values() if i.is_perp}
        return Book(snapshot, perps, self.margin, marks, self.quote)

    def liquidations(self) -> list[Liquidation]:
        """Every open perp's liquidation price and distance at the current marks."""
        book = self.book()
        return [] if book is None else book.liquidations()

    def turnover_today(self, now_ns: int) -> Decimal:
        return self._turnover if now_ns // NS_PER_DAY == self._turnover_day else _ZERO

    def reset_kill_switch(self, by: str) -> None:
        """Operator path: publish a KillSwitchReset (handled like one from anywhere else)."""
        now = self.now()
        self.publish(KillSwitchReset(ts_event=now, ts_init=now, by=by))

    # ------------------------------------------------------------------ market data

    def on_instruments(self, event: InstrumentsLoaded) -> None:
        self.instruments.update({i.symbol: i for i in event.instruments})
        self._perps = None
        # A session starts on a journal it could write (its SessionStarted is durable): an
        # unwritable state a killed session left as its last word is over.
        self.journal_error = None
        if self.await_reconcile:  # a session starts: hold until the venue caught up + reconciled
            self._hold(HELD_START)

    def on_quote(self, quote: QuoteTick) -> None:
        if quote.bid > 0 and quote.ask >= quote.bid:
            self._on_price(quote.symbol, (quote.bid + quote.ask) / _TWO, quote.ts_event)

    def on_bar(self, bar: Bar) -> None:
        self._on_price(bar.symbol, bar.close, bar.ts_event)

    def on_mark_price(self, update: MarkPriceUpdated) -> None:
        self._on_price(update.symbol, update.mark, update.ts_event)
        self._check_liquidation(update.ts_event)

    def _on_price(self, symbol: str, price: Decimal, ts_ns: int) -> None:
        if price <= 0:
            return
        known = self.marks.get(symbol)
        if known is not None and ts_ns < known[1]:
            return  # older than what we have
        self.marks[symbol] = (price, ts_ns)
        self._stale.discard(symbol)
        regime = self._regime_symbols.get(symbol)
        if regime is None:
            regime = self._regime_symbols[symbol] = self._is_regime_symbol(symbol)
        if regime and self.estimator.update(ts_ns, price):
            self._reassess(ts_ns)

    def _is_regime_symbol(self, symbol: str) -> bool:
        base, perp = self._kind_of(symbol)
        return not perp and base == self.risk.regime_asset

    def _kind_of(self, symbol: str) -> tuple[str, bool]:
        """(base asset, is perp) of ``symbol``, parsed once."""
        kind = self._symbol_kinds.get(symbol)
        if kind is None:
            kind = self._symbol_kinds[symbol] = (base_of(symbol), is_perp(symbol))
        return kind

    # ------------------------------------------------------------------ regime

    def _reassess(self, ts_ns: int) -> None:
        """Classify the regime now; publish a RiskBudgetChanged if the budget changed."""
        estimator = self.estimator
        assessment = self.classifier.assess(ts_ns, estimator.annualised, estimator.samples)
        budget = self._budget_of(assessment.regime)
        if budget is self.budget or budget == self.budget:
            return
        reading = self.classifier.reading(assessment)
        self.budget = budget
        self.publish(
            budget.to_event(
                ts_ns, reading.reason, volatility=reading.volatility, ts_init=self.now()
            )
        )

    def _budget_of(self, regime: Regime) -> RiskBudget:
        budget = self._budgets.get(regime)
        if budget is None:
            budget = self._budgets[regime] = RiskBudget.derive(self.risk, self.bands, regime)
        return budget

    # ------------------------------------------------------------------ timer

    def on_timer(self, event: TimerFired) -> None:
        for symbol in sorted(self.marks):
            self._check_stale(symbol, event.ts_event)
        self._reassess(event.ts_event)

    def _check_stale(self, symbol: str, now_ns: int) -> None:
        _, last_ts = self.marks[symbol]
        age = now_ns - last_ts
        if age <= self.stale_threshold_ns or symbol in self._stale:
            return
        self._stale.add(symbol)
        self.publish(
            DataStale(
                ts_event=now_ns,
                ts_init=self.now(),
                symbol=symbol,
                last_ts_ns=last_ts,
                age_ns=age,
                threshold_ns=self.stale_threshold_ns,
            )
        )

    # ------------------------------------------------------------------ kill switch

    def on_snapshot(self, snapshot: PortfolioSnapshot) -> None:
        self.snapshot = snapshot
        self._maybe_rearm(snapshot)
        drawdown, peak = self._drawdown(snapshot)
        if drawdown >= self.risk.drawdown_limit:
            self._trip(
                snapshot.ts_event,
                "drawdown",
                f"drawdown {drawdown:.4f} >= limit {self.risk.drawdown_limit} "
                f"(NAV {snapshot.nav}, peak {peak})",
            )
        self._check_liquidation(snapshot.ts_event)
        if self.kill_switch is None:
            self._deleverage(snapshot.ts_event)

    def _check_liquidation(self, ts_ns: int) -> None:
        """Trip the kill switch if a perp of the settled book (:meth:`settled_book`: the latest
        snapshot at the latest marks, closes in flight filled) is closer to liquidation than
        ``min_liquidation_distance``."""
        snapshot = self.snapshot
        if snapshot is None:
            return
        for state in snapshot.assets:
            if state.perp_qty:
                break
        else:
            return  # no perp position: nothing can be liquidated
        book = self.settled_book()
        if book is None:
            return
        closing = "" if book.snapshot is snapshot else " once the closing orders in flight fill"
        for liquidation in book.liquidations():
            distance = liquidation.distance
            if distance is not None and distance < self.risk.min_liquidation_distance:
                self._trip(
                    ts_ns,
                    "liquidation_distance",
                    f"{liquidation.asset} perp qty {liquidation.qty} mark {liquidation.mark} "
                    f"liquidation {liquidation.price}: distance {distance:.4f} < min "
                    f"{self.risk.min_liquidation_distance}{closing}",
                )

    def _perp_mark(self, asset: str, snapshot_mark: Decimal) -> Decimal:
        """The fresher of the snapshot's perp price and the latest perp mark seen."""
        since = self.snapshot.ts_event if self.snapshot is not None else 0
        kinds, kind_of = self._symbol_kinds, self._kind_of
        for symbol, (price, ts) in self.marks.items():
            if ts >= since:
                base, perp = kinds.get(symbol) or kind_of(symbol)
                if perp and base == asset:
                    return price
        return snapshot_mark

    def _drawdown(self, snapshot: PortfolioSnapshot) -> tuple[Decimal, Decimal]:
        """(drawdown, the peak it is measured from): the snapshot's, or after a re-arm the fall
        from the running peak since the re-arm."""
        if self._peak is None:
            return snapshot.drawdown, snapshot.peak_nav
        self._peak = max(self._peak, snapshot.nav)
        if self._peak <= 0:
            return _ZERO, self._peak
        return 1 - snapshot.nav / self._peak, self._peak

    def _maybe_rearm(self, snapshot: PortfolioSnapshot) -> None:
        """The backtest re-arm policy (module docstring)."""
        policy = self.risk.rearm
        fired = self._fired_ns
        if (
            not policy.enabled
            or self.kill_switch in (None, "handler_failed", "key_refused")
            or fired is None
        ):
            return
        nav = snapshot.nav
        trough = nav if self._trough is None else min(self._trough, nav)
        self._trough = trough
        waited = snapshot.ts_event - fired
        if policy.after_days is not None and waited < int(policy.after_days * NS_PER_DAY):
            return
        if policy.recovery is not None and nav < trough * (1 + policy.recovery):
            return
        days = Decimal(waited) / NS_PER_DAY
        detail = f"rearm: {days:.1f} days after it fired, NAV {nav} vs trough {trough}"
        self.kill_switch = None
        self._peak = nav
        self.publish(KillSwitchReset(ts_event=snapshot.ts_event, ts_init=self.now(), by=detail))

    def _trip(self, ts_ns: int, reason: KillSwitchReason, detail: str) -> None:
        if self.kill_switch is not None:
            return
        self.kill_switch = reason
        self._fired_ns, self._trough = ts_ns, None
        self.publish(
            KillSwitchTriggered(ts_event=ts_ns, ts_init=self.now(), reason=reason, detail=detail)
        )

    def on_handler_failed(self, event: HandlerFailed) -> None:
        """A handler of an actor that owns money state raised (a fill the ledger refused, an
        order event the router could not book): that state is no longer known to be right, so
        no new risk is opened on it. The kill switch shows on ``/readyz`` and in the metrics;
        an operator resets it once the cause is understood."""
        owner = event.handler.split(".", 1)[0]
        if owner in MONEY_STATE_OWNERS:
            detail = f"{event.handler} failed on {event.event_type} seq {event.seq}: {event.error}"
            self._trip(event.ts_event, "handler_failed", detail)

    def on_kill_switch(self, event: KillSwitchTriggered) -> None:
        if self.kill_switch is None:
            self.kill_switch = event.reason
            self._fired_ns, self._trough = event.ts_event, None

    def on_kill_switch_reset(self, event: KillSwitchReset) -> None:
        self.kill_switch = None
        self._fired_ns = self._trough = None

    # ------------------------------------------------------------------ reconciliation

    def on_mismatch(self, event: ReconcileMismatch) -> None:
        if event.subject not in self.mismatches:
            self.log.warning(
                "trading halted: %s does not reconcile (journal %s, venue %s)",
                event.subject,
                event.journal_value,
                event.venue_value,
            )
        self.mismatches[event.subject] = event

    def on_resolved(self, event: ReconcileResolved) -> None:
        if self.mismatches:
            self.log.warning("reconciled again (%s): trading resumes", event.detail)
        self.mismatches.clear()
        if self.held is not None and self._caught_up:
            self.log.info("reconciled after the venue caught up (%s): trading resumes", self.held)
            self.held = None

    def on_connection(self, event: VenueConnectionChanged) -> None:
        if not self.await_reconcile:
            return
        if event.state == "disconnected" and event.channel.startswith("user"):
            self._hold(f"gap:{event.venue}:{event.channel}")
        elif event.state == "caught_up" and self.held is not None:
            self._caught_up = True
            self.held = HELD_RECONCILING

    def on_journal(self, event: JournalWriteChanged) -> None:
        if event.writable:
            if self.journal_error is not None:
                self.log.warning("journal %s writable again: trading resumes", event.path)
            self.journal_error = None
        else:
            self.log.error(
                "journal %s cannot be written (%s): every intent is vetoed until it can",
                event.path,
                event.error,
            )
            self.journal_error = event.error or "not writable"

    def _hold(self, reason: str) -> None:
        self.held = reason
        self._caught_up = False

    def unreconciled(self) -> str | None:
        """What is unreconciled (subjects, sorted; or why intents are held), or None."""
        parts = sorted(self.mismatches)
        if self.held is not None:
            parts.append(f"held: {HELD_MEANING.get(self.held, self.held)}")
        return ", ".join(parts) if parts else None

    # ------------------------------------------------------------------ deleveraging

    def _deleverage(self, ts_ns: int) -> None:
        """Ask for reducing trades for every breach at the current marks (module docstring)."""
        book = self.settled_book()
        if book is None or book.nav() <= 0:
            return
        busy = self.orders.busy_assets()
        requests = deleverage_requests(book, self.risk, self.budget.max_net_leverage)
        for request in requests:
            asset = request.asset
            if asset in busy or self._asked.get(asset) == ts_ns or request.notional <= 0:
                continue  # in flight, or already asked at this time (one request per asset)
            self._asked[asset] = ts_ns
            self.publish(msgspec.structs.replace(request, ts_event=ts_ns, ts_init=self.now()))

    # ------------------------------------------------------------------ pre-trade

    def on_decided(self, decision: RebalanceDecided) -> None:
        for intent in decision.intents:
            self._decide(intent, self.check(intent), decision.ts_event)

    def check(self, intent: OrderIntent) -> Verdict:
        """The pre-trade verdict for ``intent`` against the current state (no side effects)."""
        if self.journal_error is not None:
            return Vetoed(
                "journal_unwritable",
                f"the journal cannot be written ({self.journal_error}): no order is sent until "
                "it can be made durable",
            )
        now = self.now()
        seen = self.marks.get(intent.symbol)
        return check(
            intent,
            instrument=self.instruments.get(intent.symbol),
            snapshot=self.snapshot,
            mark=None if seen is None else seen[0],
            mark_age_ns=None if seen is None else max(0, now - seen[1]),
            budget=self.budget,
            mandate=self.risk,
            in_flight=self.in_flight(),
            reducing=self.reducing_in_flight(),
            turnover_today=self.turnover_today(now),
            kill_switch=self.kill_switch is not None,
            margin=self.margin,
            unreconciled=self.unreconciled(),
            settled=self.settled_book(),
        )

    def _decide(self, intent: OrderIntent, verdict: Verdict, ts_event: int) -> None:
        """Publish the verdict. Its ``ts_event`` is the decision's (event time carries through the
        pipeline; the rebalancer times its retry of a vetoed trade from it), so a replay on the
        simulated clock reaches the same verdicts at the same event times as the live run did,
        where ``now()`` is a little later than the decision."""
        now = self.now()
        if isinstance(verdict, Approved) and self.read_only:
            verdict = read_only_veto(verdict)
        if isinstance(verdict, Approved):
            approved = IntentApproved(
                ts_event=ts_event, ts_init=now, intent=verdict.intent, cut_reason=verdict.cut_reason
            )
            self._value(verdict.intent)
            if verdict.intent.reduce_only:
                self._reducing.add(verdict.intent.intent_id)
                if verdict.intent.order_type == "market":
                    self._closing.add(verdict.intent.intent_id)
            self.orders.apply(approved)  # in flight before the next intent is checked
            self.publish(approved)
            return
        self.publish(
            OrderVetoed(
                ts_event=ts_event,
                ts_init=now,
                intent_id=intent.intent_id,
                symbol=intent.symbol,
                reason=verdict.reason,
                detail=verdict.detail,
            )
        )

    def _value(self, intent: OrderIntent) -> None:
        """The price the approved intent's exposure counts at: the mark, or a worse limit."""
        mark = self.marks[intent.symbol][0]
        price = max(mark, intent.price) if intent.price is not None else mark
        self._valued_at[intent.intent_id] = price

    # ------------------------------------------------------------------ order lifecycle

    def on_order_message(self, message: Message) -> None:
        if isinstance(message, OrderRejected) and message.reason.startswith(KEY_REFUSED):
            # the venue refused the key itself: every order would be refused alike
            detail = f"{message.client_order_id} {message.symbol}: {message.reason}"
            self._trip(message.ts_event, "key_refused", detail)
        unfilled_close = False
        for transition in self.orders.apply(message):
            if transition.ended:
                self._valued_at.pop(transition.intent_id, None)
                self._reducing.discard(transition.intent_id)
                if transition.intent_id in self._closing:
                    self._closing.discard(transition.intent_id)
                    unfilled_close = transition.after != "filled"
        if unfilled_close:
            # the exposure it was to remove stays: judge the book without it, now
            self._check_liquidation(message.ts_event)

    def on_filled(self, fill: OrderFilled) -> None:
        self._add_turnover(fill.ts_event, fill.qty * fill.price)
        self.on_order_message(fill)

    def _add_turnover(self, ts_ns: int, notional: Decimal) -> None:
        day = ts_ns // NS_PER_DAY
        if day != self._turnover_day:
            self._turnover_day, self._turnover = day, _ZERO
        self._turnover += notional
