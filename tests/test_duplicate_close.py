"""Issue 12, point 8: the risk check refuses a reduce-only order that would close, a second time,
a position another reduce-only order in flight already closes (the demo's kill switch case: an
approved deleveraging sell and the kill switch's close-everything order both sold 0.853 BTC)."""

from __future__ import annotations

from decimal import Decimal

from ballast.engine.kernel.clock import SimulatedClock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import BandsConfig, RiskConfig
from ballast.engine.kernel.events import OrderCanceled, OrderFilled, OrderIntent, PortfolioSnapshot
from ballast.engine.kernel.instruments import binance_defaults
from ballast.engine.trading.budget import RiskBudget
from ballast.engine.trading.pretrade import REASON_CODES, Approved, Verdict, Vetoed, check
from tests.conftest import START_NS
from tests.test_pretrade import intent, snapshot
from tests.test_risk_actor import approved, desk_on, vetoed

D = Decimal
PERP = "BTC/USDT:USDT"
MARK = D(40_000)


def long_book(qty: str = "0.853") -> PortfolioSnapshot:
    """A BTC perp long of ``qty`` on 60,000 USDT."""
    return snapshot(D(60_000), {"BTC": (D(0), MARK, D(qty), MARK)})


def submit(intent_id: str, qty: str) -> SubmitOrder:
    return SubmitOrder(
        ts_event=START_NS,
        ts_init=START_NS,
        intent_id=intent_id,
        client_order_id=f"c-{intent_id}",
        symbol=PERP,
        side="sell",
        order_type="market",
        qty=D(qty),
        price=None,
        reduce_only=True,
        post_only=False,
        time_in_force="GTC",
    )


def _check(order: OrderIntent, reducing: dict[str, Decimal]) -> Verdict:
    [perp] = [i for i in binance_defaults(["BTC"]) if i.symbol == PERP]
    risk = RiskConfig()
    return check(
        order,
        instrument=perp,
        snapshot=long_book(),
        mark=MARK,
        mark_age_ns=0,
        budget=RiskBudget.derive(risk, BandsConfig(), "normal"),
        mandate=risk,
        reducing=reducing,
    )


def _qty(verdict: Verdict) -> Decimal:
    assert isinstance(verdict, Approved), verdict
    return verdict.intent.qty


def test_the_pure_check_cuts_or_vetoes_against_reduce_only_orders_in_flight() -> None:
    close = intent(PERP, "sell", "0.853", reduce_only=True)
    assert "reduce_in_flight" in REASON_CODES
    assert _qty(_check(close, {})) == D("0.853")
    duplicate = _check(close, {PERP: D("-0.853")})
    assert isinstance(duplicate, Vetoed)
    assert duplicate.reason == "reduce_in_flight"
    assert "already in flight" in duplicate.detail
    rest = _check(close, {PERP: D("-0.5")})
    assert _qty(rest) == D("0.353")
    assert isinstance(rest, Approved)
    assert rest.cut_reason.startswith("reduce_in_flight: 0.853 → 0.353")
    # an in-flight buy of the perp, or another symbol's close, leaves the room alone
    assert _qty(_check(close, {PERP: D("0.4"), "ETH/USDT:USDT": D("-5")})) == D("0.853")


async def test_the_kill_switch_close_after_an_approved_reduce_is_vetoed(
    sim_clock: SimulatedClock,
) -> None:
    desk = desk_on(sim_clock)
    async with desk.risk:
        desk.given(long_book())
        desk.decide(intent(PERP, "sell", "0.853", reduce_only=True))  # the deleveraging sell
        assert approved(desk.last()).intent.qty == D("0.853")
        desk.decide(intent(PERP, "sell", "0.853", reduce_only=True))  # the kill switch's close
        veto = vetoed(desk.last(), "reduce_in_flight")
        assert veto.detail.startswith("position 0.853, reduce-only sell of 0.853 already in flight")


async def test_only_the_rest_of_a_partly_closed_position_passes_and_ended_orders_free_it(
    sim_clock: SimulatedClock,
) -> None:
    desk = desk_on(sim_clock)
    async with desk.risk:
        desk.given(long_book())
        desk.decide(intent(PERP, "sell", "0.5", reduce_only=True))
        first = approved(desk.last()).intent.intent_id
        desk.decide(intent(PERP, "sell", "0.853", reduce_only=True))
        second = approved(desk.last())
        assert second.intent.qty == D("0.353")
        assert second.cut_reason.startswith("reduce_in_flight")
        # both orders sent; the first is canceled: its quantity is free again
        desk.bus.publish(submit(first, "0.5"))
        desk.bus.publish(submit(second.intent.intent_id, "0.353"))
        desk.bus.publish(
            OrderCanceled(
                ts_event=START_NS,
                ts_init=START_NS,
                client_order_id=f"c-{first}",
                symbol=PERP,
                reason="test",
            )
        )
        desk.decide(intent(PERP, "sell", "0.853", reduce_only=True))
        assert approved(desk.last()).intent.qty == D("0.5")
        # the second fills and the book shows the smaller position: nothing is double counted
        desk.bus.publish(
            OrderFilled(
                ts_event=START_NS,
                ts_init=START_NS,
                client_order_id=f"c-{second.intent.intent_id}",
                venue_order_id="v2",
                trade_id="t2",
                symbol=PERP,
                side="sell",
                qty=D("0.353"),
                price=MARK,
                fee=D(0),
                fee_asset="USDT",
                liquidity="taker",
            )
        )
        assert desk.risk.reducing_in_flight() == {PERP: D("-0.5")}
