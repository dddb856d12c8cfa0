"""A scripted Case B unwind, loadable from a config as ``tests.support.caseb:Unwinder``.

It stands in for the rebalancer and the router of a session without a venue: at the BTC spot quote
marked by a bid size of :data:`TRIGGER_SIZE` it decides the unwind (a reduce-only market sell of
the 0.75 BTC perp long, a market buy of 0.75 BTC spot), and it sends every intent the risk actor
approves as a market order (client order id ``c-<intent id>``). The venue's answers are the test's
inputs."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from ballast.engine.kernel.actor import Actor
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import Clock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.events import (
    AccountKind,
    BalanceUpdated,
    InstrumentsLoaded,
    IntentApproved,
    Message,
    OrderIntent,
    PositionUpdated,
    QuoteTick,
    RebalanceDecided,
)
from ballast.engine.kernel.instruments import binance_defaults

TRIGGER_SIZE: Final = Decimal(7)
SPOT: Final = "BTC/USDT"
PERP: Final = "BTC/USDT:USDT"
QTY: Final = Decimal("0.75")


class Unwinder(Actor):
    """Decides the unwind once (at the marked quote) and sends what is approved."""

    def __init__(self, bus: Bus, clock: Clock) -> None:
        super().__init__(bus, clock)
        self.decided = 0
        self.subscribe(QuoteTick, self.on_quote)
        self.subscribe(IntentApproved, self.on_approved)

    def on_quote(self, quote: QuoteTick) -> None:
        if quote.symbol != SPOT or quote.bid_size != TRIGGER_SIZE:
            return
        self.decided += 1
        decision_id = f"unwind-{self.decided}"
        intents = (
            OrderIntent(
                intent_id=f"{decision_id}-0",
                symbol=PERP,
                side="sell",
                qty=QTY,
                order_type="market",
                price=None,
                reduce_only=True,
                reason="case B: close",
            ),
            OrderIntent(
                intent_id=f"{decision_id}-1",
                symbol=SPOT,
                side="buy",
                qty=QTY,
                order_type="market",
                price=None,
                reduce_only=False,
                reason="case B: buy",
            ),
        )
        self.publish(
            RebalanceDecided(
                ts_event=quote.ts_event,
                ts_init=self.now(),
                decision_id=decision_id,
                trigger="band",
                mode="overlay",
                regime="normal",
                reasoning="scripted case B unwind",
                assets=(),
                intents=intents,
            )
        )

    def on_approved(self, approved: IntentApproved) -> None:
        self.publish(market_order_for(approved.intent, approved.ts_event, self.now()))


def market_order_for(intent: OrderIntent, ts_event: int, ts_init: int) -> SubmitOrder:
    """The market order of ``intent``, client order id ``c-<intent id>``."""
    return SubmitOrder(
        ts_event=ts_event,
        ts_init=ts_init,
        intent_id=intent.intent_id,
        client_order_id=f"c-{intent.intent_id}",
        symbol=intent.symbol,
        side=intent.side,
        order_type="market",
        qty=intent.qty,
        price=None,
        reduce_only=intent.reduce_only,
        post_only=False,
        time_in_force="GTC",
    )


def account_messages(
    ts: int, usdt: str, spot_btc: str, perps: tuple[tuple[str, Decimal, Decimal, Decimal], ...]
) -> list[Message]:
    """A venue's account for BTC and ETH: the instruments, USDT ``usdt`` (futures wallet), BTC
    spot ``spot_btc``, ETH spot 20, and each perp ``(symbol, qty, entry, mark)`` with a non-zero
    quantity."""
    out: list[Message] = [
        InstrumentsLoaded(
            ts_event=ts,
            ts_init=ts,
            venue="sim",
            instruments=tuple(binance_defaults(["BTC", "ETH"])),
        )
    ]
    balances: tuple[tuple[AccountKind, str, str], ...] = (
        ("futures", "USDT", usdt),
        ("spot", "BTC", spot_btc),
        ("spot", "ETH", "20"),
    )
    for account, asset, amount in balances:
        out.append(
            BalanceUpdated(
                ts_event=ts,
                ts_init=ts,
                account=account,
                asset=asset,
                free=Decimal(amount),
                locked=Decimal(0),
            )
        )
    for symbol, qty, entry, mark in perps:
        if qty:
            out.append(
                PositionUpdated(
                    ts_event=ts,
                    ts_init=ts,
                    symbol=symbol,
                    qty=qty,
                    entry_price=entry,
                    mark_price=mark,
                    unrealized_pnl=qty * (mark - entry),
                    margin=Decimal(0),
                    liquidation_price=None,
                )
            )
    return out
