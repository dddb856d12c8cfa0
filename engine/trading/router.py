"""The order router: turns approved intents into orders at the venue, exactly once.

On ``IntentApproved`` the router publishes a ``SubmitOrder`` command synchronously (an output, so
replay re-derives it), then in a background task waits until the journal has made that command
durable and only then hands it to the venue. A crash therefore never leaves an order at the venue
that the journal does not know.

Never two orders for one intent: the client order id is derived from the intent id
(:func:`~ballast.engine.trading.order_tracker.client_order_id_for`), and an intent that already has
an order, live or finished, is not sent again. The router's
:class:`~ballast.engine.trading.order_tracker.OrderTracker` is driven only by its own commands and
the order events on the bus, so it evolves identically in replay.

Journal unwritable (disk full, read-only: ``JournalUnwritableError``): the command is not sent; an
``OrderRejected`` (reason ``journal: …``) follows it in the journal, so the order is closed for
the tracker, the rebalancer and a restart alike (both records reach the disk together when it
accepts writes again, or neither does).

Transport failures (``VenueError``: the outcome is unknown). The router looks the order up by its
client order id and publishes the answer as ``OrderStatusReported`` (state ``unknown`` when the
venue never received it). It resends, with the same client order id, only when the venue does not
have the order; after ``max_attempts`` sends it gives up with ``OrderRejected`` whose reason starts
with ``transport:``. Everything learned by awaiting the venue is published as an input-role event,
so replay re-feeds it instead of re-deriving it (the replay venue, SilentVenue, never fails).

Legs in sequence: within one rebalance decision, an intent that spends cash or margin (a spot buy,
a perp order that is not reduce-only) waits until the decision's reduce-only orders have filled,
since it was sized on the cash and margin they free. It becomes a ``SubmitOrder`` only when every
reducing leg of its decision is completely filled; if one ends otherwise (rejected, canceled,
partly filled), the kill switch fires first, or the wait outlasts the rebalancer's patience with
an unsent intent (``IN_FLIGHT_TIMEOUT_S``), it is dropped with ``OrderVetoed`` (reason
``kill_switch`` or ``leg_not_filled``) and its asset is planned again on fresh figures. Sent
together, the spend could be booked before the close (fills come back on separate streams),
leaving the perp on too little margin: a false liquidation-distance kill switch at best, a real
shortfall when the close fails. Waiting and release are driven by bus events only, so replay
re-derives them.

Restart: ``on_start`` asks the venue for its open orders and publishes each as
``OrderStatusReported``; the tracker adopts them, so an intent whose order is still live at the
venue is not resubmitted. A session resumed from its journal (:mod:`ballast.engine.app.catch_up`)
reconciles in ``on_resume`` instead: every order the tracker still holds as working is looked up.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from ballast.engine.kernel.actor import Actor
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_SECOND, Clock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import Config
from ballast.engine.kernel.errors import JournalError, JournalUnwritableError
from ballast.engine.kernel.events import (
    IntentApproved,
    KillSwitchTriggered,
    OrderEvent,
    OrderIntent,
    OrderRejected,
    OrderStatusReported,
    OrderVetoed,
    VetoReason,
)
from ballast.engine.kernel.redaction import redact
from ballast.engine.trading.order_tracker import (
    IN_FLIGHT_TIMEOUT_S,
    ORDER_EVENTS,
    OrderTracker,
    Transition,
    client_order_id_for,
)
from ballast.engine.trading.planner import decision_of
from ballast.engine.trading.venue import OrderStatus, Venue, VenueError

_ZERO: Final = Decimal(0)
_MAX_REASON: Final = 300
_KEEP_FAILED: Final = 1000


@dataclass(slots=True)
class _Waiting:
    """An approved intent waiting for its decision's reducing legs (module docstring)."""

    intent: OrderIntent
    since_ns: int
    legs: set[str] = field(default_factory=set)
    """Client order ids of the reducing legs not yet completely filled."""


def _spends(intent: OrderIntent) -> bool:
    """Whether the order spends cash or margin: a spot buy, or a perp order not reduce-only."""
    if intent.reduce_only:
        return False
    return ":" in intent.symbol or intent.side == "buy"


class OrderRouter(Actor):
    """Sends approved intents to ``venue`` (the one actor that owns a venue)."""

    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        venue: Venue,
        *,
        max_attempts: int = 3,
        retry_backoff_s: float = 0.5,
        name: str | None = None,
    ) -> None:
        super().__init__(bus, clock, name=name)
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.venue = venue
        self.max_attempts = max_attempts
        self.retry_backoff_s = retry_backoff_s
        self.orders = OrderTracker()
        self._reducing: dict[str, set[str]] = {}
        """Decision id → client order ids of its reduce-only orders still live."""
        self._waiting: dict[str, _Waiting] = {}
        """Intent id → an approved intent held for its decision's reducing legs."""
        self._failed: dict[str, str] = {}
        """Decision id → why one of its reducing legs did not fill (the most recent decisions),
        for an intent of it approved after that leg ended."""
        self.stale_updates = 0
        """Late, out-of-order updates ignored (an acknowledgement or status report arriving
        after the order moved past it: :attr:`Transition.stale`)."""
        self.subscribe(IntentApproved, self.on_intent_approved)
        self.subscribe(KillSwitchTriggered, self.on_kill_switch)
        for event_type in ORDER_EVENTS:
            self.subscribe(event_type, self.on_order_event)

    @classmethod
    def from_config(cls, config: Config, bus: Bus, clock: Clock, venue: Venue) -> OrderRouter:
        return cls(
            bus,
            clock,
            venue,
            max_attempts=config.execution.submit_attempts,
            retry_backoff_s=config.execution.submit_retry_backoff_s,
        )

    # ------------------------------------------------------------------ lifecycle

    async def on_start(self) -> None:
        """Reconcile: adopt every order still open at the venue (live before a restart)."""
        try:
            open_orders = await self.venue.open_orders()
        except VenueError as exc:
            self.log.error("reconciliation: cannot list open orders: %s", redact(str(exc)))
            return
        for status in open_orders:
            await self.bus.publish_durable(self._report(status))

    async def on_resume(self) -> None:
        """After a restart caught up on the journal (the tracker knows every order the journal
        does): ask the venue about each order still working in the tracker and publish its
        answer. An order the venue never received (sent just before a crash) is given up with
        ``OrderRejected`` (reason ``transport: …``), so the rebalancer plans afresh instead of
        waiting for it or resending an order sized on old prices. This is where a live venue is
        reconciled; the simulated one is rebuilt from the same journal. Only venue answers are
        published (input events): replay re-feeds them and does not call this."""
        for order in self.orders.working():
            try:
                status = await self.venue.order_status(order.client_order_id, order.symbol)
            except VenueError as exc:
                self.log.error(
                    "reconciliation: %s: lookup failed: %s", order.client_order_id, redact(str(exc))
                )
                continue
            if status is not None:
                await self.bus.publish_durable(self._report(status))
                continue
            now = self.now()
            reason = "transport: the venue never received it (found on restart)"
            await self.bus.publish_durable(
                OrderRejected(now, now, order.client_order_id, order.symbol, reason)
            )

    # ------------------------------------------------------------------ handlers

    def on_intent_approved(self, event: IntentApproved) -> None:
        intent = event.intent
        known = self.orders.for_intent(intent.intent_id)
        if known is not None:
            self.log.info(
                "intent %s already has order %s (%s): not sent again",
                intent.intent_id,
                known.client_order_id,
                known.state,
            )
            return
        if intent.intent_id in self._waiting:
            self.log.info("intent %s already waits for its reducing legs", intent.intent_id)
            return
        decision = decision_of(intent.intent_id)
        failed = self._failed.get(decision)
        if failed is not None and _spends(intent):
            self._waiting[intent.intent_id] = _Waiting(intent, self.now())
            self._drop(intent.intent_id, "leg_not_filled", failed)
            return
        legs = self._reducing.get(decision)
        if legs and _spends(intent):
            self._waiting[intent.intent_id] = _Waiting(intent, self.now(), set(legs))
            self.log.info(
                "%s waits for the reducing legs of its decision: %s",
                intent.intent_id,
                ", ".join(sorted(legs)),
            )
            return
        self._send(intent)

    def _send(self, intent: OrderIntent) -> None:
        cmd = self._command(intent)
        self.orders.apply(cmd)
        seq = self.publish(cmd)
        if intent.reduce_only:
            self._reducing.setdefault(decision_of(intent.intent_id), set()).add(cmd.client_order_id)
        self.spawn(self._deliver(cmd, seq), name=cmd.client_order_id)

    def on_order_event(self, event: OrderEvent) -> None:
        for transition in self.orders.apply(event):
            if transition.ok:
                if transition.ended and self._reducing:
                    self._leg_ended(transition)
                continue
            if transition.stale:
                self.stale_updates += 1
            quiet = transition.before is None or transition.stale
            level = self.log.debug if quiet else self.log.warning
            level(
                "order %s: %s on %s",
                transition.client_order_id,
                transition.problem,
                type(event).__name__,
            )

    def on_kill_switch(self, event: KillSwitchTriggered) -> None:
        for intent_id in list(self._waiting):
            self._drop(intent_id, "kill_switch", f"kill switch fired ({event.reason})")

    # ------------------------------------------------------------------ legs in sequence

    def _leg_ended(self, transition: Transition) -> None:
        """A reducing leg ended: send the intents that waited only for it, or drop them when it
        did not fill completely (or they waited too long)."""
        coid = transition.client_order_id
        decision = decision_of(transition.intent_id)
        legs = self._reducing.get(decision)
        if legs is None or coid not in legs:
            return
        legs.discard(coid)
        if not legs:
            del self._reducing[decision]
        order = self.orders.get(coid)
        filled = (
            order is not None and transition.after == "filled" and order.filled_qty >= order.qty
        )
        done = f"{order.filled_qty}/{order.qty}" if order is not None else "?"
        failure = f"its reducing leg {coid} ended {transition.after} ({done} filled)"
        if not filled:
            self._failed[decision] = failure
            if len(self._failed) > _KEEP_FAILED:
                del self._failed[next(iter(self._failed))]
        now = self.now()
        for intent_id, waiting in list(self._waiting.items()):
            if coid not in waiting.legs:
                continue
            if not filled:
                self._drop(intent_id, "leg_not_filled", failure)
                continue
            waiting.legs.discard(coid)
            if waiting.legs:
                continue
            if now - waiting.since_ns > IN_FLIGHT_TIMEOUT_S * NS_PER_SECOND:
                waited = (now - waiting.since_ns) // NS_PER_SECOND
                why = f"its reducing legs filled after {waited} s, longer than an intent waits"
                self._drop(intent_id, "leg_not_filled", why)
                continue
            del self._waiting[intent_id]
            self._send(waiting.intent)

    def _drop(self, intent_id: str, reason: VetoReason, why: str) -> None:
        waiting = self._waiting.pop(intent_id)
        detail = redact(f"not sent: {why}; planned again on fresh figures")[:_MAX_REASON]
        self.log.warning("%s %s", intent_id, detail)
        now = self.now()
        self.publish(OrderVetoed(now, now, intent_id, waiting.intent.symbol, reason, detail))

    # ------------------------------------------------------------------ delivery

    async def _deliver(self, cmd: SubmitOrder, seq: int) -> None:
        """Make ``cmd`` durable, then send it until the venue has it or attempts run out."""
        try:
            await self.bus.sync(seq)
        except JournalError as exc:
            self.log.error("%s not sent: journal not durable: %s", cmd.client_order_id, exc)
            if isinstance(exc, JournalUnwritableError):  # the journal goes on: close the order
                now = self.now()
                reason = f"journal: not durable, never sent: {exc}"
                self.publish(
                    OrderRejected(
                        now, now, cmd.client_order_id, cmd.symbol, redact(reason)[:_MAX_REASON]
                    )
                )
            return
        error = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self.venue.submit(cmd)
                return
            except VenueError as exc:
                error = redact(str(exc))
                self.log.warning("%s: send %d failed: %s", cmd.client_order_id, attempt, error)
            if await self._venue_has(cmd):
                return
            if attempt < self.max_attempts and self.retry_backoff_s > 0:
                await asyncio.sleep(self.retry_backoff_s * attempt)
        await self._give_up(cmd, error)

    async def _venue_has(self, cmd: SubmitOrder) -> bool:
        """Look the order up and publish the answer. A failed lookup counts as "not there": the
        resend that follows carries the same client order id, which the venue treats as a no-op
        for an order it already has."""
        try:
            status = await self.venue.order_status(cmd.client_order_id, cmd.symbol)
        except VenueError as exc:
            self.log.warning("%s: lookup failed: %s", cmd.client_order_id, redact(str(exc)))
            return False
        report = self._report(status) if status is not None else self._unknown(cmd)
        await self.bus.publish_durable(report)
        return status is not None

    async def _give_up(self, cmd: SubmitOrder, error: str) -> None:
        reason = f"transport: no answer after {self.max_attempts} attempts: {error}"
        now = self.now()
        rejected = OrderRejected(
            ts_event=now,
            ts_init=now,
            client_order_id=cmd.client_order_id,
            symbol=cmd.symbol,
            reason=redact(reason)[:_MAX_REASON],
        )
        await self.bus.publish_durable(rejected)

    # ------------------------------------------------------------------ messages

    def _command(self, intent: OrderIntent) -> SubmitOrder:
        now = self.now()
        return SubmitOrder(
            ts_event=now,
            ts_init=now,
            intent_id=intent.intent_id,
            client_order_id=client_order_id_for(intent.intent_id),
            symbol=intent.symbol,
            side=intent.side,
            order_type=intent.order_type,
            qty=intent.qty,
            price=intent.price,
            reduce_only=intent.reduce_only,
            post_only=False,
            time_in_force="GTC" if intent.order_type == "limit" else "IOC",
        )

    def _report(self, status: OrderStatus) -> OrderStatusReported:
        now = self.now()
        return OrderStatusReported(
            ts_event=now,
            ts_init=now,
            client_order_id=status.client_order_id,
            venue_order_id=status.venue_order_id,
            symbol=status.symbol,
            side=status.side,
            qty=status.qty,
            filled_qty=status.filled_qty,
            avg_price=status.avg_price,
            state=status.state,
        )

    def _unknown(self, cmd: SubmitOrder) -> OrderStatusReported:
        now = self.now()
        return OrderStatusReported(
            ts_event=now,
            ts_init=now,
            client_order_id=cmd.client_order_id,
            venue_order_id="",
            symbol=cmd.symbol,
            side=cmd.side,
            qty=cmd.qty,
            filled_qty=_ZERO,
            avg_price=None,
            state="unknown",
        )
