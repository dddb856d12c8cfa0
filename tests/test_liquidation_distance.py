"""The risk actor's liquidation distance and deleveraging (issue 16: item 2, item 4's drift).

The venue's liquidation estimate changes only with a fill; the actor computes the liquidation price
itself, from the snapshot re-valued at the current perp marks, with the simulated exchange's own
formula (:mod:`ballast.engine.trading.margin`). A property checks, on a real SimExchange whose
events are booked by a real Ledger, that the actor's price equals the exchange's at every mark.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ballast.adapters.sim.config import SimConfig
from ballast.adapters.sim.exchange import SimExchange
from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_SECOND, SimulatedClock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import BandsConfig, RiskConfig
from ballast.engine.kernel.events import (
    BalanceUpdated,
    Bar,
    DeleverageRequired,
    InstrumentsLoaded,
    KillSwitchTriggered,
    MarkPriceUpdated,
    Message,
    OrderFilled,
    OrderStatusReported,
    PortfolioSnapshot,
    PositionUpdated,
)
from ballast.engine.kernel.instruments import base_of, binance_defaults
from ballast.engine.trading.ledger import Ledger
from ballast.engine.trading.margin import account_liquidation_price, default_margin_table
from ballast.engine.trading.measures import Book
from ballast.engine.trading.risk import RiskManager
from tests.conftest import START_NS
from tests.test_pretrade import snapshot
from tests.test_risk_actor import Desk, desk_on

D = Decimal
S = NS_PER_SECOND
MANDATE = RiskConfig(max_asset_weight=D(2))
INSTRUMENTS = binance_defaults(["BTC", "ETH"])


def short_book(stale_estimate: str, usdt: str = "10000") -> PortfolioSnapshot:
    """USDT ``usdt`` and 30 ETH spot at 3,000; a BTC perp short of 1 entered at 60,000 with the
    USDT as its only collateral (spot is not collateral). The venue's estimate from its last fill
    says ``stale_estimate``; with USDT 10,000 the true liquidation price is 70,050 / 1.005 =
    69,701.49 (second bracket: 10,000 − (P − 60,000) = 0.005 × P − 50)."""
    return snapshot(
        D(usdt),
        {"BTC": (D(0), D(60_000), D(-1), D(60_000)), "ETH": (D(30), D(3_000), D(0), D(3_000))},
        liquidation={"BTC": D(stale_estimate)},
    )


# ------------------------------------------------------------- reproduction of item 2


async def test_liquidation_distance_moves_with_the_mark_without_any_fill(
    sim_clock: SimulatedClock,
) -> None:
    desk = desk_on(sim_clock)
    async with desk.risk:
        desk.given(short_book("80660"))  # the venue's estimate, 34 % away: looks safe
        [liquidation] = desk.risk.liquidations()
        assert liquidation.price == D("69701.5")  # 70,050 / 1.005 rounded up to the tick
        assert desk.of(KillSwitchTriggered) == []

        sim_clock.advance_to(START_NS + 5 * S)
        desk.mark("BTC/USDT:USDT", "61000")  # no fill: only the mark moved
        [liquidation] = desk.risk.liquidations()
        assert liquidation.mark == D(61_000)
        assert liquidation.distance is not None
        assert round(liquidation.distance, 4) == D("0.1426")
    [trip] = desk.of(KillSwitchTriggered)
    assert trip.reason == "liquidation_distance"
    assert trip.detail == (
        "BTC perp qty -1 mark 61000 liquidation 69701.5: distance 0.1426 < min 0.15"
    )


async def test_deleveraging_is_asked_for_before_the_kill_switch(sim_clock: SimulatedClock) -> None:
    desk = desk_on(sim_clock)  # deleverage below 20 % distance, kill switch below 15 %
    async with desk.risk:
        # USDT 20,000: liquidation at 80,050 / 1.005 = 79,651.7, 32.75 % away at 60,000
        desk.given(short_book("90000", usdt="20000"))
        assert desk.of(DeleverageRequired) == []
        sim_clock.advance_to(START_NS + 5 * S)
        desk.mark("BTC/USDT:USDT", "67000")  # distance 0.1888: deleverage, not yet the switch
        desk.publish_snapshot(short_book("90000", usdt="20000"))
    assert desk.of(KillSwitchTriggered) == []
    [request] = desk.of(DeleverageRequired)
    assert request.reason == "liquidation_distance"
    assert (request.asset, request.symbol, request.side) == ("BTC", "BTC/USDT:USDT", "buy")
    assert (request.limit, request.target) == (D("0.2"), D("0.22"))
    assert "distance 0.1888 < 0.2" in request.detail
    # buying back that notional at the mark lifts the distance to the target, and no more
    closed = request.notional / D(67_000)
    assert D(0) < closed < 1
    rest = snapshot(
        D(20_000) - closed * D(7_000),  # the loss of the part closed is realised
        {"BTC": (D(0), D(60_000), closed - 1, D(60_000)), "ETH": (D(30), D(3_000), D(0), D(3_000))},
    )
    after = desk_on(sim_clock)
    after.instruments()
    after.risk.on_snapshot(rest)
    after.mark("BTC/USDT:USDT", "67000")
    [liquidation] = after.risk.liquidations()
    assert liquidation.distance is not None
    assert D("0.22") <= liquidation.distance < D("0.2201")


async def test_a_drift_of_net_leverage_above_the_cap_asks_for_a_reducing_trade(
    sim_clock: SimulatedClock,
) -> None:
    """Item 4: leverage drifted to 3.03x by price moves alone, with nothing to bring it back."""
    risk = RiskConfig(
        max_asset_weight=D(4),
        max_net_leverage=D(3),
        max_gross_leverage=D(4),
        max_margin_usage=D(1),
        min_liquidation_distance=D("0.01"),
        deleverage_liquidation_distance=D("0.01"),
    )
    desk = Desk(Bus(sim_clock), sim_clock, risk)
    # NAV 100,000: BTC perp long 7.5 at 40,000, 300,000 of net exposure: 3.00x, at the cap
    book = snapshot(D(100_000), {"BTC": (D(0), D(40_000), D("7.5"), D(40_000))})
    async with desk.risk:
        desk.given(book)
        sim_clock.advance_to(START_NS + 5 * S)
        desk.mark("BTC/USDT:USDT", "40400")  # +1 %: 303,000 on NAV 103,000 = 2.94x: fine
        desk.publish_snapshot(book)
        assert desk.of(DeleverageRequired) == []
        # funding and fees took 3,000: 303,000 on NAV 100,000 = 3.03x, and no order did it
        desk.publish_snapshot(snapshot(D(97_000), {"BTC": (D(0), D(40_000), D("7.5"), D(40_000))}))
    [request] = desk.of(DeleverageRequired)
    assert request.reason == "net_leverage"
    assert (request.asset, request.symbol, request.side) == ("BTC", "", "sell")
    assert (request.measure, request.limit, request.target) == (D("3.03"), D(3), D("2.7"))
    # 303,000 − 2.7 × 100,000 = 33,000 to take off
    assert request.notional == D("33000.00")


async def test_margin_usage_above_its_limit_asks_to_reduce_the_perps(
    sim_clock: SimulatedClock,
) -> None:
    risk = RiskConfig(max_asset_weight=D(10), max_net_leverage=D(10), max_margin_usage=D("0.3"))
    desk = Desk(Bus(sim_clock), sim_clock, risk)
    # USDT 10,000 backs a 40,000 BTC perp long at 10x: initial margin 4,000, usage 0.4 > 0.3;
    # liquidation at 30,000 / 0.996 = 30,120.5, 24.7 % away: no other breach
    book = snapshot(
        D(10_000),
        {"BTC": (D(0), D(40_000), D(1), D(40_000)), "ETH": (D(20), D(3_000), D(0), D(3_000))},
    )
    async with desk.risk:
        desk.given(book)
    [request] = desk.of(DeleverageRequired)
    assert request.reason == "margin_usage"
    assert (request.asset, request.symbol, request.side) == ("BTC", "BTC/USDT:USDT", "sell")
    assert (request.measure, request.limit, request.target) == (D("0.4"), D("0.3"), D("0.27"))
    # to 0.27 × 10,000 = 2,700 of initial margin: 27,000 of notional, so 13,000 comes off
    assert request.notional == D(13_000)


@pytest.mark.parametrize(("client_order_id", "asked"), [("bl-0ld5e551-d7-0", 0), ("manual-1", 1)])
async def test_no_deleveraging_is_asked_for_an_asset_whose_own_order_was_found_open(
    sim_clock: SimulatedClock, client_order_id: str, asked: int
) -> None:
    """After a restart the engine's own order for BTC is still open at the venue: it may be the
    very reduction, so none is asked for on top until it ends. A hand-placed order is no reason
    to wait."""
    risk = RiskConfig(max_asset_weight=D(10), max_net_leverage=D(10), max_margin_usage=D("0.3"))
    desk = Desk(Bus(sim_clock), sim_clock, risk)
    book = snapshot(
        D(10_000),
        {"BTC": (D(0), D(40_000), D(1), D(40_000)), "ETH": (D(20), D(3_000), D(0), D(3_000))},
    )
    found = OrderStatusReported(
        START_NS,
        START_NS,
        client_order_id,
        "v9",
        "BTC/USDT:USDT",
        "sell",
        D("0.3"),
        D(0),
        None,
        "open",
    )
    async with desk.risk:
        desk.bus.publish(found)
        desk.given(book)
    assert len(desk.of(DeleverageRequired)) == asked


# ------------------------------------------------------------------ property: == exchange


def _book(ledger: Ledger, events: list[Message]) -> None:
    for event in events:
        if isinstance(event, OrderFilled):
            ledger.apply_fill(event)
        elif isinstance(event, BalanceUpdated):
            ledger.apply_balance(event)
        elif isinstance(event, PositionUpdated):
            ledger.apply_position(event)


def _price(exchange: SimExchange, ledger: Ledger, symbol: str, price: Decimal, ts: int) -> None:
    if ":" in symbol:
        update = MarkPriceUpdated(
            ts_event=ts,
            ts_init=ts,
            symbol=symbol,
            mark=price,
            index=price,
            funding_rate=D(0),
            next_funding_ns=ts + 8 * 3600 * S,
        )
        _book(ledger, exchange.on_mark(update))
        ledger.mark_perp(base_of(symbol), price)
    if ":" not in symbol or ts == START_NS:  # a perp trades at its last price: one bar first
        bar = Bar(
            ts_event=ts,
            ts_init=ts,
            symbol=symbol,
            interval_s=3600,
            open=price,
            high=price,
            low=price,
            close=price,
            volume=D(1),
        )
        _book(ledger, exchange.on_bar(bar))
        if ":" not in symbol:
            ledger.mark_spot(base_of(symbol), price)


def _trade(exchange: SimExchange, ledger: Ledger, symbol: str, qty: Decimal, ts: int) -> None:
    if qty == 0:
        return
    order = SubmitOrder(
        ts_event=ts,
        ts_init=ts,
        intent_id=f"i-{symbol}",
        client_order_id=f"c-{symbol}-{ts}",
        symbol=symbol,
        side="buy" if qty > 0 else "sell",
        order_type="market",
        qty=abs(qty),
        price=None,
        reduce_only=False,
        post_only=False,
        time_in_force="GTC",
    )
    _book(ledger, exchange.submit(order, ts))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    usdt=st.decimals("2000", "200000", places=2),
    spot=st.decimals("0", "2", places=4),
    btc=st.decimals("-3", "3", places=3),
    eth=st.decimals("-40", "40", places=2),
    entry=st.tuples(st.decimals("20000", "70000", places=1), st.decimals("1000", "4000", places=2)),
    moves=st.lists(
        st.tuples(st.decimals("0.7", "1.3", places=3), st.decimals("0.7", "1.3", places=3)),
        min_size=1,
        max_size=4,
    ),
)
def test_the_actors_liquidation_price_equals_the_exchanges_at_every_mark(
    usdt: Decimal,
    spot: Decimal,
    btc: Decimal,
    eth: Decimal,
    entry: tuple[Decimal, Decimal],
    moves: list[tuple[Decimal, Decimal]],
) -> None:
    exchange = SimExchange(INSTRUMENTS, SimConfig(balances={"USDT": usdt}))
    ledger = Ledger()
    _book(ledger, exchange.account_events(START_NS))
    ts = START_NS
    for base, price in zip(("BTC", "ETH"), entry, strict=True):
        _price(exchange, ledger, f"{base}/USDT", price, ts)
        _price(exchange, ledger, f"{base}/USDT:USDT", price, ts)
    _trade(exchange, ledger, "BTC/USDT", spot, ts)  # spends collateral: USDT only counts
    _trade(exchange, ledger, "BTC/USDT:USDT", btc, ts)
    _trade(exchange, ledger, "ETH/USDT:USDT", eth, ts)
    perps = ("BTC/USDT:USDT", "ETH/USDT:USDT")
    held = [exchange.position_qty(symbol) for symbol in perps]  # what the margin let through
    assume(any(held))
    clock = SimulatedClock(START_NS)
    risk = RiskManager(Bus(clock), clock, risk=MANDATE, bands=BandsConfig())
    risk.on_instruments(
        InstrumentsLoaded(ts_event=ts, ts_init=ts, venue="sim", instruments=tuple(INSTRUMENTS))
    )
    compared = 0
    for step, (btc_move, eth_move) in enumerate(moves, start=1):
        ts = START_NS + step * S
        if step == 1:  # the snapshot is taken at the entry marks; later marks move past it
            risk.on_snapshot(ledger.snapshot(ts - 1, "neutral"))
        for symbol, move, price in (
            ("BTC/USDT:USDT", btc_move, entry[0]),
            ("ETH/USDT:USDT", eth_move, entry[1]),
        ):
            mark = (price * move).quantize(D("0.1"))
            _price(exchange, ledger, symbol, mark, ts)
            update = MarkPriceUpdated(
                ts_event=ts,
                ts_init=ts,
                symbol=symbol,
                mark=mark,
                index=mark,
                funding_rate=D(0),
                next_funding_ns=ts,
            )
            risk.on_mark_price(update)
        if [exchange.position_qty(symbol) for symbol in perps] != held:
            break  # liquidated: the exchange closed the positions
        actor = {liq.symbol: liq for liq in risk.liquidations()}
        for symbol in perps:
            venue = exchange.liquidation_price(symbol)
            mine = actor.get(symbol)
            assert (None if mine is None else mine.price) == venue, (symbol, step)
            if mine is not None:
                assert mine.mark == exchange.mark_price(symbol)
            compared += 1
        # and a fresh snapshot at these marks gives the same as the re-valued old one
        risk.on_snapshot(ledger.snapshot(ts, "neutral"))
        again = {liq.symbol: liq.price for liq in risk.liquidations()}
        assert again == {s: liq.price for s, liq in actor.items()}
    assume(compared > 0)


# ------------------------------------------------- remembered prices (issue 13: speed)


def _fresh(book: Book, symbol: str) -> Decimal | None:
    inst = book.perps.get(base_of(symbol))
    tick = inst.tick_size if inst is not None else None
    return account_liquidation_price(symbol, book.holdings(), book.snapshot.cash, book.table, tick)


def test_a_remembered_liquidation_price_follows_the_snapshot_and_the_other_positions_marks() -> (
    None
):
    table = default_margin_table()
    perps = {i.base: i for i in INSTRUMENTS if i.is_perp}
    two = {"BTC": (D(0), D(60_000), D(-1), D(60_000)), "ETH": (D(0), D(3_000), D(5), D(3_000))}
    books = [
        Book(short_book("80660"), perps, table),
        Book(short_book("80660"), perps, table, {"BTC": D(61_000)}),  # own mark: same price
        Book(short_book("80660", usdt="12000"), perps, table),  # more cash: further away
        Book(snapshot(D(10_000), two), perps, table),
        Book(snapshot(D(10_000), two), perps, table, {"ETH": D(2_000)}),  # the other one fell
        Book(snapshot(D(10_000), two), {}, table),  # no instruments: not on a tick
    ]
    seen = []
    for book in books * 2:
        for liquidation in book.liquidations():
            want = _fresh(book, liquidation.symbol)
            assert str(liquidation.price) == str(want), (liquidation, want)
            seen.append((liquidation.symbol, liquidation.price))
    btc = [price for symbol, price in seen[:7] if symbol == "BTC/USDT:USDT"]
    assert btc[0] == btc[1] == D("69701.5")
    assert len(set(btc)) == 4  # 10k cash, 12k cash, with ETH at 3,000, with ETH at 2,000
