"""The pure pre-trade check: each reason code, cuts to the cap, and a property over random books."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from ballast.engine.kernel.clock import NS_PER_SECOND
from ballast.engine.kernel.config import BandsConfig, RiskConfig
from ballast.engine.kernel.events import AssetState, OrderIntent, PortfolioSnapshot, Regime
from ballast.engine.kernel.instruments import Instrument, base_of, binance_defaults, index_by_symbol
from ballast.engine.trading.budget import RiskBudget
from ballast.engine.trading.pretrade import REASON_CODES, Approved, Verdict, Vetoed, check
from tests.conftest import START_NS

D = Decimal
ZERO = D(0)
INSTRUMENTS: Mapping[str, Instrument] = index_by_symbol(binance_defaults(["BTC", "ETH"]))
MANDATE = RiskConfig(max_asset_weight=D(2))
BUDGET = RiskBudget.derive(MANDATE, BandsConfig(), "normal")


# ------------------------------------------------------------------------------- builders


def snapshot(
    cash: Decimal,
    holdings: Mapping[str, tuple[Decimal, Decimal, Decimal, Decimal]],
    *,
    liquidation: Mapping[str, Decimal] | None = None,
    drawdown: Decimal = ZERO,
    ts: int = START_NS,
) -> PortfolioSnapshot:
    """A snapshot from asset → (spot qty, spot price, perp qty, perp price); perps entered at the
    mark (no unrealised PnL), so NAV = cash + Σ spot value."""
    values = {a: (sq * sp, pq * pp) for a, (sq, sp, pq, pp) in holdings.items()}
    nav = cash + sum((spot for spot, _ in values.values()), D(0))
    gross = sum((abs(s) + abs(p) for s, p in values.values()), D(0))
    states = tuple(
        _state(asset, holdings[asset], nav, (liquidation or {}).get(asset)) for asset in holdings
    )
    return PortfolioSnapshot(
        ts_event=ts,
        ts_init=ts,
        trigger="price",
        nav=nav,
        cash=cash,
        gross_leverage=gross / nav if nav > 0 else D(0),
        net_leverage=D(0),
        margin_used=D(0),
        realized_pnl=D(0),
        unrealized_pnl=D(0),
        price_pnl=D(0),
        funding_pnl=D(0),
        fees_paid=D(0),
        transfers=D(0),
        peak_nav=nav,
        drawdown=drawdown,
        assets=states,
    )


def _state(
    asset: str,
    holding: tuple[Decimal, Decimal, Decimal, Decimal],
    nav: Decimal,
    liquidation: Decimal | None,
) -> AssetState:
    spot_qty, spot_price, perp_qty, perp_price = holding
    spot_value, notional = spot_qty * spot_price, perp_qty * perp_price
    net = spot_value + notional
    return AssetState(
        asset=asset,
        spot_qty=spot_qty,
        spot_price=spot_price,
        spot_value=spot_value,
        perp_qty=perp_qty,
        perp_price=perp_price,
        perp_notional=notional,
        perp_entry_price=perp_price,
        perp_unrealized_pnl=D(0),
        perp_funding=D(0),
        perp_liquidation_price=liquidation,
        net_exposure=net,
        weight=net / nav if nav > 0 else D(0),
        spot_weight=spot_value / nav if nav > 0 else D(0),
    )


def intent(
    symbol: str,
    side: str,
    qty: str | Decimal,
    *,
    price: str | None = None,
    reduce_only: bool = False,
    intent_id: str = "d1-0",
) -> OrderIntent:
    return OrderIntent(
        intent_id=intent_id,
        symbol=symbol,
        side="buy" if side == "buy" else "sell",
        qty=D(qty),
        order_type="market" if price is None else "limit",
        price=None if price is None else D(price),
        reduce_only=reduce_only,
        reason="test",
    )


ETH_MARK = D("2000.37")


def leverage_book(eth_perp_qty: str | Decimal) -> PortfolioSnapshot:
    """NAV 100,000: USDT 40,000 + BTC spot 1.5 at 40,000; BTC perp short 2 (80,000 notional);
    ETH perp long ``eth_perp_qty`` at 2,000.37. Gross = 140,000 + ETH perp notional."""
    return snapshot(
        D(40_000),
        {
            "BTC": (D("1.5"), D(40_000), D(-2), D(40_000)),
            "ETH": (D(0), ETH_MARK, D(eth_perp_qty), ETH_MARK),
        },
    )


def run(
    order: OrderIntent,
    book: PortfolioSnapshot,
    *,
    mark: Decimal | None = None,
    age_ns: int = 0,
    budget: RiskBudget = BUDGET,
    mandate: RiskConfig = MANDATE,
    in_flight: Mapping[str, Decimal] | None = None,
    turnover: Decimal = ZERO,
    kill_switch: bool = False,
) -> Verdict:
    if mark is None:
        mark = _mark_of(book, order.symbol)
    return check(
        order,
        instrument=INSTRUMENTS.get(order.symbol),
        snapshot=book,
        mark=mark,
        mark_age_ns=age_ns,
        budget=budget,
        mandate=mandate,
        in_flight=in_flight or {},
        turnover_today=turnover,
        kill_switch=kill_switch,
    )


def _mark_of(book: PortfolioSnapshot, symbol: str) -> Decimal:
    state = next(s for s in book.assets if s.asset == base_of(symbol))
    return state.perp_price if ":" in symbol else state.spot_price


def approved(verdict: Verdict) -> Approved:
    assert isinstance(verdict, Approved), verdict
    return verdict


def vetoed(verdict: Verdict, reason: str) -> Vetoed:
    assert isinstance(verdict, Vetoed), verdict
    assert verdict.reason == reason, verdict
    return verdict


def gross_after(book: PortfolioSnapshot, order: OrderIntent, mark: Decimal) -> Decimal:
    sign = 1 if order.side == "buy" else -1
    total = D(0)
    for s in book.assets:
        spot, perp = s.spot_value, s.perp_notional
        if s.asset == base_of(order.symbol):
            if ":" in order.symbol:
                perp += sign * order.qty * mark
            else:
                spot += sign * order.qty * mark
        total += abs(spot) + abs(perp)
    return total


# ------------------------------------------------------------------- worked example 4


def test_leverage_cap_cuts_the_order_to_exactly_the_cap() -> None:
    book = leverage_book("75")  # gross 290,027.75 on NAV 100,000: 2.90x of a 3x cap
    assert book.nav == 100_000
    order = intent("ETH/USDT:USDT", "buy", "10")  # adds ~20,000 notional

    verdict = approved(run(order, book))

    after = gross_after(book, verdict.intent, ETH_MARK)
    assert after <= 300_000
    assert 300_000 - after < INSTRUMENTS["ETH/USDT:USDT"].lot_size * ETH_MARK
    assert verdict.intent.qty == D("4.985")
    assert after == D("299999.59445")
    assert verdict.cut_reason.startswith("max_gross_leverage: 10 → 4.985")
    assert "cap 3× of NAV 100000.00, room 9972.25" in verdict.cut_reason


def test_leverage_cap_vetoes_when_the_room_is_below_min_notional() -> None:
    book = leverage_book("79.977")  # 16.41 of room, below the 20 USDT perp minimum
    order = intent("ETH/USDT:USDT", "buy", "10")
    verdict = vetoed(run(order, book), "max_gross_leverage")
    assert "room 16.41" in verdict.detail
    assert "below minimum 20" in verdict.detail


def test_in_flight_orders_use_up_the_room() -> None:
    flight = {"ETH/USDT:USDT": D(9_990)}  # an approved ETH buy not filled yet
    order = intent("BTC/USDT:USDT", "sell", "0.5")
    verdict = vetoed(run(order, leverage_book("75"), in_flight=flight), "max_gross_leverage")
    assert "in flight" in verdict.detail


def test_in_flight_reductions_are_not_counted_as_room() -> None:
    flight = {"ETH/USDT:USDT": D(-50_000)}  # a pending ETH sale may still be canceled
    order = intent("BTC/USDT:USDT", "sell", "0.5")
    vetoed(run(order, leverage_book("79.977"), in_flight=flight), "max_gross_leverage")


def test_stressed_budget_lowers_the_cap() -> None:
    book = leverage_book("7.5")  # gross 1.55x
    stressed = RiskBudget.derive(MANDATE, BandsConfig(), "stressed")  # cap 1.5x
    assert stressed.max_gross_leverage == D("1.5")
    order = intent("ETH/USDT:USDT", "buy", "1")
    vetoed(run(order, book, budget=stressed), "max_gross_leverage")
    approved(run(intent("ETH/USDT:USDT", "sell", "1"), book, budget=stressed))


def test_an_order_that_lowers_gross_passes_while_over_the_cap() -> None:
    book = leverage_book("95")  # gross 3.3x, over the cap
    verdict = approved(run(intent("ETH/USDT:USDT", "sell", "1"), book))
    assert verdict.cut_reason == ""
    vetoed(run(intent("ETH/USDT:USDT", "buy", "0.1"), book), "max_gross_leverage")


# ------------------------------------------------------------------------- gates


def small_book() -> PortfolioSnapshot:
    return snapshot(D(60_000), {"BTC": (D(1), D(40_000), D(0), D(40_000))})


def test_kill_switch_passes_only_reduce_only() -> None:
    book = small_book()
    vetoed(run(intent("BTC/USDT", "buy", "0.01"), book, kill_switch=True), "kill_switch")
    order = intent("BTC/USDT", "sell", "0.5", reduce_only=True)
    assert approved(run(order, book, kill_switch=True)).intent == order


def test_stale_or_missing_mark_is_vetoed() -> None:
    book = small_book()
    order = intent("BTC/USDT", "buy", "0.01")
    too_old = int(MANDATE.stale_after_s * NS_PER_SECOND) + 1
    assert (
        "older than the threshold" in vetoed(run(order, book, age_ns=too_old), "stale_data").detail
    )
    no_mark = check(
        order,
        instrument=INSTRUMENTS["BTC/USDT"],
        snapshot=book,
        mark=None,
        mark_age_ns=None,
        budget=BUDGET,
        mandate=MANDATE,
    )
    vetoed(no_mark, "stale_data")
    approved(run(order, book, age_ns=too_old - 1))


def test_unknown_instrument_and_missing_portfolio() -> None:
    vetoed(run(intent("SOL/USDT", "buy", "1"), small_book(), mark=D(100)), "unknown_instrument")
    verdict = check(
        intent("BTC/USDT", "buy", "0.01"),
        instrument=INSTRUMENTS["BTC/USDT"],
        snapshot=None,
        mark=D(40_000),
        mark_age_ns=0,
        budget=BUDGET,
        mandate=MANDATE,
    )
    vetoed(verdict, "no_portfolio")


def test_limit_price_far_from_mark_is_vetoed_and_near_one_rounded_to_tick() -> None:
    book = small_book()
    verdict = vetoed(run(intent("BTC/USDT", "buy", "0.01", price="44400"), book), "price_sanity")
    assert "11.00% from mark 40000" in verdict.detail
    near = approved(run(intent("BTC/USDT", "buy", "0.01", price="40100.005"), book))
    assert near.intent.price == D("40100")  # a buy is rounded down: never a worse price


def test_quantity_is_rounded_down_to_the_lot_without_a_cut() -> None:
    verdict = approved(run(intent("BTC/USDT", "buy", "0.0123456"), small_book()))
    assert verdict.intent.qty == D("0.01234")
    assert verdict.cut_reason == ""


def test_below_min_qty_and_min_notional() -> None:
    book = small_book()
    vetoed(run(intent("BTC/USDT", "buy", "0.000009"), book), "precision")
    verdict = vetoed(run(intent("BTC/USDT", "buy", "0.0001"), book), "min_notional")
    assert "notional 4.00" in verdict.detail


def test_max_order_notional_cuts() -> None:
    mandate = RiskConfig(max_order_notional=D(10_000))
    verdict = approved(run(intent("BTC/USDT", "buy", "1"), small_book(), mandate=mandate))
    assert verdict.intent.qty == D("0.25")
    assert verdict.cut_reason.startswith("max_order_notional: 1 → 0.25")


def test_max_asset_weight_cuts_then_vetoes() -> None:
    mandate = RiskConfig(max_asset_weight=D("0.5"))
    book = small_book()  # BTC 40 % of 100,000
    verdict = approved(run(intent("BTC/USDT", "buy", "1"), book, mandate=mandate))
    assert verdict.intent.qty == D("0.25")
    assert verdict.cut_reason.startswith("max_asset_weight")
    full = {"BTC/USDT": D(10_000)}
    vetoed(
        run(intent("BTC/USDT", "buy", "1"), book, mandate=mandate, in_flight=full),
        "max_asset_weight",
    )


def test_daily_turnover_cuts_then_vetoes() -> None:
    book = small_book()  # turnover cap 2 × 100,000
    verdict = approved(run(intent("BTC/USDT", "buy", "1"), book, turnover=D(180_000)))
    assert verdict.intent.qty == D("0.5")
    assert verdict.cut_reason.startswith("max_daily_turnover")
    vetoed(run(intent("BTC/USDT", "buy", "1"), book, turnover=D(200_000)), "max_daily_turnover")


def test_several_cuts_are_all_recorded() -> None:
    mandate = RiskConfig(max_order_notional=D(30_000), max_asset_weight=D("0.6"))
    verdict = approved(run(intent("BTC/USDT", "buy", "1"), small_book(), mandate=mandate))
    assert verdict.intent.qty == D("0.5")
    codes = [part.split(":")[0] for part in verdict.cut_reason.split("; ")]
    assert codes == ["max_order_notional", "max_asset_weight"]


def test_reduce_only_must_reduce_and_is_capped_at_the_position() -> None:
    book = snapshot(D(60_000), {"BTC": (D(1), D(40_000), D("-0.5"), D(40_000))})
    vetoed(run(intent("BTC/USDT:USDT", "sell", "0.1", reduce_only=True), book), "reduce_only")
    verdict = approved(run(intent("BTC/USDT:USDT", "buy", "0.8", reduce_only=True), book))
    assert verdict.intent.qty == D("0.5")
    assert verdict.cut_reason.startswith("reduce_only")


def test_reduce_only_skips_exposure_limits_but_not_precision() -> None:
    book = leverage_book("95")  # over the cap, turnover used up
    close = intent("ETH/USDT:USDT", "sell", "45", reduce_only=True)
    approved(run(close, book, turnover=D(10**7)))
    vetoed(run(intent("ETH/USDT:USDT", "sell", "0.0001", reduce_only=True), book), "precision")


# --------------------------------------------------------------------------- property


SYMBOLS = ("BTC/USDT", "BTC/USDT:USDT", "ETH/USDT", "ETH/USDT:USDT")
_PRICE = {
    "BTC": st.decimals("20000", "80000", places=1),
    "ETH": st.decimals("1000", "5000", places=2),
}


@st.composite
def books(draw: st.DrawFn) -> tuple[PortfolioSnapshot, dict[str, Decimal]]:
    holdings = {}
    for asset in ("BTC", "ETH"):
        price = draw(_PRICE[asset])
        spot = draw(st.decimals("0", "3", places=4))
        perp = draw(st.decimals("-4", "4", places=3))
        holdings[asset] = (spot, price, perp, price)
    book = snapshot(draw(st.decimals("1000", "300000", places=2)), holdings)
    flight = draw(
        st.dictionaries(st.sampled_from(SYMBOLS), st.decimals("-80000", "80000", places=2))
    )
    return book, flight


def worst_gross(
    book: PortfolioSnapshot, flight: Mapping[str, Decimal], order: OrderIntent | None
) -> Decimal:
    """Σ over legs of max(|leg + order|, |leg + in flight + order|)."""
    total = D(0)
    for s in book.assets:
        for perp, leg in ((False, s.spot_value), (True, s.perp_notional)):
            symbol = f"{s.asset}/USDT:USDT" if perp else f"{s.asset}/USDT"
            delta = D(0)
            if order is not None and order.symbol == symbol:
                delta = (1 if order.side == "buy" else -1) * order.qty * _mark_of(book, symbol)
            pending = flight.get(symbol, D(0))
            total += max(abs(leg + delta), abs(leg + pending + delta))
    return total


def net_ends(
    book: PortfolioSnapshot, flight: Mapping[str, Decimal], asset: str, order: OrderIntent | None
) -> tuple[Decimal, Decimal]:
    """The asset's net exposure with all its in-flight sells and with all its buys (and the
    order, filled at its mark)."""
    state = next(s for s in book.assets if s.asset == asset)
    delta = D(0)
    if order is not None and base_of(order.symbol) == asset:
        delta = (1 if order.side == "buy" else -1) * order.qty * _mark_of(book, order.symbol)
    pending = [v for symbol, v in flight.items() if base_of(symbol) == asset]
    low = state.net_exposure + sum((v for v in pending if v < 0), D(0))
    high = state.net_exposure + sum((v for v in pending if v > 0), D(0))
    return low + delta, high + delta


def worst_net(
    book: PortfolioSnapshot, flight: Mapping[str, Decimal], order: OrderIntent | None
) -> Decimal:
    """Σ over assets of the larger |net exposure| of its two in-flight ends."""
    return sum(
        (max(abs(x) for x in net_ends(book, flight, s.asset, order)) for s in book.assets), D(0)
    )


def reduces_net(book: PortfolioSnapshot, flight: Mapping[str, Decimal], order: OrderIntent) -> bool:
    """Every in-flight end of the order's asset moves toward zero (crossing it or not)."""
    sign = 1 if order.side == "buy" else -1
    return all(sign * x < 0 for x in net_ends(book, flight, base_of(order.symbol), None))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=books(),
    cap=st.decimals("0.5", "4", places=1),
    max_weight=st.decimals("0.5", "5", places=1),
    symbol=st.sampled_from(SYMBOLS),
    side=st.sampled_from(("buy", "sell")),
    qty=st.decimals("0.01", "6", places=4) | st.decimals("0", "0.01", places=6),
    limit_offset=st.none() | st.decimals("-0.12", "0.12", places=3),
    reduce_only=st.sampled_from((False, False, False, True)),
    turnover=st.decimals("0", "300000", places=2),
)
def test_no_approved_order_breaks_the_cap_or_the_exchange_filters(
    data: tuple[PortfolioSnapshot, dict[str, Decimal]],
    cap: Decimal,
    max_weight: Decimal,
    symbol: str,
    side: str,
    qty: Decimal,
    limit_offset: Decimal | None,
    reduce_only: bool,
    turnover: Decimal,
) -> None:
    book, flight = data
    mark = _mark_of(book, symbol)
    price = None if limit_offset is None else str(mark * (1 + limit_offset))
    order = intent(symbol, side, qty, price=price, reduce_only=reduce_only)
    mandate = RiskConfig(max_gross_leverage=cap, max_asset_weight=max_weight)
    budget = RiskBudget.derive(mandate, BandsConfig(), "normal")

    verdict = run(order, book, budget=budget, mandate=mandate, in_flight=flight, turnover=turnover)

    if isinstance(verdict, Vetoed):
        event(f"vetoed {verdict.reason}")
        assert verdict.reason in REASON_CODES
        return
    event(f"approved, cut by {verdict.cut_reason.split(':')[0] or 'nothing'}")
    out = verdict.intent
    instrument = INSTRUMENTS[symbol]
    assert instrument.violation(out.qty, out.price) is None
    assert out.qty * mark >= instrument.min_notional
    assert 0 < out.qty <= qty
    if not reduce_only and not reduces_net(book, flight, order):
        # an order that reduces its asset's net exposure is exempt from the gross cap
        limit = cap * book.nav
        before = worst_gross(book, flight, None)
        after = worst_gross(book, flight, out)
        assert after <= max(limit, before)
        if before <= limit:
            assert after <= limit


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    data=books(),
    cap=st.decimals("0.5", "4", places=1),
    symbol=st.sampled_from(SYMBOLS),
    side=st.sampled_from(("buy", "sell")),
)
def test_a_leverage_cut_lands_within_one_lot_of_the_cap(
    data: tuple[PortfolioSnapshot, dict[str, Decimal]], cap: Decimal, symbol: str, side: str
) -> None:
    book, flight = data
    limit = cap * book.nav
    assume(worst_gross(book, flight, None) <= limit)
    order = intent(symbol, side, "1000")  # always more than the room
    assume(not reduces_net(book, flight, order))  # a hedge is exempt from the gross cap
    mandate = RiskConfig(
        max_gross_leverage=cap,
        max_net_leverage=D(100),  # the largest allowed: no cap for these books
        max_margin_usage=D(1),
        min_liquidation_distance=D(0),
        deleverage_liquidation_distance=D(0),
        max_asset_weight=D(10**6),
        max_order_notional=D(10**9),
        max_daily_turnover=D(10**6),
    )
    budget = RiskBudget.derive(mandate, BandsConfig(), "normal")

    verdict = run(order, book, budget=budget, mandate=mandate, in_flight=flight)

    if isinstance(verdict, Vetoed):
        event("vetoed")
        assert verdict.reason in ("max_gross_leverage", "max_margin_usage")
        return
    if "max_margin_usage" in verdict.cut_reason:
        event("cut by margin usage too (a spot buy spends the margin balance)")
        return
    event("cut")
    # the gross cap binds last (a net cut of 100× NAV may come first: cuts are applied in turn)
    assert verdict.cut_reason.split("; ")[-1].startswith("max_gross_leverage")
    mark = _mark_of(book, symbol)
    after = worst_gross(book, flight, verdict.intent)
    assert limit - INSTRUMENTS[symbol].lot_size * mark < after <= limit


def test_every_veto_reason_is_a_known_code() -> None:
    assert {
        "kill_switch",
        "stale_data",
        "price_sanity",
        "precision",
        "min_notional",
    } <= REASON_CODES
    assert {"max_order_notional", "max_asset_weight", "max_gross_leverage"} <= REASON_CODES
    assert "max_daily_turnover" in REASON_CODES


@pytest.mark.parametrize("regime", ["calm", "normal", "stressed"])
def test_budget_never_exceeds_the_mandate(regime: Regime) -> None:
    mandate = RiskConfig(stressed_leverage_scale=D(2))
    budget = RiskBudget.derive(mandate, BandsConfig(), regime)
    assert budget.max_gross_leverage <= mandate.max_gross_leverage
