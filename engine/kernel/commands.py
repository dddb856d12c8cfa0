"""Commands: what the engine asks a venue to do, in the imperative.

Commands are journaled like events (durably, before they reach a venue) and share their
schema-evolution rules (see :mod:`ballast.engine.kernel.events`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from ballast.engine.kernel.events import Message, OrderType, Role, Side, Stream, TimeInForce


class Command(Message, frozen=True, tag=True, array_like=True):
    stream: ClassVar[Stream] = "command"
    role: ClassVar[Role] = "output"


class SubmitOrder(Command, frozen=True, tag="SubmitOrder", array_like=True):
    """Place an order. ``client_order_id`` is deterministic per intent: a resend is idempotent."""

    intent_id: str
    client_order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    qty: Decimal
    price: Decimal | None
    reduce_only: bool
    post_only: bool
    time_in_force: TimeInForce


class CancelOrder(Command, frozen=True, tag="CancelOrder", array_like=True):
    client_order_id: str
    symbol: str
    reason: str


CommandData = SubmitOrder | CancelOrder
