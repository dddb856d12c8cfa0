"""Leverage as the mandate defines it (issue 16, item 4): the pre-trade check caps Σ |net exposure|
/ NAV (``max_net_leverage``), with gross notional (``max_gross_leverage``) and margin usage
(``max_margin_usage``) as separate, named exchange-side limits; an order that reduces net exposure
or margin usage is never vetoed by a cap."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TypedDict

import msgspec
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from ballast.engine.kernel.codec import decode, encode
from ballast.engine.kernel.config import BandsConfig, RiskConfig
from ballast.engine.kernel.events import OrderIntent, PortfolioSnapshot, Regime, RiskBudgetChanged
from ballast.engine.kernel.instruments import base_of
from ballast.engine.trading.budget import RiskBudget
from ballast.engine.trading.margin import (
    PerpHolding,
    account_liquidation_price,
    default_margin_table,
)
from ballast.engine.trading.pretrade import REASON_CODES, Vetoed
from tests.test_pretrade import (
    INSTRUMENTS,
    SYMBOLS,
    _mark_of,
    approved,
    books,
    intent,
    net_ends,
    reduces_net,
    run,
    snapshot,
    vetoed,
    worst_net,
)

D = Decimal
MANDATE = RiskConfig(max_asset_weight=D(2))


class Guard(TypedDict):
    min_liquidation_distance: Decimal
    deleverage_liquidation_distance: Decimal


NO_GUARD: Guard = {"min_liquidation_distance": D(0), "deleverage_liquidation_distance": D(0)}
STRESSED = RiskBudget.derive(MANDATE, BandsConfig(), "stressed")


def hedger_book() -> PortfolioSnapshot:
    """The conservative hedger's book: NAV 100,000 = BTC spot 2 at 40,000 (80 %) + USDT 20,000."""
    return snapshot(D(20_000), {"BTC": (D(2), D(40_000), D(0), D(40_000))})


# ------------------------------------------------------------- reproduction of item 4


def test_a_1_to_1_hedge_passes_the_stressed_cap_uncut() -> None:
    assert (STRESSED.max_net_leverage, STRESSED.max_gross_leverage) == (D("1.5"), D("1.5"))
    hedge = intent("BTC/USDT:USDT", "sell", "2")  # gross 1.6x, net 0x after it

    verdict = approved(run(hedge, hedger_book(), budget=STRESSED))

    assert verdict.intent.qty == D(2)
    assert verdict.cut_reason == ""


def test_a_hedge_that_would_overshoot_is_cut_at_the_net_cap_on_the_other_side() -> None:
    wide = RiskConfig(
        max_asset_weight=D(2), max_gross_leverage=D(10), max_margin_usage=D(1), **NO_GUARD
    )
    budget = RiskBudget.derive(wide, BandsConfig(), "stressed")  # net 1.5x, gross 5x
    # net 80,000 long; a sale of 5 BTC perp ends 120,000 short: within the 150,000 of the cap
    five = approved(
        run(intent("BTC/USDT:USDT", "sell", "5"), hedger_book(), budget=budget, mandate=wide)
    )
    assert (five.intent.qty, five.cut_reason) == (D(5), "")
    # 6 BTC would end 160,000 short: cut to 5.75 (150,000 short), then to the 200,000 of perp
    # notional USDT 20,000 can margin at 10x
    six = approved(
        run(intent("BTC/USDT:USDT", "sell", "6"), hedger_book(), budget=budget, mandate=wide)
    )
    assert six.intent.qty == D(5)
    net_cut, margin_cut = six.cut_reason.split("; ")
    assert net_cut.startswith("max_net_leverage: 6 → 5.75 (net leverage 0.8000")
    assert margin_cut.startswith("max_margin_usage: 5.75 → 5 (margin usage 0.0000")


def test_a_hedged_book_counts_zero_net_and_leaves_room_for_the_other_asset() -> None:
    # NAV 150,000: BTC hedged 1:1 (net 0), ETH spot 20,000, USDT 50,000; a 1.5x net cap leaves
    # 225,000 − 20,000 = 205,000 for ETH, though gross is already 1.2x
    book = snapshot(
        D(50_000),
        {"BTC": (D(2), D(40_000), D(-2), D(40_000)), "ETH": (D(10), D(2_000), D(0), D(2_000))},
    )
    wide = RiskConfig(max_asset_weight=D(10), max_gross_leverage=D(10), max_margin_usage=D(1))
    budget = RiskBudget.derive(wide, BandsConfig(), "stressed")
    order = intent("ETH/USDT:USDT", "buy", "150")
    verdict = approved(run(order, book, budget=budget, mandate=wide))
    assert verdict.intent.qty == D("102.5")  # 20,000 + 205,000 = 225,000 = 1.5 × NAV
    assert verdict.cut_reason.startswith("max_net_leverage: 150 → 102.5 (net leverage 0.1333")


def test_gross_and_margin_usage_are_separate_named_limits() -> None:
    assert {"max_net_leverage", "max_gross_leverage", "max_margin_usage"} <= REASON_CODES
    # gross: a net-increasing order on a hedged book is capped by gross notional
    book = snapshot(D(20_000), {"BTC": (D(2), D(40_000), D(-2), D(40_000))})
    order = intent("BTC/USDT", "buy", "0.1")
    verdict = vetoed(run(order, book, budget=STRESSED), "max_gross_leverage")
    assert "gross leverage 1.6000" in verdict.detail
    # margin usage: at most half of USDT 20,000 as initial margin: 100,000 of perp notional at 10x
    half = RiskConfig(max_asset_weight=D(2), max_margin_usage=D("0.5"), **NO_GUARD)
    cut = approved(run(intent("BTC/USDT:USDT", "sell", "3"), hedger_book(), mandate=half))
    assert cut.intent.qty == D("2.5")
    assert cut.cut_reason.startswith("max_margin_usage: 3 → 2.5 (margin usage 0.0000")


def test_an_order_may_not_take_a_perp_within_the_deleverage_distance_of_liquidation() -> None:
    """USDT 20,000 is the only collateral of a BTC short: 2 BTC (80,000) leave it 24.6 % from
    liquidation, 3 BTC would leave 16.4 %; the order is cut to the last lot at or above 20 %."""
    verdict = approved(run(intent("BTC/USDT:USDT", "sell", "3"), hedger_book()))
    assert verdict.cut_reason.startswith(
        "liquidation_distance: 3 → 2.433 (nearest liquidation none away, min 20.00%"
    )
    lot = INSTRUMENTS["BTC/USDT:USDT"].lot_size
    table = default_margin_table()

    def distance(qty: Decimal) -> Decimal:
        short = PerpHolding("BTC/USDT:USDT", -qty, -qty * 40_000, D(40_000))
        price = account_liquidation_price(short.symbol, [short], D(20_000), table)
        assert price is not None
        return (price - 40_000) / 40_000

    assert distance(verdict.intent.qty) >= D("0.2") > distance(verdict.intent.qty + lot)
    # reducing always passes, even from inside the distance
    close = snapshot(D(10_000), {"BTC": (D(2), D(40_000), D(-2), D(40_000))})  # 12 % away
    assert approved(run(intent("BTC/USDT:USDT", "buy", "1"), close)).cut_reason == ""
    vetoed(run(intent("BTC/USDT:USDT", "sell", "0.1"), close), "liquidation_distance")


# --------------------------------------------------------------------------- properties


class Loose(TypedDict):
    max_asset_weight: Decimal
    max_order_notional: Decimal
    max_daily_turnover: Decimal


LOOSE: Loose = {
    "max_asset_weight": D(10**6),
    "max_order_notional": D(10**9),
    "max_daily_turnover": D(10**6),
}


def _margin_after(
    book: PortfolioSnapshot, flight: Mapping[str, Decimal], order: OrderIntent | None
) -> tuple[Decimal, Decimal]:
    """(initial margin, margin balance) at 10x, in-flight orders at their worst, after ``order``."""
    sign = 1 if order is not None and order.side == "buy" else -1
    balance = book.cash + sum((s.perp_unrealized_pnl for s in book.assets), D(0))
    balance -= sum((v for s, v in flight.items() if ":" not in s and v > 0), D(0))
    initial = D(0)
    for state in book.assets:
        symbol = f"{state.asset}/USDT:USDT"
        ends = [state.perp_notional, state.perp_notional + flight.get(symbol, D(0))]
        if order is not None and order.symbol == symbol:
            ends = [x + sign * order.qty * state.perp_price for x in ends]
        initial += max(abs(x) for x in ends) / 10
    if order is not None and order.symbol == f"{base_of(order.symbol)}/USDT":
        balance -= sign * order.qty * _mark_of(book, order.symbol)
    return initial, balance


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=books(),
    net_cap=st.decimals("0.5", "4", places=1),
    gross_cap=st.decimals("0.5", "8", places=1),
    usage=st.decimals("0.1", "1", places=2),
    regime=st.sampled_from(("calm", "normal", "stressed")),
    symbol=st.sampled_from(SYMBOLS),
    side=st.sampled_from(("buy", "sell")),
    qty=st.decimals("0.001", "60", places=3),
)
def test_no_order_takes_net_leverage_above_the_cap(
    data: tuple[PortfolioSnapshot, dict[str, Decimal]],
    net_cap: Decimal,
    gross_cap: Decimal,
    usage: Decimal,
    regime: Regime,
    symbol: str,
    side: str,
    qty: Decimal,
) -> None:
    book, flight = data
    mandate = RiskConfig(
        max_net_leverage=net_cap, max_gross_leverage=gross_cap, max_margin_usage=usage, **LOOSE
    )
    budget = RiskBudget.derive(mandate, BandsConfig(), regime)
    order = intent(symbol, side, qty)

    verdict = run(order, book, budget=budget, mandate=mandate, in_flight=flight)

    if isinstance(verdict, Vetoed):
        event(f"vetoed {verdict.reason}")
        return
    event(f"approved, cut by {verdict.cut_reason.split(':')[0] or 'nothing'}")
    limit = budget.max_net_leverage * book.nav
    before, after = worst_net(book, flight, None), worst_net(book, flight, verdict.intent)
    assert after <= max(limit, before)
    if before <= limit:
        assert after <= limit
    initial, balance = _margin_after(book, flight, verdict.intent)
    initial0, balance0 = _margin_after(book, flight, None)
    if initial > 0 and (initial > initial0 or balance < balance0):  # it raised margin usage
        assert initial <= usage * balance


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    data=books(),
    net_cap=st.decimals("0.5", "4", places=1),
    gross_cap=st.decimals("0.5", "8", places=1),
    usage=st.decimals("0.1", "1", places=2),
    regime=st.sampled_from(("calm", "normal", "stressed")),
    symbol=st.sampled_from(SYMBOLS),
    share=st.decimals("0.01", "1", places=3),
)
def test_a_risk_reducing_order_is_never_vetoed_by_a_cap(
    data: tuple[PortfolioSnapshot, dict[str, Decimal]],
    net_cap: Decimal,
    gross_cap: Decimal,
    usage: Decimal,
    regime: Regime,
    symbol: str,
    share: Decimal,
) -> None:
    book, flight = data
    ends = net_ends(book, flight, base_of(symbol), None)
    assume(all(x > 0 for x in ends) or all(x < 0 for x in ends))
    side = "sell" if ends[0] > 0 else "buy"
    mark = _mark_of(book, symbol)
    instrument = INSTRUMENTS[symbol]
    qty = instrument.round_qty(share * min(abs(x) for x in ends) / mark)  # toward zero, not past
    assume(qty >= instrument.min_qty and qty * mark >= instrument.min_notional)
    order = intent(symbol, side, qty)
    assert reduces_net(book, flight, order)
    mandate = RiskConfig(
        max_net_leverage=net_cap, max_gross_leverage=gross_cap, max_margin_usage=usage, **LOOSE
    )
    budget = RiskBudget.derive(mandate, BandsConfig(), regime)

    verdict = run(order, book, budget=budget, mandate=mandate, in_flight=flight)

    # what the margin limit and the liquidation guard may still cut: an order that raises margin
    # usage, opens, grows or flips a perp position, or spends collateral
    initial, balance = _margin_after(book, flight, order)
    initial0, balance0 = _margin_after(book, flight, None)
    state = next(s for s in book.assets if s.asset == base_of(symbol))
    sign = 1 if side == "buy" else -1
    if ":" in symbol:
        exposed = sign * state.perp_qty >= 0 or qty > abs(state.perp_qty)
    else:
        exposed = side == "buy" and any(s.perp_qty for s in book.assets)
    exposed = exposed or initial > initial0 or balance < balance0
    if isinstance(verdict, Vetoed):
        event(f"vetoed {verdict.reason}")
        assert exposed
        assert verdict.reason in ("max_margin_usage", "liquidation_distance")
        return
    codes = [part.split(":")[0] for part in verdict.cut_reason.split("; ") if part]
    event(f"approved, cut by {codes or 'nothing'}")
    assert "max_net_leverage" not in codes
    assert "max_gross_leverage" not in codes
    if not exposed:
        assert verdict.intent.qty == qty


def test_a_budget_event_journaled_before_the_net_cap_existed_still_decodes() -> None:
    event = STRESSED.to_event(0, "stressed")
    assert event.max_net_leverage == D("1.5")
    old = msgspec.msgpack.decode(encode(event))[:-1]  # the array as written before issue 16
    decoded = decode(msgspec.msgpack.encode(old))
    assert isinstance(decoded, RiskBudgetChanged)
    assert decoded.max_net_leverage is None
    assert decoded.max_gross_leverage == D("1.5")
