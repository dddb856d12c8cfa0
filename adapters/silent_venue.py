"""SilentVenue: the venue replay injects. It accepts every command and reports nothing.

During replay the journal already holds everything the real venue reported (submissions, fills,
balances, status answers) and re-feeds it; a venue that spoke would report it twice. So
``submit`` and ``cancel`` only record the command, ``order_status`` knows no order, there are no
open orders and no account, and the instruments are the ones it was given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ballast.engine.kernel.commands import CancelOrder, SubmitOrder
from ballast.engine.kernel.events import Message
from ballast.engine.kernel.instruments import Instrument
from ballast.engine.trading.venue import OrderStatus, Venue


class SilentVenue(Venue):
    """Accepts commands, emits nothing. ``submitted`` and ``canceled`` keep what it was sent."""

    name = "silent"

    def __init__(self, instruments: Mapping[str, Instrument] | None = None) -> None:
        super().__init__()
        self._instruments = dict(instruments or {})
        self.submitted: list[SubmitOrder] = []
        self.canceled: list[CancelOrder] = []

    async def instruments(self) -> Mapping[str, Instrument]:
        return dict(self._instruments)

    async def submit(self, order: SubmitOrder) -> None:
        self.submitted.append(order)

    async def cancel(self, order: CancelOrder) -> None:
        self.canceled.append(order)

    async def order_status(self, client_order_id: str, symbol: str) -> OrderStatus | None:
        return None

    async def open_orders(self) -> Sequence[OrderStatus]:
        return []

    async def account(self) -> Sequence[Message]:
        return []
