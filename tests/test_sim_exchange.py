"""The simulated exchange core: orders, fills, fees, slippage, funding, liquidation, accounting.

Given market data and commands → when the exchange handles them → then the returned events (and
the account) are exactly what the model says. Amounts are hand-computed Decimals.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ballast.adapters.sim.config import Latency, SimConfig
from ballast.adapters.sim.exchange import POST_ONLY_REJECT, SimExchange
from ballast.adapters.sim.fees import FeeRates, FeeSchedule
from ballast.adapters.sim.slippage import SlippageConfig
from ballast.engine.kernel.clock import NS_PER_HOUR, NS_PER_SECOND
from ballast.engine.kernel.commands import CancelOrder, SubmitOrder
from ballast.engine.kernel.events import (
    BalanceUpdated,
    Bar,
    FundingPaid,
    MarkPriceUpdated,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    PositionUpdated,
    QuoteTick,
    Side,
    TimeInForce,
)
from ballast.engine.kernel.instruments import Instrument, binance_defaults
from tests.conftest import START_NS

D = Decimal
SPOT = "BTC/USDT"
PERP = "BTC/USDT:USDT"
ETH_SPOT = "ETH/USDT"
ETH_PERP = "ETH/USDT:USDT"
T0 = START_NS
HOUR = NS_PER_HOUR
DATA = Path(__file__).resolve().parent.parent / "data" / "market"
E = TypeVar("E", bound=Message)


# ------------------------------------------------------------------------------------ helpers


def make(
    usdt: str = "100000",
    *,
    btc: str = "0",
    instruments: Sequence[Instrument] | None = None,
    **config: Any,
) -> SimExchange:
    balances = {"USDT": D(usdt)} | ({"BTC": D(btc)} if D(btc) else {})
    found = list(instruments) if instruments is not None else binance_defaults(["BTC", "ETH"])
    return SimExchange(found, SimConfig(balances=balances, **config))


def bar(
    symbol: str, close: str, ts: int, *, low: str | None = None, high: str | None = None
) -> Bar:
    c = D(close)
    lo = D(low) if low is not None else c
    hi = D(high) if high is not None else c
    return Bar(ts, ts, symbol, 3600, c, hi, lo, c, D(1))


def quote(symbol: str, bid: str, ask: str, ts: int) -> QuoteTick:
    return QuoteTick(ts, ts, symbol, D(bid), D(ask), D(1), D(1))


def order(
    cid: str,
    symbol: str,
    side: Side,
    qty: str,
    price: str | None = None,
    *,
    reduce_only: bool = False,
    post_only: bool = False,
    tif: TimeInForce = "GTC",
) -> SubmitOrder:
    return SubmitOrder(
        ts_event=0,
        ts_init=0,
        intent_id=f"i-{cid}",
        client_order_id=cid,
        symbol=symbol,
        side=side,
        order_type="market" if price is None else "limit",
        qty=D(qty),
        price=None if price is None else D(price),
        reduce_only=reduce_only,
        post_only=post_only,
        time_in_force=tif,
    )


def kinds(events: Sequence[Message]) -> list[str]:
    return [type(e).__name__ for e in events]


def one(events: Sequence[Message], cls: type[E]) -> E:
    found = [e for e in events if isinstance(e, cls)]
    assert len(found) == 1, kinds(events)
    return found[0]


def rejection(events: Sequence[Message]) -> str:
    assert kinds(events) == ["OrderSubmitted", "OrderRejected"], kinds(events)
    return one(events, OrderRejected).reason


def balance(events: Sequence[Message], asset: str) -> BalanceUpdated:
    found = [e for e in events if isinstance(e, BalanceUpdated) and e.asset == asset]
    assert len(found) == 1, kinds(events)
    return found[0]


# ------------------------------------------------------------------------ market orders, fees


def test_market_spot_buy_fills_at_the_last_price_with_the_taker_fee_in_usdt() -> None:
    ex = make()
    assert ex.on_bar(bar(SPOT, "40000", T0)) == []
    events = ex.submit(order("c1", SPOT, "buy", "0.5"), T0 + 1)
    assert kinds(events) == [
        "OrderSubmitted",
        "OrderAccepted",
        "OrderFilled",
        "BalanceUpdated",
        "BalanceUpdated",
    ]
    submitted, accepted, fill, base, cash = events
    assert isinstance(submitted, OrderSubmitted)
    assert submitted.intent_id == "i-c1"
    assert isinstance(accepted, OrderAccepted)
    assert accepted.venue_order_id == "sim-1"
    assert isinstance(fill, OrderFilled)
    assert (fill.trade_id, fill.price, fill.qty, fill.liquidity) == (
        "t-1",
        D(40000),
        D("0.5"),
        "taker",
    )
    assert (fill.fee, fill.fee_asset) == (D(20), "USDT")  # 20 000 × 0.1 %
    assert base == BalanceUpdated(T0 + 1, T0 + 1, "spot", "BTC", D("0.5"), D(0))
    assert cash == BalanceUpdated(T0 + 1, T0 + 1, "spot", "USDT", D(79_980), D(0))
    assert all(e.ts_event == e.ts_init == T0 + 1 for e in events)


def test_spot_sell_receives_the_notional_minus_the_fee_in_usdt() -> None:
    ex = make(btc="1")
    ex.on_bar(bar(SPOT, "40000", T0))
    events = ex.submit(order("c1", SPOT, "sell", "0.25"), T0)
    assert one(events, OrderFilled).fee == D(10)
    assert balance(events, "BTC").free == D("0.75")
    assert balance(events, "USDT").free == D(109_990)  # 100 000 + 10 000 − 10


def test_perp_market_order_pays_the_taker_fee_and_reports_its_position() -> None:
    ex = make()
    ex.on_bar(bar(PERP, "40000", T0))
    events = ex.submit(order("c1", PERP, "sell", "0.5"), T0)
    assert kinds(events)[2:] == ["OrderFilled", "BalanceUpdated", "PositionUpdated"]
    assert one(events, OrderFilled).fee == D(10)  # 20 000 × 0.05 %
    assert balance(events, "USDT").free == D(99_990)
    position = one(events, PositionUpdated)
    assert (position.qty, position.entry_price, position.mark_price) == (
        D("-0.5"),
        D(40000),
        D(40000),
    )
    assert (position.unrealized_pnl, position.margin) == (D(0), D(2_000))  # 20 000 / 10
    assert position.liquidation_price is not None
    assert position.liquidation_price > D(40000)


def test_fee_schedule_is_configurable_per_kind_and_per_symbol() -> None:
    fees = FeeSchedule(
        perp=FeeRates(maker=D("0.0001"), taker=D("0.0004")),
        overrides={SPOT: FeeRates(maker=D(0), taker=D("0.00075"))},
    )
    ex = make(fees=fees)
    ex.on_bar(bar(SPOT, "40000", T0))
    ex.on_bar(bar(PERP, "40000", T0))
    assert one(ex.submit(order("s", SPOT, "buy", "1"), T0), OrderFilled).fee == D(30)
    assert one(ex.submit(order("p", PERP, "buy", "1"), T0), OrderFilled).fee == D(16)
    own = FeeSchedule.from_instruments(binance_defaults(["BTC"]))
    assert own.rate(PERP, "perp", "maker") == D("0.0002")


# ------------------------------------------------------------------------------- rejections

TEST_SPOT = Instrument(
    symbol="TST/USDT",
    kind="spot",
    base="TST",
    quote="USDT",
    tick_size=D("0.01"),
    lot_size=D("0.001"),
    min_qty=D("0.01"),
    min_notional=D(10),
)


@pytest.mark.parametrize(
    ("qty", "price", "names"),
    [
        ("0.0105", "100", "multiple of lot size 0.001"),
        ("0.005", "100", "below minimum quantity 0.01"),
        ("1", "100.005", "multiple of tick size 0.01"),
        ("0.05", "100", "notional 5.00 is below minimum notional 10"),
        ("0.05", None, "notional 7.50 is below minimum notional 10"),  # market: at the last 150
    ],
)
def test_precision_and_min_notional_rejects_name_the_violated_filter(
    qty: str, price: str | None, names: str
) -> None:
    ex = make(instruments=[TEST_SPOT])
    ex.on_bar(bar("TST/USDT", "150", T0))
    reason = rejection(ex.submit(order("c1", "TST/USDT", "buy", qty, price), T0))
    assert names in reason
    status = ex.order_status("c1")
    assert status is not None
    assert status.state == "rejected"


def test_market_order_at_min_notional_by_the_current_price_is_accepted() -> None:
    ex = make(instruments=[TEST_SPOT])
    ex.on_bar(bar("TST/USDT", "150", T0))
    assert "OrderFilled" in kinds(ex.submit(order("c1", "TST/USDT", "buy", "0.07"), T0))


def test_unknown_symbol_and_unpriced_market_orders_are_rejected() -> None:
    ex = make()
    assert (
        rejection(ex.submit(order("c1", "DOGE/USDT", "buy", "1"), T0)) == "unknown symbol DOGE/USDT"
    )
    assert (
        rejection(ex.submit(order("c2", SPOT, "buy", "0.1"), T0)) == "no market price for BTC/USDT"
    )


def test_a_known_client_order_id_is_ignored_no_new_order_no_events() -> None:
    ex = make()
    ex.on_bar(bar(SPOT, "40000", T0))
    first = ex.submit(order("c1", SPOT, "buy", "0.1"), T0)
    assert "OrderFilled" in kinds(first)
    assert ex.submit(order("c1", SPOT, "buy", "0.3"), T0 + 1) == []
    assert ex.balance("BTC") == D("0.1")
    rejected = ex.submit(order("c2", SPOT, "buy", "100"), T0)
    assert "insufficient balance" in rejection(rejected)
    assert ex.submit(order("c2", SPOT, "buy", "0.1"), T0) == []
    assert ex.balance("BTC") == D("0.1")


def test_spot_buy_must_be_covered_by_usdt_including_the_fee() -> None:
    ex = make("1000")
    ex.on_bar(bar(SPOT, "40000", T0))
    # 0.025 × 40 000 = 1 000 + 1 fee > 1 000
    assert rejection(ex.submit(order("c1", SPOT, "buy", "0.025"), T0)).startswith(
        "insufficient balance"
    )
    # 0.02497 × 40 000 = 998.8 + 0.9988 fee = 999.7988 <= 1 000
    events = ex.submit(order("c2", SPOT, "buy", "0.02497"), T0)
    assert balance(events, "USDT").free == D("0.2012")


def test_spot_sell_beyond_the_free_base_balance_is_rejected() -> None:
    ex = make(btc="0.1")
    ex.on_bar(bar(SPOT, "40000", T0))
    assert rejection(ex.submit(order("c1", SPOT, "sell", "0.10001"), T0)).startswith(
        "insufficient balance"
    )


def test_perp_order_must_fit_its_initial_margin_in_the_available_margin() -> None:
    ex = make("1000")
    ex.on_bar(bar(PERP, "40000", T0))
    # 0.251 × 40 000 / 10 = 1 004 > 1 000
    assert rejection(ex.submit(order("c1", PERP, "buy", "0.251"), T0)).startswith(
        "insufficient margin"
    )
    events = ex.submit(order("c2", PERP, "buy", "0.25"), T0)  # 1 000 <= 1 000
    assert one(events, PositionUpdated).qty == D("0.25")
    # wallet 995 (5 fee) − 1 000 initial margin in use: nothing left to open more
    assert rejection(ex.submit(order("c3", PERP, "buy", "0.003"), T0)).startswith(
        "insufficient margin"
    )
    # reducing needs no margin
    assert one(ex.submit(order("c4", PERP, "sell", "0.1"), T0), PositionUpdated).qty == D("0.15")


def test_spot_buys_cannot_spend_the_margin_the_perps_use() -> None:
    ex = make("10000")
    ex.on_bar(bar(SPOT, "40000", T0))
    ex.on_bar(bar(PERP, "40000", T0))
    ex.submit(order("p", PERP, "buy", "2"), T0)  # im 8 000, fee 40 → wallet 9 960
    assert ex.available_margin() == D(1_960)
    # 0.05 × 40 000 × 1.001 = 2 002 > 1 960
    assert rejection(ex.submit(order("s1", SPOT, "buy", "0.05"), T0)).startswith(
        "insufficient balance"
    )
    assert "OrderFilled" in kinds(ex.submit(order("s2", SPOT, "buy", "0.04"), T0))


def test_reduce_only_orders_may_only_shrink_a_position() -> None:
    ex = make()
    ex.on_bar(bar(SPOT, "40000", T0))
    ex.on_bar(bar(PERP, "40000", T0))
    flat = ex.submit(order("r0", PERP, "sell", "0.1", reduce_only=True), T0)
    assert rejection(flat).startswith("reduce-only order would increase or flip")
    ex.submit(order("open", PERP, "buy", "0.1"), T0)
    assert rejection(ex.submit(order("r1", PERP, "buy", "0.1", reduce_only=True), T0)).startswith(
        "reduce-only"
    )
    assert rejection(ex.submit(order("r2", PERP, "sell", "0.2", reduce_only=True), T0)).startswith(
        "reduce-only"
    )
    closing = ex.submit(order("r3", PERP, "sell", "0.1", reduce_only=True), T0)
    assert one(closing, PositionUpdated).qty == 0
    spot_buy = ex.submit(order("r4", SPOT, "buy", "0.1", reduce_only=True), T0)
    assert rejection(spot_buy) == "reduce-only order would increase the position"


def test_post_only_orders_that_would_take_are_rejected() -> None:
    ex = make(btc="1")
    ex.on_bar(bar(PERP, "40000", T0))
    assert rejection(ex.submit(order("a", PERP, "buy", "0.1", "40000", tif="GTX"), T0)) == (
        POST_ONLY_REJECT
    )
    assert rejection(ex.submit(order("b", PERP, "sell", "0.1", "39999", post_only=True), T0)) == (
        POST_ONLY_REJECT
    )
    assert rejection(ex.submit(order("c", PERP, "buy", "0.1", tif="GTX"), T0)) == POST_ONLY_REJECT
    resting = ex.submit(order("d", PERP, "buy", "0.1", "39999.9", post_only=True), T0)
    assert kinds(resting) == ["OrderSubmitted", "OrderAccepted"]
    ex.on_quote(quote(SPOT, "39990", "40010", T0))
    inside = ex.submit(order("e", SPOT, "buy", "0.1", "40000", tif="GTX"), T0)
    assert kinds(inside) == ["OrderSubmitted", "OrderAccepted", "BalanceUpdated"]
    assert rejection(ex.submit(order("f", SPOT, "sell", "0.1", "39990", tif="GTX"), T0)) == (
        POST_ONLY_REJECT
    )


# ----------------------------------------------------------------------------- limit orders


def test_limit_buy_rests_locks_funds_and_fills_at_its_price_with_the_maker_fee() -> None:
    ex = make()
    ex.on_bar(bar(SPOT, "40000", T0))
    placed = ex.submit(order("c1", SPOT, "buy", "0.1", "39000"), T0)
    assert kinds(placed) == ["OrderSubmitted", "OrderAccepted", "BalanceUpdated"]
    # 0.1 × 39 000 × (1 + 0.1 %) locked
    assert balance(placed, "USDT") == BalanceUpdated(
        T0, T0, "spot", "USDT", D("96096.1"), D("3903.9")
    )
    assert ex.on_bar(bar(SPOT, "39800", T0 + HOUR, low="39500")) == []
    events = ex.on_bar(bar(SPOT, "38500", T0 + 2 * HOUR, low="38000"))
    assert kinds(events) == ["OrderFilled", "BalanceUpdated", "BalanceUpdated"]
    fill = one(events, OrderFilled)
    assert (fill.price, fill.fee, fill.liquidity) == (D(39000), D("3.9"), "maker")
    assert fill.ts_event == T0 + 2 * HOUR
    assert balance(events, "BTC").free == D("0.1")
    assert balance(events, "USDT") == BalanceUpdated(
        T0 + 2 * HOUR, T0 + 2 * HOUR, "spot", "USDT", D("96096.1"), D(0)
    )
    status = ex.order_status("c1")
    assert status is not None
    assert (status.state, status.avg_price) == ("filled", D(39000))


def test_perp_limit_sell_fills_when_a_later_bar_high_reaches_it() -> None:
    ex = make()
    ex.on_bar(bar(PERP, "40000", T0))
    assert kinds(ex.submit(order("c1", PERP, "sell", "0.1", "41000"), T0)) == [
        "OrderSubmitted",
        "OrderAccepted",
    ]
    assert ex.on_bar(bar(PERP, "40500", T0 + HOUR, high="40999.9")) == []
    events = ex.on_bar(bar(PERP, "40800", T0 + 2 * HOUR, high="41500"))
    fill = one(events, OrderFilled)
    assert (fill.price, fill.fee, fill.liquidity) == (D(41000), D("0.82"), "maker")
    assert one(events, PositionUpdated).qty == D("-0.1")


def test_limit_orders_fill_on_quotes_at_their_limit_never_better() -> None:
    ex = make(btc="1")
    ex.on_quote(quote(SPOT, "39990", "40010", T0))
    ex.submit(order("b", SPOT, "buy", "0.1", "40000"), T0)
    ex.submit(order("s", SPOT, "sell", "0.05", "40100"), T0)
    bought = ex.on_quote(quote(SPOT, "39970", "39980", T0 + 1))
    assert one(bought, OrderFilled).price == D(40000)
    sold = ex.on_quote(quote(SPOT, "40150", "40160", T0 + 2))
    assert one(sold, OrderFilled).price == D(40100)


def test_market_data_stamped_at_the_submit_time_does_not_fill_a_resting_order() -> None:
    ex = make()
    ex.on_bar(bar(SPOT, "40000", T0))
    ex.submit(order("c1", SPOT, "buy", "0.1", "39000"), T0)
    assert ex.on_bar(bar(SPOT, "40000", T0, low="38000")) == []
    assert "OrderFilled" in kinds(ex.on_bar(bar(SPOT, "40000", T0 + 1, low="38000")))


def test_a_crossing_limit_order_fills_at_once_as_taker_capped_at_its_limit() -> None:
    ex = make()
    ex.on_bar(bar(SPOT, "40000", T0))
    fill = one(ex.submit(order("c1", SPOT, "buy", "0.1", "41000"), T0), OrderFilled)
    assert (fill.price, fill.fee, fill.liquidity) == (D(40000), D(4), "taker")
    slippy = make(slippage=SlippageConfig(model="fixed", bps=D(50)))
    slippy.on_bar(bar(SPOT, "40000", T0))
    capped = one(slippy.submit(order("c1", SPOT, "buy", "0.1", "40100"), T0), OrderFilled)
    assert capped.price == D(40100)  # 40 200 after slippage, capped at the limit


def test_a_price_sent_with_a_market_order_is_ignored() -> None:
    ex = make()
    ex.on_bar(bar(PERP, "40000", T0))
    with_price = order("c1", PERP, "buy", "0.1", "39000")
    market = SubmitOrder(**{**msgspec.structs.asdict(with_price), "order_type": "market"})
    assert one(ex.submit(market, T0), OrderFilled).price == D(40000)


def test_ioc_limit_that_does_not_cross_is_canceled() -> None:
    ex = make()
    ex.on_bar(bar(SPOT, "40000", T0))
    events = ex.submit(order("c1", SPOT, "buy", "0.1", "39000", tif="IOC"), T0)
    assert kinds(events) == ["OrderSubmitted", "OrderAccepted", "OrderCanceled"]
    assert ex.balance("USDT") == D(100_000)
    assert ex.locked("USDT") == 0


def test_cancel_releases_locked_funds_and_unknown_orders_are_rejected() -> None:
    ex = make(btc="1")
    ex.on_bar(bar(SPOT, "40000", T0))
    placed = ex.submit(order("c1", SPOT, "sell", "0.4", "45000"), T0)
    assert balance(placed, "BTC") == BalanceUpdated(T0, T0, "spot", "BTC", D("0.6"), D("0.4"))
    assert [s.client_order_id for s in ex.open_orders()] == ["c1"]
    events = ex.cancel(CancelOrder(0, 0, "c1", SPOT, "operator"), T0 + 5)
    assert events == [
        OrderCanceled(T0 + 5, T0 + 5, "c1", SPOT, "operator"),
        BalanceUpdated(T0 + 5, T0 + 5, "spot", "BTC", D(1), D(0)),
    ]
    assert ex.open_orders() == []
    status = ex.order_status("c1")
    assert status is not None
    assert status.state == "canceled"
    again = ex.cancel(CancelOrder(0, 0, "c1", SPOT, "operator"), T0 + 6)
    assert again == [OrderRejected(T0 + 6, T0 + 6, "c1", SPOT, "unknown order")]
    never = ex.cancel(CancelOrder(0, 0, "nope", SPOT, "operator"), T0 + 7)
    assert one(never, OrderRejected).reason == "unknown order"
    assert ex.order_status("nope") is None


def test_a_resting_reduce_only_order_that_would_no_longer_reduce_is_canceled() -> None:
    ex = make()
    ex.on_bar(bar(PERP, "40000", T0))
    ex.submit(order("open", PERP, "buy", "0.1"), T0)
    ex.submit(order("tp", PERP, "sell", "0.1", "41000", reduce_only=True), T0)
    ex.submit(order("close", PERP, "sell", "0.1"), T0)
    events = ex.on_bar(bar(PERP, "41000", T0 + HOUR, high="41000"))
    assert kinds(events) == ["OrderCanceled"]
    assert ex.position_qty(PERP) == 0


# --------------------------------------------------------------------------------- slippage


@pytest.mark.parametrize(("side", "price"), [("buy", D(40040)), ("sell", D(39960))])
def test_fixed_bps_slippage_moves_the_fill_against_the_taker(side: Side, price: Decimal) -> None:
    ex = make(btc="1", slippage=SlippageConfig(model="fixed", bps=D(10)))
    ex.on_bar(bar(SPOT, "40000", T0))
    fill = one(ex.submit(order("c1", SPOT, side, "0.1"), T0), OrderFilled)
    assert fill.price == price
    assert fill.fee == D("0.1") * price * D("0.001")


@pytest.mark.parametrize(("side", "price"), [("buy", D(40010)), ("sell", D(39990))])
def test_spread_slippage_fills_at_the_quoted_side(side: Side, price: Decimal) -> None:
    ex = make(btc="1", slippage=SlippageConfig(model="spread"))
    ex.on_quote(quote(SPOT, "39990", "40010", T0))
    assert one(ex.submit(order("c1", SPOT, side, "0.1"), T0), OrderFilled).price == price


@pytest.mark.parametrize(("side", "price"), [("buy", D(40150)), ("sell", D(39850))])
def test_volatility_slippage_is_k_times_the_mean_range_of_the_recent_bars(
    side: Side, price: Decimal
) -> None:
    ex = make(btc="1", slippage=SlippageConfig(model="volatility", k=D("0.5"), window=2))
    ex.on_bar(bar(SPOT, "40000", T0, low="39000", high="40000"))  # range 1 000: out of window
    ex.on_bar(bar(SPOT, "40000", T0 + HOUR, low="39900", high="40100"))  # 200
    ex.on_bar(bar(SPOT, "40000", T0 + 2 * HOUR, low="39800", high="40200"))  # 400
    # 0.5 × (200 + 400) / 2 = 150
    assert one(ex.submit(order("c1", SPOT, side, "0.1"), T0), OrderFilled).price == price


@pytest.mark.parametrize(("side", "price"), [("buy", D("12349.38")), ("sell", D("12341.96"))])
def test_slipped_prices_land_on_the_tick_rounded_against_the_taker(
    side: Side, price: Decimal
) -> None:
    ex = make(btc="1", slippage=SlippageConfig(model="fixed", bps=D(3)))
    ex.on_bar(bar(SPOT, "12345.67", T0))  # ± 3.703701
    assert one(ex.submit(order("c1", SPOT, side, "0.1"), T0), OrderFilled).price == price


def test_fill_latency_fills_a_market_order_at_the_first_price_at_or_after_its_live_time() -> None:
    second = NS_PER_SECOND
    ex = make(latency=Latency(ack_ns=0, fill_ns=second))
    ex.on_bar(bar(SPOT, "40000", T0))
    assert kinds(ex.submit(order("c1", SPOT, "buy", "0.1"), T0)) == [
        "OrderSubmitted",
        "OrderAccepted",
    ]
    assert ex.on_bar(bar(SPOT, "40100", T0 + second // 2)) == []
    events = ex.on_bar(bar(SPOT, "40200", T0 + second))
    assert one(events, OrderFilled).price == D(40200)


def test_a_delayed_market_order_is_canceled_if_funds_no_longer_cover_it() -> None:
    ex = make("4100", latency=Latency(fill_ns=NS_PER_SECOND))
    ex.on_bar(bar(SPOT, "40000", T0))
    accepted = ex.submit(order("c1", SPOT, "buy", "0.1"), T0)  # 4 004 <= 4 100
    assert kinds(accepted) == ["OrderSubmitted", "OrderAccepted"]
    events = ex.on_bar(bar(SPOT, "42000", T0 + NS_PER_SECOND))  # now 4 204 > 4 100
    assert kinds(events) == ["OrderCanceled"]
    assert one(events, OrderCanceled).reason.startswith("insufficient balance")
    assert ex.balance("USDT") == D(4100)


# -------------------------------------------------------------------------------- positions


def test_entry_price_is_averaged_on_increase_kept_on_reduce_and_reset_on_flip() -> None:
    ex = make()
    ex.on_bar(bar(PERP, "40000", T0))
    ex.submit(order("a", PERP, "buy", "0.1"), T0)
    ex.on_bar(bar(PERP, "42000", T0 + 1))
    ex.submit(order("b", PERP, "buy", "0.3"), T0 + 1)
    assert ex.entry_price(PERP) == D(41500)  # (4 000 + 12 600) / 0.4
    ex.on_bar(bar(PERP, "43000", T0 + 2))
    before = ex.balance("USDT")
    ex.submit(order("c", PERP, "sell", "0.2"), T0 + 2)
    assert ex.entry_price(PERP) == D(41500)
    # realised 0.2 × (43 000 − 41 500) = 300, fee 0.2 × 43 000 × 0.05 % = 4.3
    assert ex.balance("USDT") - before == D("295.7")
    ex.on_bar(bar(PERP, "44000", T0 + 3))
    before = ex.balance("USDT")
    flip = one(ex.submit(order("d", PERP, "sell", "0.5"), T0 + 3), PositionUpdated)
    assert (flip.qty, flip.entry_price) == (D("-0.3"), D(44000))
    # realised 0.2 × (44 000 − 41 500) = 500, fee 0.5 × 44 000 × 0.05 % = 11
    assert ex.balance("USDT") - before == D(489)


def test_perp_mark_follows_mark_updates_once_seen_else_the_last_price() -> None:
    ex = make()
    ex.on_bar(bar(PERP, "40000", T0))
    assert ex.mark_price(PERP) == D(40000)
    ex.on_mark(MarkPriceUpdated(T0 + 1, T0 + 1, PERP, D(40100), D(40090), D("0.0001"), 0))
    ex.on_bar(bar(PERP, "40500", T0 + 2))
    assert (ex.mark_price(PERP), ex.last_price(PERP)) == (D(40100), D(40500))


# ---------------------------------------------------------------------------------- funding


def _perp_closes() -> dict[int, Decimal]:
    """Perp bar close by the bar's CLOSE time (open time + 1 h), in ns."""
    closes: dict[int, Decimal] = {}
    with (DATA / "btcusdt_perp_1h.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            opened = int(datetime.fromisoformat(row["Date"]).timestamp()) * NS_PER_SECOND
            closes[opened + HOUR] = D(row["Close"])
    return closes


def _settlements(count: int, closes: dict[int, Decimal]) -> list[tuple[int, Decimal, Decimal]]:
    """(settlement ns, rate, mark) for the first ``count`` settlements with a bar closing then."""
    out: list[tuple[int, Decimal, Decimal]] = []
    with (DATA / "btcusdt_perp_funding_8h.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            minute_ms = (int(row["calc_time"]) + 30_000) // 60_000 * 60_000
            at = minute_ms * 10**6
            if at in closes:
                out.append((at, D(row["last_funding_rate"]), closes[at]))
            if len(out) == count:
                break
    return out


@pytest.mark.parametrize(("side", "qty"), [("buy", D("0.5")), ("sell", D("-0.5"))])
def test_funding_over_real_settlements_reproduces_the_formula_exactly(
    side: Side, qty: Decimal
) -> None:
    closes = _perp_closes()
    settlements = _settlements(90, closes)
    assert len(settlements) == 90
    ex = make()
    first_ts = settlements[0][0]
    ex.on_bar(bar(PERP, str(closes[first_ts - HOUR]), first_ts - HOUR))
    ex.submit(order("open", PERP, side, "0.5"), first_ts - HOUR)
    start = ex.balance("USDT")
    expected = D(0)
    paid: list[FundingPaid] = []
    for at, rate, mark in settlements:
        ex.on_bar(bar(PERP, str(mark), at))
        events = ex.settle_funding(PERP, rate, mark, at)
        assert kinds(events) == ["FundingPaid", "BalanceUpdated"]
        paid.append(one(events, FundingPaid))
        expected += -qty * mark * rate
    assert ex.position_qty(PERP) == qty
    assert sum((p.amount for p in paid), D(0)) == expected
    assert ex.balance("USDT") - start == expected
    assert all(p.amount == -qty * p.mark_price * p.rate and p.asset == "USDT" for p in paid)
    assert any(p.rate > 0 for p in paid)
    assert any(p.rate < 0 for p in paid)


@pytest.mark.parametrize(
    ("side", "rate", "amount"),
    [
        ("buy", "0.0001", "-2"),  # long pays a positive rate
        ("sell", "0.0001", "2"),  # short receives it
        ("buy", "-0.0001", "2"),  # long receives a negative rate
        ("sell", "-0.0001", "-2"),  # short pays it
    ],
)
def test_funding_sign_conventions(side: Side, rate: str, amount: str) -> None:
    ex = make()
    ex.on_bar(bar(PERP, "40000", T0))
    ex.submit(order("open", PERP, side, "0.5"), T0)
    before = ex.balance("USDT")
    events = ex.settle_funding(PERP, D(rate), D(40000), T0 + 8 * HOUR)
    paid = one(events, FundingPaid)
    assert paid == FundingPaid(
        T0 + 8 * HOUR,
        T0 + 8 * HOUR,
        PERP,
        D("0.5") if side == "buy" else D("-0.5"),
        D(40000),
        D(rate),
        D(amount),
        "USDT",
    )
    assert balance(events, "USDT").free == before + D(amount)


def test_no_position_no_funding_events() -> None:
    ex = make()
    assert ex.settle_funding(PERP, D("0.0001"), D(40000), T0) == []


# ------------------------------------------------------------------------------ liquidation


@pytest.mark.parametrize("mark", ["45226.1", "44000"])
def test_leveraged_long_is_liquidated_at_or_below_its_liquidation_price(mark: str) -> None:
    ex = make("10000")
    ex.on_bar(bar(PERP, "50000", T0))
    opened = ex.submit(order("c1", PERP, "buy", "2"), T0)  # 10×: im 10 000, fee 50
    position = one(opened, PositionUpdated)
    # wallet 9 950, cost 100 000, tier 2 (0.5 %, 50): P = (100 000 − 9 950 − 50) / (2 × 0.995)
    # = 45 226.130… → 45 226.1 on the tick
    assert position.liquidation_price == D("45226.1")
    assert ex.on_mark(MarkPriceUpdated(T0 + 1, T0 + 1, PERP, D(46000), D(46000), D(0), 0)) == []
    # one tick above: margin balance 402.4 > maintenance 402.262
    assert ex.on_mark(MarkPriceUpdated(T0 + 2, T0 + 2, PERP, D("45226.2"), D(0), D(0), 0)) == []
    at = T0 + 3
    events = ex.on_mark(MarkPriceUpdated(at, at, PERP, D(mark), D(mark), D(0), 0))
    assert kinds(events) == ["OrderFilled", "BalanceUpdated", "PositionUpdated"]
    fill = one(events, OrderFilled)
    assert (fill.client_order_id, fill.liquidity, fill.side) == (
        "liquidation-1",
        "liquidation",
        "sell",
    )
    assert (fill.qty, fill.price, fill.ts_event) == (D(2), D(mark), at)
    assert fill.fee == D("0.0125") * D(2) * D(mark)
    assert one(events, PositionUpdated).qty == 0
    hand = D(10_000) - D(50) + D(2) * (D(mark) - D(50_000)) - D("0.0125") * D(2) * D(mark)
    assert balance(events, "USDT").free == hand == ex.balance("USDT")
    if mark == "45226.1":
        assert hand == D("-728.4525")  # 9 950 − 9 547.8 − 1 130.6525
    status = ex.order_status("liquidation-1")
    assert status is not None
    assert status.state == "filled"


def test_leveraged_short_is_liquidated_by_rising_prices() -> None:
    ex = make("10000")
    ex.on_bar(bar(PERP, "50000", T0))
    position = one(ex.submit(order("c1", PERP, "sell", "2"), T0), PositionUpdated)
    # P = (−100 000 − 9 950 − 50) / (−2 × 1.005) = 54 726.368… → 54 726.4 on the tick
    assert position.liquidation_price == D("54726.4")
    assert ex.on_bar(bar(PERP, "54726.3", T0 + HOUR)) == []
    events = ex.on_bar(bar(PERP, "54726.4", T0 + 2 * HOUR))
    fill = one(events, OrderFilled)
    assert (fill.liquidity, fill.side, fill.price) == ("liquidation", "buy", D("54726.4"))
    assert fill.fee == D("1368.16")  # 1.25 % × 109 452.8
    # 9 950 + 2 × (50 000 − 54 726.4) − 1 368.16
    assert ex.balance("USDT") == D("-870.96")
    assert ex.position_qty(PERP) == 0


def test_liquidation_cancels_open_perp_orders_and_closes_every_position() -> None:
    ex = make("10000")
    ex.on_bar(bar(PERP, "50000", T0))
    ex.on_bar(bar(ETH_PERP, "2500", T0))
    ex.submit(order("btc", PERP, "buy", "1.8"), T0)
    ex.submit(order("eth", ETH_PERP, "sell", "1"), T0)
    ex.submit(order("bid", PERP, "buy", "0.01", "30000"), T0)
    events = ex.on_bar(bar(PERP, "44000", T0 + HOUR))
    assert (
        kinds(events)
        == ["OrderCanceled"] + ["OrderFilled", "BalanceUpdated", "PositionUpdated"] * 2
    )
    assert one(events, OrderCanceled).reason == "liquidation"
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert [(f.client_order_id, f.symbol) for f in fills] == [
        ("liquidation-1", PERP),
        ("liquidation-2", ETH_PERP),
    ]
    assert ex.position_qty(PERP) == ex.position_qty(ETH_PERP) == 0


def test_a_funding_payment_that_eats_the_margin_liquidates_at_once() -> None:
    ex = make("1500")
    ex.set_leverage(PERP, D(50))
    ex.on_bar(bar(PERP, "40000", T0))
    ex.submit(order("c1", PERP, "buy", "1.5"), T0)  # im 1 200, fee 30
    assert ex.on_bar(bar(PERP, "40000", T0 + 1)) == []  # margin 1 470 > maintenance 250
    events = ex.settle_funding(PERP, D("0.025"), D(40000), T0 + 2)  # the long pays 1 500
    assert kinds(events)[:2] == ["FundingPaid", "BalanceUpdated"]
    assert one(events, OrderFilled).liquidity == "liquidation"
    assert ex.position_qty(PERP) == 0


def test_a_fill_far_from_the_mark_is_liquidated_on_the_next_update_of_any_symbol() -> None:
    ex = make("1500")
    ex.set_leverage(PERP, D(50))
    ex.on_bar(bar(SPOT, "40000", T0))
    ex.on_bar(bar(ETH_PERP, "2500", T0))
    ex.submit(order("eth", ETH_PERP, "buy", "1"), T0)
    assert ex.on_bar(bar(ETH_PERP, "2500", T0 + 1)) == []  # the account is checked: solvent
    ex.on_bar(bar(PERP, "40000", T0 + 2))
    assert ex.on_mark(MarkPriceUpdated(T0 + 3, T0 + 3, PERP, D(44000), D(0), D(0), 0)) == []
    # a short sold at the last price, 4 000 under the mark: the account is under water at once
    assert one(ex.submit(order("btc", PERP, "sell", "1"), T0 + 4), PositionUpdated).qty == -1

    events = ex.on_bar(bar(SPOT, "40000", T0 + 5))

    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert [(f.symbol, f.liquidity) for f in fills] == [
        (PERP, "liquidation"),
        (ETH_PERP, "liquidation"),
    ]


liquidation_steps = st.lists(
    st.one_of(
        st.tuples(st.just("bar"), st.sampled_from([SPOT, PERP, ETH_SPOT, ETH_PERP]),
                  st.integers(-300, 300)),
        st.tuples(st.just("mark"), st.sampled_from([PERP, ETH_PERP]), st.integers(-300, 300)),
        st.tuples(st.just("order"), st.sampled_from([SPOT, PERP, ETH_SPOT, ETH_PERP]),
                  st.sampled_from(["buy", "sell"]), st.integers(1, 250), st.booleans()),
        st.tuples(st.just("fund"), st.sampled_from([PERP, ETH_PERP]), st.integers(-3000, 3000)),
    ),
    min_size=10,
    max_size=60,
)  # fmt: skip


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(liquidation_steps)
def test_after_every_price_update_and_funding_an_account_with_positions_is_above_maintenance(
    actions: list[tuple[Any, ...]],
) -> None:
    """Whatever came before (fills, spot bars, marks of one perp while another is held, funding):
    the liquidation check after each price update and funding payment leaves no account at or
    under maintenance."""
    ex = make("1500", btc="0.2")
    ex.set_leverage(PERP, D(50))
    ex.set_leverage(ETH_PERP, D(50))
    prices = {SPOT: D(40000), PERP: D(40010), ETH_SPOT: D(2500), ETH_PERP: D(2501)}
    for symbol, price in prices.items():
        ex.on_bar(bar(symbol, str(price), T0))
    liquidations = 0
    for i, action in enumerate(actions, start=1):
        now, kind, symbol = T0 + i * HOUR, action[0], action[1]
        tick = ex.instruments[symbol].tick_size
        if kind == "order":
            qty = str(UNITS[symbol] * action[3])
            ex.submit(order(f"o{i}", symbol, action[2], qty, reduce_only=action[4]), now)
            continue
        moved = prices[symbol] * (1 + D(action[2]) / 10_000)
        price = prices[symbol] = max(tick, (moved / tick).to_integral_value() * tick)
        if kind == "bar":
            events = ex.on_bar(bar(symbol, str(price), now))
        elif kind == "mark":
            events = ex.on_mark(MarkPriceUpdated(now, now, symbol, price, price, D(0), 0))
        elif ex.position_qty(symbol) != 0:
            events = ex.settle_funding(symbol, D(action[2]) / 100_000, price, now)
        else:
            continue  # no payment, no check
        liquidations += sum(
            1 for e in events if isinstance(e, OrderFilled) and e.liquidity == "liquidation"
        )
        held = [s for s in (PERP, ETH_PERP) if ex.position_qty(s) != 0]
        assert not held or ex.margin_balance() > ex.maintenance_margin(), (i, action)
    assert liquidations <= len(actions)


# ---------------------------------------------------------------------------------- account


def test_account_events_report_every_balance_and_every_open_position() -> None:
    ex = make(btc="1")
    ex.on_bar(bar(PERP, "40000", T0))
    ex.on_bar(bar(ETH_PERP, "2500", T0))
    ex.submit(order("p", PERP, "sell", "0.5"), T0)
    events = ex.account_events(T0 + 9)
    assert kinds(events) == ["BalanceUpdated", "BalanceUpdated", "PositionUpdated"]
    assert [e.asset for e in events if isinstance(e, BalanceUpdated)] == ["BTC", "USDT"]
    position = one(events, PositionUpdated)
    assert (position.symbol, position.qty, position.ts_event) == (PERP, D("-0.5"), T0 + 9)


# ---------------------------------------------------------------------- accounting identity

PRICES = {SPOT: D(40000), PERP: D(40010), ETH_SPOT: D(2500), ETH_PERP: D("2501")}
UNITS = {SPOT: D("0.005"), PERP: D("0.005"), ETH_SPOT: D("0.05"), ETH_PERP: D("0.05")}
FEES = {("spot", "maker"): D("0.001"), ("spot", "taker"): D("0.001")}
FEES |= {("perp", "maker"): D("0.0002"), ("perp", "taker"): D("0.0005")}
SYMBOLS = sorted(PRICES)
PERPS = [PERP, ETH_PERP]

steps = st.lists(
    st.one_of(
        st.tuples(st.just("move"), st.sampled_from(SYMBOLS), st.integers(-400, 400)),
        st.tuples(
            st.just("market"), st.sampled_from(SYMBOLS), st.sampled_from(["buy", "sell"]),
            st.integers(1, 40),
        ),
        st.tuples(
            st.just("limit"), st.sampled_from(SYMBOLS), st.sampled_from(["buy", "sell"]),
            st.integers(1, 40), st.integers(-150, 150),
        ),
        st.tuples(st.just("fund"), st.sampled_from(PERPS), st.integers(-30, 30)),
    ),
    min_size=20,
    max_size=60,
)  # fmt: skip


class Books:
    """The test's own, independent tally of holdings, prices and PnL."""

    def __init__(self, exchange: SimExchange) -> None:
        self.ex = exchange
        self.prices = dict(PRICES)
        self.held = {SPOT: D(2), ETH_SPOT: D(20), PERP: D(0), ETH_PERP: D(0)}
        self.price_pnl = self.funding = self.fees = D(0)
        self.orders = 0

    def value(self, now: int) -> Decimal:
        """Account value from the exchange's reported account, at the test's prices."""
        total = D(0)
        for event in self.ex.account_events(now):
            if isinstance(event, BalanceUpdated):
                price = D(1) if event.asset == "USDT" else self.prices[f"{event.asset}/USDT"]
                total += (event.free + event.locked) * price
            elif isinstance(event, PositionUpdated):
                total += event.unrealized_pnl
        return total

    def take(self, events: Sequence[Message]) -> None:
        for event in events:
            if isinstance(event, OrderFilled):
                assert event.liquidity != "liquidation"
                signed = event.qty if event.side == "buy" else -event.qty
                self.held[event.symbol] += signed
                self.price_pnl += signed * (self.prices[event.symbol] - event.price)
                kind = "perp" if event.symbol.endswith(":USDT") else "spot"
                fee = event.qty * event.price * FEES[(kind, event.liquidity)]
                assert event.fee == fee
                self.fees += fee

    def step(self, action: tuple[Any, ...], now: int) -> None:
        kind, symbol = action[0], action[1]
        tick = self.ex.instruments[symbol].tick_size
        if kind == "move":
            old = self.prices[symbol]
            new = (old * (1 + D(action[2]) / 10_000) / tick).to_integral_value() * tick
            self.price_pnl += self.held[symbol] * (new - old)
            self.prices[symbol] = new
            low, high = str(min(old, new)), str(max(old, new))
            self.take(self.ex.on_bar(bar(symbol, str(new), now, low=low, high=high)))
        elif kind == "fund":
            rate = D(action[2]) / 100_000
            self.funding += -self.held[symbol] * self.prices[symbol] * rate
            self.ex.settle_funding(symbol, rate, self.prices[symbol], now)
        else:
            self.orders += 1
            qty = str(UNITS[symbol] * action[3])
            price = None
            if kind == "limit":
                raw = self.prices[symbol] * (1 + D(action[4]) / 10_000)
                price = str((raw / tick).to_integral_value() * tick)
            self.take(self.ex.submit(order(f"o{self.orders}", symbol, action[2], qty, price), now))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_account_value_changes_by_price_pnl_plus_funding_minus_fees(
    actions: list[tuple[Any, ...]],
) -> None:
    ex = SimExchange(
        binance_defaults(["BTC", "ETH"]),
        SimConfig(
            balances={"USDT": D(1_000_000), "BTC": D(2), "ETH": D(20)},
            slippage=SlippageConfig(model="fixed", bps=D(7)),
        ),
    )
    books = Books(ex)
    for symbol, price in PRICES.items():
        ex.on_bar(bar(symbol, str(price), T0))
    start = books.value(T0)
    for i, action in enumerate(actions, start=1):
        now = T0 + i * HOUR
        books.step(action, now)
        assert books.value(now) - start == books.price_pnl + books.funding - books.fees
        for symbol in PERPS:
            assert ex.position_qty(symbol) == books.held[symbol]
        assert ex.balance("BTC") == books.held[SPOT]
        assert ex.balance("ETH") == books.held[ETH_SPOT]
