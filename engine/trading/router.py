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

Restart: ``on_start`` asks the venue for its open orders and publishes each as
``OrderStatusReported``; the tracker adopts them, so an intent whose order is still live at the
venue is not resubmitted. A session resumed from its journal (:mod:`ballast.engine.app.catch_up`)
reconciles in ``on_resume`` instead: every order the tracker still holds as working is looked up.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Final

from ballast.engine.kernel.actor import Actor
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import Clock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import Config
from ballast.engine.kernel.errors import JournalError, JournalUnwritableError
from ballast.engine.kernel.events import (
    IntentApproved,
    OrderEvent,
    OrderIntent,
    OrderRejected,
    OrderStatusReported,
)
from ballast.engine.kernel.redaction import redact
from ballast.engine.trading.order_tracker import ORDER_EVENTS, OrderTracker, client_order_id_for
from ballast.engine.trading.venue import OrderStatus, Venue, VenueError

_ZERO: Final = Decimal(0)
_MAX_REASON: Final = 300


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
        self.stale_updates = 0
        """Late, out-of-order updates ignored (an acknowledgement or status report arriving
        after the order moved past it: :attr:`Transition.stale`)."""
        self.subscribe(IntentApproved, self.on_intent_approved)
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
        cmd = self._command(intent)
        self.orders.apply(cmd)
        seq = self.publish(cmd)
        self.spawn(self._deliver(cmd, seq), name=cmd.client_order_id)

    def on_order_event(self, event: OrderEvent) -> None:
        for transition in self.orders.apply(event):
            if transition.ok:
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
