"""Orders as the simulated exchange keeps them: every order ever received, by client order id.

States: ``open`` (accepted: a resting limit order, or a market order waiting for its fill
latency), ``filled``, ``canceled``, ``rejected``. There are no partial fills (no depth model): an
order fills completely or not at all. ``live_ns`` (submit + fill latency) is when the order starts
to interact with market data.

Also the order checks and reports that do not depend on the account (shared with the test
venue of ``tests/support``): the ``OrderSubmitted`` of a command, and its shape problems.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.events import OrderSubmitted
from ballast.engine.kernel.instruments import Instrument
from ballast.engine.kernel.order_state import VenueOrderState
from ballast.engine.trading.venue import OrderStatus

_ZERO = Decimal(0)


@dataclass(slots=True)
class SimOrder:
    cmd: SubmitOrder
    submitted_ns: int
    live_ns: int
    venue_order_id: str = ""
    state: VenueOrderState = "open"
    filled_qty: Decimal = _ZERO
    avg_price: Decimal | None = None
    locked_asset: str = ""
    locked: Decimal = _ZERO

    @property
    def is_open(self) -> bool:
        return self.state == "open"

    def fillable_at(self, ts_ns: int) -> bool:
        """Whether market data stamped ``ts_ns`` can fill this order: a pending market order from
        ``live_ns`` on; a resting limit order from ``live_ns`` on and only with data stamped after
        its submit (a bar closing at the submit time happened before the order existed)."""
        if not self.is_open or ts_ns < self.live_ns:
            return False
        return self.cmd.order_type == "market" or ts_ns > self.submitted_ns

    @property
    def post_only(self) -> bool:
        return self.cmd.post_only or self.cmd.time_in_force == "GTX"

    def status(self) -> OrderStatus:
        return OrderStatus(
            client_order_id=self.cmd.client_order_id,
            venue_order_id=self.venue_order_id,
            symbol=self.cmd.symbol,
            side=self.cmd.side,
            qty=self.cmd.qty,
            filled_qty=self.filled_qty,
            avg_price=self.avg_price,
            state=self.state,
        )


def order_submitted(cmd: SubmitOrder, now_ns: int) -> OrderSubmitted:
    """The report that ``cmd`` was sent, stamped ``now_ns``."""
    return OrderSubmitted(
        ts_event=now_ns,
        ts_init=now_ns,
        client_order_id=cmd.client_order_id,
        intent_id=cmd.intent_id,
        symbol=cmd.symbol,
        side=cmd.side,
        order_type=cmd.order_type,
        qty=cmd.qty,
        price=cmd.price,
    )


def shape_problem(cmd: SubmitOrder, inst: Instrument, last: Decimal | None) -> str | None:
    """Why ``cmd`` does not fit ``inst``'s filters (:meth:`Instrument.violation`: lot, minimum
    quantity, tick, minimum notional at the limit price, or for a market order at the ``last``
    price), or None."""
    if cmd.order_type == "limit":
        if cmd.price is None:
            return "limit order without a price"
        return inst.violation(cmd.qty, cmd.price)
    problem = inst.violation(cmd.qty, None)
    if problem is not None:
        return problem
    if last is None:
        return f"no market price for {cmd.symbol}"
    notional = cmd.qty * last
    if notional < inst.min_notional:
        return f"notional {notional} is below minimum notional {inst.min_notional}"
    return None
