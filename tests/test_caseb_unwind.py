"""Issue 11: a Case B cycle must not halt a live run.

A Case B unwind closes a perp long and buys spot with the proceeds, two orders sent together. Live,
the spot buy's fill is often booked before the perp close's: for a moment the USDT that carried the
long is spent while the long is still open, so it looks near liquidation, although the reduce-only
close in flight takes it away a moment later. The risk actor judges the book with the approved
reduce-only orders in flight as filled at the mark; an exposure such an order removes is not a
breach until the order ends unfilled.

The setup is the engine's own actors on a bus (a Portfolio with its Ledger books the fills and
publishes the snapshots, the RiskManager with the default risk settings), the venue's order events
published as a venue reports them.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TypeVar

import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_SECOND, SimulatedClock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import BandsConfig, RiskConfig
from ballast.engine.kernel.events import (
    DeleverageRequired,
    IntentApproved,
    KillSwitchTriggered,
    MarkPriceUpdated,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderVetoed,
    QuoteTick,
    RebalanceDecided,
    Side,
)
from ballast.engine.trading.measures import Book
from ballast.engine.trading.portfolio import Portfolio
from ballast.engine.trading.risk import RiskManager
from tests.conftest import START_NS
from tests.support.caseb import account_messages, market_order_for

D = Decimal
S = NS_PER_SECOND
M = TypeVar("M", bound=Message)
SPOT = "BTC/USDT"
PERP = "BTC/USDT:USDT"
ETH_PERP = "ETH/USDT:USDT"
ETH = D(2000)


class Desk:
    """A Portfolio and a RiskManager (default risk settings) on one bus."""

    def __init__(self, clock: SimulatedClock, risk: RiskConfig | None = None) -> None:
        self.clock = clock
        self.bus = Bus(clock)
        self.portfolio = Portfolio(self.bus, clock, min_snapshot_interval_ns=0)
        self.risk = RiskManager(self.bus, clock, risk=risk or RiskConfig(), bands=BandsConfig())
        self.seen: list[Message] = []
        self.bus.subscribe_all(self.seen.append)
        self.sent: dict[str, SubmitOrder] = {}
        self.eth_perp = D(0)

    def of(self, kind: type[M]) -> list[M]:
        return [m for m in self.seen if isinstance(m, kind)]

    def now(self) -> int:
        return self.clock.now_ns()

    def publish(self, message: Message) -> None:
        self.bus.publish(message)

    def account(
        self, usdt: str, spot_btc: str, perp_qty: str, entry: str, mark: str, eth_perp: str = "0"
    ) -> None:
        """The venue's account (ETH spot 20 and, if ``eth_perp``, an ETH perp long of that
        quantity entered at 2,000, ETH's price throughout), then the prices at ``mark``."""
        self.eth_perp = D(eth_perp)
        positions = ((PERP, D(perp_qty), D(entry), D(mark)), (ETH_PERP, self.eth_perp, ETH, ETH))
        for message in account_messages(self.now(), usdt, spot_btc, positions):
            self.publish(message)
        self.prices(mark)

    def prices(self, price: str) -> None:
        now, p, e = self.now(), D(price), ETH
        if self.eth_perp:
            self.publish(
                MarkPriceUpdated(
                    ts_event=now,
                    ts_init=now,
                    symbol=ETH_PERP,
                    mark=e,
                    index=e,
                    funding_rate=D("0.0001"),
                    next_funding_ns=now + 8 * 3600 * S,
                )
            )
        self.publish(
            QuoteTick(
                ts_event=now,
                ts_init=now,
                symbol="ETH/USDT",
                bid=e,
                ask=e,
                bid_size=D(1),
                ask_size=D(1),
            )
        )
        self.publish(
            QuoteTick(
                ts_event=now, ts_init=now, symbol=SPOT, bid=p, ask=p, bid_size=D(1), ask_size=D(1)
            )
        )
        self.publish(
            MarkPriceUpdated(
                ts_event=now,
                ts_init=now,
                symbol=PERP,
                mark=p,
                index=p,
                funding_rate=D("0.0001"),
                next_funding_ns=now + 8 * 3600 * S,
            )
        )

    def decide(self, decision_id: str, *intents: OrderIntent) -> None:
        now = self.now()
        self.publish(
            RebalanceDecided(
                ts_event=now,
                ts_init=now,
                decision_id=decision_id,
                trigger="band",
                mode="overlay",
                regime=self.risk.budget.regime,
                reasoning="test",
                assets=(),
                intents=intents,
            )
        )

    def send(self, approved: IntentApproved) -> str:
        now = self.now()
        order = market_order_for(approved.intent, now, now)
        coid = order.client_order_id
        self.sent[coid] = order
        self.publish(order)
        self.publish(
            OrderAccepted(
                ts_event=now,
                ts_init=now,
                client_order_id=coid,
                venue_order_id=f"v-{coid}",
                symbol=order.symbol,
            )
        )
        return coid

    def fill(self, coid: str, price: str) -> None:
        order, now = self.sent[coid], self.now()
        self.publish(
            OrderFilled(
                ts_event=now,
                ts_init=now,
                client_order_id=coid,
                venue_order_id=f"v-{coid}",
                trade_id=f"t-{coid}",
                symbol=order.symbol,
                side=order.side,
                qty=order.qty,
                price=D(price),
                fee=D(0),
                fee_asset="USDT",
                liquidity="taker",
            )
        )


def unwind(qty: str, spot_qty: str) -> tuple[OrderIntent, OrderIntent]:
    close = OrderIntent(
        intent_id="d1-0",
        symbol=PERP,
        side="sell",
        qty=D(qty),
        order_type="market",
        price=None,
        reduce_only=True,
        reason="case B: close",
    )
    buy = OrderIntent(
        intent_id="d1-1",
        symbol=SPOT,
        side="buy",
        qty=D(spot_qty),
        order_type="market",
        price=None,
        reduce_only=False,
        reason="case B: buy",
    )
    return close, buy


def book_open(desk: Desk) -> None:
    """USDT 33,200, ETH spot 20 at 2,000, BTC spot 0.1 and a BTC perp long of 0.75 entered at
    36,000, marked at 40,000 (NAV 80,200). Unwinding it (close the long, buy 0.75 BTC spot)
    passes every pre-trade check at the default settings: with the long still open the spot buy
    would leave it 20.3 % from liquidation (31,860.7), above the deleveraging level of 20 %."""
    desk.account("33200", "0.1", "0.75", "36000", "40000")
    desk.clock.advance_to(START_NS + S)


async def spot_booked_first(desk: Desk, cash: str = "3200.00", liquidation: str = "31860.7") -> str:
    """Decide the unwind, send both orders, book the spot buy's fill first and let the mark fall
    6.5 % while the close is still working; the close's client order id."""
    desk.decide("d1", *unwind("0.75", "0.75"))
    approved = desk.of(IntentApproved)
    assert [(a.intent.symbol, a.intent.qty, a.cut_reason) for a in approved] == [
        (PERP, D("0.75"), ""),
        (SPOT, D("0.75"), ""),
    ]
    close, buy = (desk.send(a) for a in approved)
    desk.fill(buy, "40000")
    desk.clock.advance_to(START_NS + 2 * S)
    desk.prices("37400")
    snapshot = desk.risk.snapshot
    assert snapshot is not None
    assert snapshot.cash == D(cash)  # the long's collateral is spent, the long still open
    # without the close in flight: below the kill switch's 15 % from liquidation
    [btc, *_] = desk.risk.liquidations()
    assert (btc.qty, btc.price) == (D("0.75"), D(liquidation))
    assert btc.distance is not None
    assert btc.distance < D("0.15")
    return close


async def test_a_case_b_unwind_whose_spot_fill_is_booked_first_does_not_halt(
    sim_clock: SimulatedClock,
) -> None:
    desk = Desk(sim_clock)
    async with desk.portfolio, desk.risk:
        book_open(desk)
        close = await spot_booked_first(desk)
        assert desk.of(KillSwitchTriggered) == []
        assert desk.of(DeleverageRequired) == []
        desk.fill(close, "37400")
        sim_clock.advance_to(START_NS + 3 * S)
        desk.prices("37000")
    assert desk.of(KillSwitchTriggered) == []
    assert desk.of(DeleverageRequired) == []
    snapshot = desk.risk.snapshot
    assert snapshot is not None
    [btc, _] = snapshot.assets
    assert (btc.spot_qty, btc.perp_qty) == (D("0.85"), D(0))
    assert desk.risk.liquidations() == []


async def test_the_close_refused_halts_at_once(sim_clock: SimulatedClock) -> None:
    """The venue refuses the close: the long stays, its collateral spent. A genuine breach: the
    kill switch trips at the refusal, without waiting for the next price."""
    desk = Desk(sim_clock)
    async with desk.portfolio, desk.risk:
        book_open(desk)
        close = await spot_booked_first(desk)
        assert desk.of(KillSwitchTriggered) == []
        refused_at = START_NS + 2 * S + 1
        sim_clock.advance_to(refused_at)
        desk.publish(
            OrderRejected(
                ts_event=refused_at,
                ts_init=refused_at,
                client_order_id=close,
                symbol=PERP,
                reason="-2019 Margin is insufficient.",
            )
        )
        [trip] = desk.of(KillSwitchTriggered)
    assert (trip.ts_event, trip.reason) == (refused_at, "liquidation_distance")
    assert trip.detail == (
        "BTC perp qty 0.75 mark 37400 liquidation 31860.7: distance 0.1481 < min 0.15"
    )


async def test_a_close_too_small_to_lift_the_breach_still_halts(sim_clock: SimulatedClock) -> None:
    """Only what the closing orders in flight take away is credited: a close of a third of the
    long leaves the rest below the kill switch's distance, and the switch trips. The rest's
    liquidation price is the one the book has once that close has filled at the mark."""
    desk = Desk(sim_clock)
    async with desk.portfolio, desk.risk:
        book_open(desk)
        desk.decide("d1", *unwind("0.25", "0.75"))
        close, buy = (desk.send(a) for a in desk.of(IntentApproved))
        desk.fill(buy, "40000")
        sim_clock.advance_to(START_NS + 2 * S)
        desk.prices("35000")
        [trip] = desk.of(KillSwitchTriggered)
        settled = desk.risk.settled_book()
        assert settled is not None
        [expected] = settled.liquidations()
        desk.fill(close, "35000")  # at the mark: the book the check counted on
        [booked] = desk.risk.liquidations()
    assert trip.reason == "liquidation_distance"
    assert trip.detail.endswith(" once the closing orders in flight fill")
    assert trip.detail.startswith(
        f"BTC perp qty {expected.qty} mark 35000 liquidation {expected.price}:"
    )
    assert (booked.qty, booked.price) == (expected.qty, expected.price) == (D("0.5"), D("30220.8"))


async def test_a_resting_reduce_only_limit_order_is_not_counted(sim_clock: SimulatedClock) -> None:
    """A reduce-only limit order may rest on the book: it is not a close a moment away."""
    desk = Desk(sim_clock)
    async with desk.portfolio, desk.risk:
        book_open(desk)
        close, buy = unwind("0.75", "0.75")
        limit = msgspec.structs.replace(close, order_type="limit", price=D("40000"))
        desk.decide("d1", limit, buy)
        assert [a.intent.qty for a in desk.of(IntentApproved)] == [D("0.75"), D("0.75")]
        _, buy_id = (desk.send(a) for a in desk.of(IntentApproved))
        desk.fill(buy_id, "40000")
        sim_clock.advance_to(START_NS + 2 * S)
        desk.prices("37400")
    [trip] = desk.of(KillSwitchTriggered)
    assert trip.reason == "liquidation_distance"


async def test_no_deleveraging_is_asked_of_another_perp_for_the_spent_collateral(
    sim_clock: SimulatedClock,
) -> None:
    """With an ETH perp long of 10 beside it, the same moment (spot booked, BTC 6.5 % lower, the
    close working) shows margin usage 1.105 (initial 4,805 on a margin balance of 4,350) and
    would ask to cut the ETH perp, which has no order in flight. Once the close has filled, the
    usage is 0.46: nothing to reduce, and nothing is asked."""
    desk = Desk(sim_clock)
    async with desk.portfolio, desk.risk:
        desk.account("33300", "0.1", "0.75", "36000", "40000", eth_perp="10")
        sim_clock.advance_to(START_NS + S)
        close = await spot_booked_first(desk, cash="3300.00", liquidation="31880.8")
        sim_clock.advance_to(START_NS + 3 * S)  # the snapshot at the new price
        snapshot = desk.risk.snapshot
        assert snapshot is not None
        assert (snapshot.trigger, snapshot.ts_event) == ("price", START_NS + 2 * S)
        book = desk.risk.book()
        assert book is not None
        assert book.margin_usage() == D(4805) / D("4350.00")
        settled = desk.risk.settled_book()
        assert settled is not None
        assert settled.margin_usage() == D(2000) / D("4350.00")
        assert desk.of(KillSwitchTriggered) == []
        assert desk.of(DeleverageRequired) == []
        desk.fill(close, "37400")
    assert desk.of(KillSwitchTriggered) == []
    assert desk.of(DeleverageRequired) == []


async def _settled_then_booked(
    usdt: Decimal, qty: Decimal, entry: Decimal, mark: Decimal, close: Decimal
) -> tuple[Book, Book]:
    """The risk actor's book with a close of ``close`` in flight, settled; and its book once the
    Portfolio has booked that close filled at the mark (no fee)."""
    clock = SimulatedClock(START_NS)
    desk = Desk(clock)
    async with desk.portfolio, desk.risk:
        desk.account(str(usdt), "0", str(qty), str(entry), str(mark))
        clock.advance_to(START_NS + S)
        side: Side = "sell" if qty > 0 else "buy"
        order = OrderIntent(
            intent_id="d1-0",
            symbol=PERP,
            side=side,
            qty=close,
            order_type="market",
            price=None,
            reduce_only=True,
            reason="close",
        )
        desk.decide("d1", order)
        [approved] = desk.of(IntentApproved)
        coid = desk.send(approved)
        settled = desk.risk.settled_book()
        desk.fill(coid, str(mark))
        booked = desk.risk.book()
    assert settled is not None
    assert booked is not None
    return settled, booked


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    usdt=st.decimals("3000", "60000", places=2),
    qty=st.decimals("-1.5", "1.5", places=3).filter(lambda q: abs(q) >= D("0.01")),
    entry=st.decimals("30000", "50000", places=1),
    mark=st.decimals("30000", "50000", places=1),
    share=st.decimals("0.1", "1", places=2),
)
def test_the_settled_book_is_the_book_the_close_leaves(
    usdt: Decimal, qty: Decimal, entry: Decimal, mark: Decimal, share: Decimal
) -> None:
    """What the checks count on is exactly what the ledger books when the close fills at the mark:
    NAV, margin balance and usage, every perp's quantity and liquidation price."""
    close = (abs(qty) * share).quantize(D("0.001"))
    assume(close * mark >= 100)  # the perp's minimum notional
    settled, booked = asyncio.run(_settled_then_booked(usdt, qty, entry, mark, close))
    assert settled.nav() == booked.nav()
    assert settled.margin_balance() == booked.margin_balance()
    assert settled.margin_usage() == booked.margin_usage()
    assert settled.holdings() == booked.holdings()
    assert [(x.qty, x.price) for x in settled.liquidations()] == [
        (x.qty, x.price) for x in booked.liquidations()
    ]


# ---------------------------------------------------------------------------- the pre-trade check
#
# The pre-trade liquidation guard (no order may bring a perp below the deleveraging distance)
# judges the same book as the kill switch: a reduce-only market close approved and still in
# flight counts as filled at the mark. Otherwise the spot buy of a Case B unwind, checked right
# after its close was approved in the same decision, is judged with the long still open and its
# collateral spent, and cut or vetoed for a breach the close removes.

TIGHT_USDT = "32400"
"""With this much USDT (NAV 79,400) the unwind's spot buy of 0.75 BTC, judged with the long still
open, would leave the long 17.7 % from liquidation (32,931.7), below the deleveraging level of
20 %: the guard would cut the buy to 0.73259."""


def buy_verdicts(desk: Desk) -> list[tuple[str, Decimal, str]]:
    return [
        (a.intent.symbol, a.intent.qty, a.cut_reason.split(":")[0]) for a in desk.of(IntentApproved)
    ]


async def test_the_guard_cuts_the_spot_buy_while_the_long_stays(sim_clock: SimulatedClock) -> None:
    """Without a close in flight the guard bites: the spot buy alone is cut (the other tests'
    reference: the long open, its collateral spent)."""
    desk = Desk(sim_clock)
    async with desk.portfolio, desk.risk:
        desk.account(TIGHT_USDT, "0.1", "0.75", "36000", "40000")
        sim_clock.advance_to(START_NS + S)
        _, buy = unwind("0.75", "0.75")
        desk.decide("d1", buy)
    assert buy_verdicts(desk) == [(SPOT, D("0.73259"), "liquidation_distance")]


async def test_the_spot_buy_of_a_case_b_unwind_counts_its_close_in_flight(
    sim_clock: SimulatedClock,
) -> None:
    """The close and the buy in one decision: the buy is checked after the close was approved,
    on the book the close leaves (no perp left): it passes uncut, and nothing else fires."""
    desk = Desk(sim_clock)
    async with desk.portfolio, desk.risk:
        desk.account(TIGHT_USDT, "0.1", "0.75", "36000", "40000")
        sim_clock.advance_to(START_NS + S)
        desk.decide("d1", *unwind("0.75", "0.75"))
    assert buy_verdicts(desk) == [(PERP, D("0.75"), ""), (SPOT, D("0.75"), "")]
    assert desk.of(OrderVetoed) == []
    assert desk.of(KillSwitchTriggered) == []


async def test_only_what_the_close_takes_away_is_counted(sim_clock: SimulatedClock) -> None:
    """A close of a third of the long: the buy is judged with the other two thirds open, at the
    cash the close's realised PnL leaves; still cut, by less than with the whole long open."""
    desk = Desk(sim_clock)
    async with desk.portfolio, desk.risk:
        desk.account(TIGHT_USDT, "0.1", "0.75", "36000", "40000")
        sim_clock.advance_to(START_NS + S)
        desk.decide("d1", *unwind("0.25", "0.8"))
    [close, (symbol, qty, code)] = buy_verdicts(desk)
    assert close == (PERP, D("0.25"), "")
    assert (symbol, code) == (SPOT, "liquidation_distance")
    assert D("0.73259") < qty < D("0.8")


@pytest.mark.parametrize("end", ["rejected", "canceled", "filled", "working"])
async def test_the_book_goes_back_when_the_close_ends_unfilled(
    sim_clock: SimulatedClock, end: str
) -> None:
    """The close decided and sent alone, the buy in the next decision: while the close works or
    once it filled, the buy passes; refused or canceled, the long stays and the buy is cut as if
    there had never been a close."""
    desk = Desk(sim_clock)
    async with desk.portfolio, desk.risk:
        desk.account(TIGHT_USDT, "0.1", "0.75", "36000", "40000")
        sim_clock.advance_to(START_NS + S)
        close, buy = unwind("0.75", "0.75")
        desk.decide("d1", close)
        [approved] = desk.of(IntentApproved)
        coid = desk.send(approved)
        now = desk.now()
        if end == "rejected":
            desk.publish(
                OrderRejected(
                    ts_event=now, ts_init=now, client_order_id=coid, symbol=PERP, reason="-2022"
                )
            )
        elif end == "canceled":
            desk.publish(
                OrderCanceled(
                    ts_event=now, ts_init=now, client_order_id=coid, symbol=PERP, reason="expired"
                )
            )
        elif end == "filled":
            desk.fill(coid, "40000")
        assert (desk.risk.closing_in_flight() != {}) is (end == "working")
        desk.decide("d2", buy)
    expected = (SPOT, D("0.73259"), "liquidation_distance")
    if end in ("working", "filled"):
        expected = (SPOT, D("0.75"), "")
    assert buy_verdicts(desk)[1:] == [expected]


async def test_a_resting_reduce_only_limit_close_is_not_counted(sim_clock: SimulatedClock) -> None:
    """A reduce-only limit order may rest: the buy is judged with the long open."""
    desk = Desk(sim_clock)
    async with desk.portfolio, desk.risk:
        desk.account(TIGHT_USDT, "0.1", "0.75", "36000", "40000")
        sim_clock.advance_to(START_NS + S)
        close, buy = unwind("0.75", "0.75")
        desk.decide("d1", msgspec.structs.replace(close, order_type="limit", price=D("40000")), buy)
    assert buy_verdicts(desk)[1:] == [(SPOT, D("0.73259"), "liquidation_distance")]


async def test_an_order_that_is_not_reduce_only_is_not_counted(sim_clock: SimulatedClock) -> None:
    """A plain market sell of the perp would take the long away as well if it filled, but it may
    open a short instead (nothing bounds it to the position): only reduce-only closes count, so
    the buy is judged with the long open."""
    desk = Desk(sim_clock)
    async with desk.portfolio, desk.risk:
        desk.account(TIGHT_USDT, "0.1", "0.75", "36000", "40000")
        sim_clock.advance_to(START_NS + S)
        close, buy = unwind("0.75", "0.75")
        desk.decide("d1", msgspec.structs.replace(close, reduce_only=False), buy)
    assert buy_verdicts(desk) == [
        (PERP, D("0.75"), ""),
        (SPOT, D("0.73259"), "liquidation_distance"),
    ]


async def test_the_guard_judges_at_the_marks_the_kill_switch_sees(
    sim_clock: SimulatedClock,
) -> None:
    """BTC falls from 40,000 to 38,000 and the buy is decided before the next snapshot. Judged at
    the snapshot's mark, the whole buy would pass (the long 22.0 % from liquidation); at the mark
    the kill switch and the deleveraging read, it leaves the long 17.9 % away, and the next
    snapshot would ask to deleverage it. The guard cuts the buy to what keeps 20 % at that mark:
    once it has filled, nothing asks to deleverage."""
    desk = Desk(sim_clock)
    async with desk.portfolio, desk.risk:
        desk.account("32200", "0.1", "0.75", "36000", "40000")
        sim_clock.advance_to(START_NS + S)
        desk.prices("38000")
        snapshot = desk.risk.snapshot
        assert snapshot is not None
        assert snapshot.assets[0].perp_price == D(40000)  # the snapshot is a price behind
        _, buy = unwind("0.75", "0.75")
        desk.decide("d1", buy)
        [(symbol, qty, code)] = buy_verdicts(desk)
        assert (symbol, code) == (SPOT, "liquidation_distance")
        desk.fill(desk.send(desk.of(IntentApproved)[0]), "38000")
        sim_clock.advance_to(START_NS + 2 * S)
        desk.prices("38000")
        sim_clock.advance_to(START_NS + 3 * S)
        [btc, *_] = desk.risk.liquidations()
    assert D("0.6") < qty < D("0.75")
    assert btc.distance is not None
    assert D("0.2") <= btc.distance < D("0.201")
    assert desk.of(DeleverageRequired) == []
    assert desk.of(KillSwitchTriggered) == []


async def test_the_margin_cap_still_counts_the_close_at_its_worst(
    sim_clock: SimulatedClock,
) -> None:
    """Only the liquidation guard counts the close as filled. The two orders go out together and
    either may be filled first; the buy must be one the venue accepts with the long still open, so
    the margin cap keeps counting the close at its worst: with USDT 29,000 (margin balance 32,000,
    the long's initial margin 3,000) the buy is cut to 0.725, which keeps margin usage at its cap
    of 1 with the long open. The guard, on the book the close leaves, has no perp to protect."""
    desk = Desk(sim_clock)
    async with desk.portfolio, desk.risk:
        desk.account("29000", "0.1", "0.75", "36000", "40000")
        sim_clock.advance_to(START_NS + S)
        desk.decide("d1", *unwind("0.75", "0.75"))
    assert buy_verdicts(desk) == [(PERP, D("0.75"), ""), (SPOT, D("0.725"), "max_margin_usage")]
