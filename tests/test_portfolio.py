"""The Portfolio actor, given events → when event → then events, on a real bus and clock.

The bus dispatches synchronously, so what a published event causes has been published by the time
``publish`` returns.
"""

from __future__ import annotations

from decimal import Decimal
from functools import partial

import pytest

from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_SECOND, SimulatedClock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import (
    Config,
    ExecutionConfig,
    InstrumentsConfig,
    PaperConfig,
    RiskConfig,
    VenueConfig,
)
from ballast.engine.kernel.events import (
    AccountKind,
    BalanceUpdated,
    Bar,
    DataRejected,
    FundingPaid,
    HandlerFailed,
    MarkPriceUpdated,
    Message,
    OrderFilled,
    PortfolioSnapshot,
    PositionUpdated,
    QuoteTick,
    Side,
    TradeTick,
)
from ballast.engine.kernel.instruments import binance_defaults
from ballast.engine.trading.market_gate import MarketGate
from ballast.engine.trading.portfolio import Portfolio
from tests.conftest import START_NS
from tests.support.memory_venue import InMemoryVenue

D = Decimal
S = NS_PER_SECOND
BTC, BTC_PERP, ETH = "BTC/USDT", "BTC/USDT:USDT", "ETH/USDT"


class World:
    """A bus, a simulated clock, the actor under test and everything it published."""

    def __init__(self, clock: SimulatedClock, config: Config | None = None) -> None:
        self.clock = clock
        self.bus = Bus(clock)
        self.gate = MarketGate(clock).install(self.bus)  # as every session's bus
        self.portfolio = (
            Portfolio(self.bus, clock)
            if config is None
            else Portfolio.from_config(config, self.bus, clock)
        )
        self.out: list[Message] = []
        for kind in (PortfolioSnapshot, DataRejected, HandlerFailed):
            self.bus.subscribe(kind, self.out.append)

    def given(self, *events: Message) -> None:
        for event in events:
            self.when(event)
        self.out.clear()

    def when(self, event: Message) -> None:
        """``event`` is an instant of its own: the clock moves to it, it is published, and the
        instant ends (timers set for that very time, such as the price snapshot, fire)."""
        self.clock.advance_to(event.ts_event)
        self.bus.publish(event)
        self.clock.advance_to(event.ts_event)

    def snapshots(self) -> list[PortfolioSnapshot]:
        return [m for m in self.out if isinstance(m, PortfolioSnapshot)]

    def rejected(self) -> list[DataRejected]:
        return [m for m in self.out if isinstance(m, DataRejected)]

    def last(self) -> PortfolioSnapshot:
        return self.snapshots()[-1]


def at(seconds: float) -> int:
    return START_NS + int(seconds * S)


def quote(symbol: str, bid: str | int, ask: str | int, t: float) -> QuoteTick:
    return QuoteTick(at(t), at(t), symbol, D(bid), D(ask), D(1), D(1))


def mid(symbol: str, price: str | int, t: float) -> QuoteTick:
    return quote(symbol, price, price, t)


def bar(symbol: str, close: str | int, t: float) -> Bar:
    c = D(close)
    return Bar(at(t), at(t), symbol, 3600, c, c, c, c, D(10))


def mark(symbol: str, price: str | int, t: float, rate: str = "0.0001") -> MarkPriceUpdated:
    return MarkPriceUpdated(at(t), at(t), symbol, D(price), D(price), D(rate), at(t + 3600))


def balance(asset: str, qty: str | int, t: float, account: AccountKind = "spot") -> BalanceUpdated:
    return BalanceUpdated(at(t), at(t), account, asset, D(qty), D(0))


def fill(
    symbol: str,
    side: Side,
    qty: str,
    price: str | int,
    t: float,
    fee: str = "0",
    fee_asset: str = "USDT",
    trade_id: str = "t1",
) -> OrderFilled:
    return OrderFilled(
        at(t), at(t), "d1-0", "v1", trade_id, symbol, side, D(qty), D(price), D(fee), fee_asset,
        "taker",
    )  # fmt: skip


def funding(symbol: str, qty: str, price: str | int, rate: str, t: float) -> FundingPaid:
    amount = -D(qty) * D(price) * D(rate)  # rate > 0: longs pay
    return FundingPaid(at(t), at(t), symbol, D(qty), D(price), D(rate), amount, "USDT")


EXAMPLE_ONE = (
    balance("USDT", 40_000, 0),
    balance("BTC", 1, 0),
    balance("ETH", 10, 0),
    mid(BTC, 40_000, 1),
    mid(ETH, 2_000, 1),
)
"""MISSION.md example 1: BTC $40,000 (1 BTC), ETH $20,000 (10 ETH), USDT $40,000."""

BTC_TO_52K = tuple(mid(BTC, p, 10 + i) for i, p in enumerate((43_500, 47_000, 50_000, 52_000)))
"""BTC +30 % in steps inside the guard's 10 % band, one second apart."""


@pytest.fixture
def world(sim_clock: SimulatedClock) -> World:
    return World(sim_clock)


def identity_holds(s: PortfolioSnapshot, nav0: Decimal) -> bool:
    return s.nav - nav0 == s.price_pnl + s.funding_pnl - s.fees_paid + s.transfers


# ------------------------------------------------------------------ valuation


def test_no_snapshot_until_every_held_asset_has_a_price(world: World) -> None:
    world.given(*EXAMPLE_ONE[:3])
    world.when(mid(BTC, 40_000, 1))
    assert world.snapshots() == []
    world.when(mid(ETH, 2_000, 1))
    [snapshot] = world.snapshots()
    assert snapshot.trigger == "price"
    assert snapshot.nav == D("100000.00")
    assert [a.weight for a in snapshot.assets] == [D("0.40"), D("0.20")]


def test_worked_example_one_btc_up_30_percent(world: World) -> None:
    world.given(*EXAMPLE_ONE)
    for tick in BTC_TO_52K:
        world.when(tick)
    snapshot = world.last()
    assert snapshot.nav == D("112000.00")
    btc = snapshot.assets[0]
    assert btc.asset == "BTC"
    assert btc.spot_value == D("52000.00")
    assert btc.weight == D(52_000) / D(112_000) == D("0.4642857142857142857142857143")
    assert btc.weight.quantize(D("0.0001")) == D("0.4643")  # 46.43 % > 45 %: band breached
    assert snapshot.price_pnl == D("12000.00")
    assert identity_holds(snapshot, D(100_000))


def test_worked_example_one_overlay_short_and_its_fee(world: World) -> None:
    """The $7,200 overlay short: 0.144 BTC at a perp mark of 50,000 (0.144 × 50,000 = 7,200; the
    perp trades below the 52,000 spot so the short is a whole number of 0.001 BTC lots). The
    taker fee of 0.05 % is 3.60: NAV falls by exactly that, net exposure is 44,800 = 40.00 %."""
    world.given(*EXAMPLE_ONE, *BTC_TO_52K, mark(BTC_PERP, 50_000, 14))
    assert world.portfolio.ledger.nav() == D("112000.00")
    world.when(fill(BTC_PERP, "sell", "0.144", 50_000, 14.1, fee="3.60"))
    [snapshot] = world.snapshots()
    assert snapshot.trigger == "fill"
    assert snapshot.nav == D("112000.00") - D("3.60") == D("111996.40")
    assert snapshot.fees_paid == D("3.60")
    btc = snapshot.assets[0]
    assert btc.perp_qty == D("-0.144")
    assert btc.perp_notional == D("-7200.00")
    assert btc.net_exposure == D("44800.00")
    assert btc.weight.quantize(D("0.0001")) == D("0.4000")  # 40.00 %
    assert snapshot.gross_leverage == (D(52_000) + D(7_200) + D(20_000)) / D("111996.40")
    assert identity_holds(snapshot, D(100_000))


# ------------------------------------------------------------------ when snapshots are published


def test_fill_snapshot_is_immediate_even_inside_the_price_throttle(world: World) -> None:
    world.given(*EXAMPLE_ONE)
    world.when(mid(BTC, 40_100, 1.2))  # throttled: within a second of the last price snapshot
    assert world.snapshots() == []
    world.when(fill(BTC, "buy", "0.1", 40_100, 1.3, fee="4.01"))
    [snapshot] = world.snapshots()
    assert snapshot.trigger == "fill"
    assert snapshot.nav == D("100095.99")  # +100 of BTC move, −4.01 of fee


def test_price_snapshots_are_throttled_by_event_time_with_a_trailing_snapshot(world: World) -> None:
    world.given(*EXAMPLE_ONE)  # the last price snapshot was at t=1
    for t, price in ((1.3, 40_100), (1.9, 40_200), (2.0, 40_300), (2.5, 40_400), (3.1, 40_500)):
        world.when(mid(BTC, price, t))
    # At most one per second; a held-back move gets a trailing snapshot at the interval's end,
    # valued at the prices known then (the 2.0 s timer fires before the 2.0 s quote).
    assert [(s.ts_event, s.nav) for s in world.snapshots()] == [
        (at(2.0), D(100_200)),
        (at(3.0), D(100_400)),
    ]
    world.clock.advance_to(at(4.0))
    assert world.snapshots()[-1].nav == D(100_500)  # the last move of the burst is evaluated
    assert {s.trigger for s in world.snapshots()} == {"price"}


def test_the_price_snapshot_interval_is_a_setting_and_zero_values_every_quote(
    sim_clock: SimulatedClock,
) -> None:
    world = World(sim_clock, Config(execution=ExecutionConfig(price_snapshot_interval_s=0)))
    world.given(*EXAMPLE_ONE)
    for t, price in ((1.3, 40_100), (1.9, 40_200), (2.0, 40_300)):
        world.when(mid(BTC, price, t))
    assert [(s.ts_event, s.nav) for s in world.snapshots()] == [
        (at(1.3), D(100_100)),
        (at(1.9), D(100_200)),
        (at(2.0), D(100_300)),
    ]
    default = World(sim_clock, Config())
    assert default.portfolio.min_snapshot_interval_ns == S  # one second, as Portfolio's own
    quarter = Config(execution=ExecutionConfig(price_snapshot_interval_s=0.25))
    assert World(sim_clock, quarter).portfolio.min_snapshot_interval_ns == S // 4


def test_a_price_snapshot_waits_for_every_price_of_its_instant(world: World) -> None:
    """Bars of several instruments closing at one time: the portfolio is valued once, after all
    of them (never with BTC at the new close and ETH still at the previous one)."""
    world.given(*EXAMPLE_ONE)
    world.clock.advance_to(at(5))
    world.bus.publish(bar(BTC, 44_000, 5))
    world.bus.publish(bar(ETH, 2_100, 5))
    assert world.snapshots() == []  # the instant is still being delivered
    world.clock.advance_to(at(5))  # time moves on: the instant is complete
    [snapshot] = world.snapshots()
    assert (snapshot.ts_event, snapshot.trigger) == (at(5), "price")
    assert snapshot.nav == D(40_000 + 44_000 + 21_000)


def test_account_events_snapshot_with_their_trigger(world: World) -> None:
    world.given(*EXAMPLE_ONE)
    world.when(balance("USDT", 45_000, 2))
    world.when(mark(BTC_PERP, 40_000, 2.1))
    world.when(PositionUpdated(at(3), at(3), BTC_PERP, D(0), D(0), D(40_000), D(0), D(0), None))
    assert [s.trigger for s in world.snapshots()] == ["balance", "price", "position"]
    assert world.last().transfers == D(5_000)
    assert world.last().nav == D(105_000)


def test_a_fill_delivered_twice_is_booked_once(world: World) -> None:
    world.given(*EXAMPLE_ONE)
    world.when(fill(BTC, "buy", "0.1", 40_000, 2, trade_id="t7"))
    world.when(fill(BTC, "buy", "0.1", 40_000, 3, trade_id="t7"))
    assert len(world.snapshots()) == 1
    assert world.portfolio.ledger.spot_qty("BTC") == D("1.1")


def test_a_fill_that_cannot_be_valued_fails_loudly_and_books_nothing(world: World) -> None:
    world.given(*EXAMPLE_ONE)
    world.when(fill(ETH, "sell", "1", 2_000, 2, fee="0.01", fee_asset="BNB"))
    [failure] = world.out
    assert isinstance(failure, HandlerFailed)
    assert "fee in BNB" in failure.error
    assert world.portfolio.ledger.spot_qty("ETH") == D(10)


# ------------------------------------------------------------------ absurd data


def test_absurd_tick_is_rejected_and_nav_does_not_move(world: World) -> None:
    world.given(*EXAMPLE_ONE)
    world.when(mid(BTC, 400, 5))  # −99 %: a fat finger or a broken feed
    [rejected] = world.rejected()
    assert world.out == [rejected]
    assert rejected == DataRejected(at(5), at(5), BTC, "price_jump", rejected.detail, rejected.seq)
    assert rejected.seq == world.bus.last_seq - 1  # the tick's record, journaled just before
    assert "99.00%" in rejected.detail
    world.when(balance("USDT", 40_000, 6))  # any account event shows the book unchanged
    assert world.last().nav == D("100000.00")
    assert world.portfolio.ledger.spot_prices["BTC"] == D(40_000)


def test_crash_is_accepted_after_three_consistent_points(world: World) -> None:
    world.given(*EXAMPLE_ONE)
    for t, price in ((5, 20_000), (6, 20_200), (7, 19_900)):
        world.when(mid(BTC, price, t))
    assert [r.reason for r in world.rejected()] == ["price_jump", "price_jump"]
    [snapshot] = world.snapshots()
    assert snapshot.ts_event == at(7)
    assert snapshot.nav == D("79900.00")
    assert snapshot.price_pnl == D("-20100.00")


def test_crossed_quote_is_rejected(world: World) -> None:
    world.given(*EXAMPLE_ONE)
    world.when(quote(BTC, 40_010, 40_000, 5))
    [rejected] = world.out
    assert isinstance(rejected, DataRejected)
    assert rejected == DataRejected(
        at(5), at(5), BTC, "crossed_quote", "bid 40010 is above ask 40000", rejected.seq
    )


def test_out_of_order_trade_and_non_positive_bar_are_rejected(world: World) -> None:
    world.given(*EXAMPLE_ONE)
    world.when(TradeTick(at(0.5), at(1.5), BTC, D(39_000), D(1), "sell", "x1"))
    world.when(bar(ETH, 0, 2))
    assert [(r.symbol, r.reason) for r in world.rejected()] == [
        (BTC, "out_of_order"),
        (ETH, "non_positive_price"),
    ]
    assert world.snapshots() == []


# ------------------------------------------------------------------ perps and funding


def test_perp_bars_mark_the_perp_until_its_mark_price_stream_is_seen(world: World) -> None:
    world.given(*EXAMPLE_ONE, fill(BTC_PERP, "buy", "0.5", 40_000, 2))
    world.when(bar(BTC_PERP, 41_000, 3))
    assert world.last().assets[0].perp_price == D(41_000)
    world.when(mark(BTC_PERP, 41_500, 4, rate="0.0002"))
    assert world.last().assets[0].perp_price == D(41_500)
    assert world.portfolio.funding_rates == {"BTC": D("0.0002")}
    world.out.clear()
    world.when(bar(BTC_PERP, 42_000, 5))
    assert world.snapshots() == []
    assert world.portfolio.ledger.perp_marks["BTC"] == D(41_500)


def test_long_perp_pays_funding_when_rate_is_positive(world: World) -> None:
    world.given(*EXAMPLE_ONE, mark(BTC_PERP, 40_000, 2), fill(BTC_PERP, "buy", "0.5", 40_000, 3))
    world.when(funding(BTC_PERP, "0.5", 40_000, "0.0001", 4))
    [snapshot] = world.snapshots()
    assert snapshot.trigger == "funding"
    assert snapshot.funding_pnl == D("-2.00")  # notional 20,000 × 0.01 %
    assert snapshot.assets[0].perp_funding == D("-2.00")
    assert snapshot.nav == D("99998.00")
    assert identity_holds(snapshot, D(100_000))


def test_long_perp_receives_funding_when_rate_is_negative(world: World) -> None:
    world.given(*EXAMPLE_ONE, mark(BTC_PERP, 40_000, 2), fill(BTC_PERP, "buy", "0.5", 40_000, 3))
    world.when(mark(BTC_PERP, 42_000, 4, rate="-0.0003"))
    rate = world.portfolio.funding_rates["BTC"]
    assert world.portfolio.ledger.funding_due("BTC", rate) == D("6.30")
    world.when(funding(BTC_PERP, "0.5", 42_000, str(rate), 5))
    snapshot = world.last()
    assert snapshot.funding_pnl == D("6.30")  # notional at mark 21,000 × 0.03 %
    assert snapshot.assets[0].perp_funding == D("6.30")
    assert identity_holds(snapshot, D(100_000))


def test_from_config_takes_quote_and_price_deviation(sim_clock: SimulatedClock) -> None:
    config = Config(
        venue=VenueConfig(quote="USDC"),
        instruments=InstrumentsConfig(spot=["BTC/USDC"], perp=["BTC/USDC:USDC"]),
        paper=PaperConfig(balances={"USDC": D(1000)}),
        risk=RiskConfig(max_price_deviation=D("0.05")),
    )
    portfolio = Portfolio.from_config(config, Bus(sim_clock), sim_clock)
    assert portfolio.ledger.quote == "USDC"
    gate = MarketGate.from_config(config, sim_clock)
    assert gate.guard.max_deviation == D("0.05")


# ------------------------------------------------------------------ against a venue's own books


class VenueWorld(World):
    """The actor fed by an InMemoryVenue (perps settle in its separate futures wallet)."""

    def __init__(self, clock: SimulatedClock) -> None:
        super().__init__(clock)
        self.venue = InMemoryVenue(
            binance_defaults(["BTC", "ETH"]),
            {"USDT": D(40_000), "BTC": D(1), "ETH": D(10)},
            clock,
            futures_balances={"USDT": D(5_000)},
            prices={BTC: D(40_000), ETH: D(2_000), BTC_PERP: D(40_000)},
        )
        self.venue.attach(self.bus.send)
        self.orders = 0

    async def price(self, symbol: str, price: int, t: float) -> None:
        self.clock.advance_to(at(t))
        await self.venue.set_price(symbol, D(price))
        self.when(mark(symbol, price, t) if symbol == BTC_PERP else mid(symbol, price, t))

    async def market(self, symbol: str, side: Side, qty: str, t: float) -> None:
        self.clock.advance_to(at(t))
        self.orders += 1
        cid = f"o{self.orders}"
        await self.venue.submit(
            SubmitOrder(at(t), at(t), cid, cid, symbol, side, "market", D(qty), None, False, False,
                        "IOC")
        )  # fmt: skip

    async def venue_nav(self) -> Decimal:
        """NAV from the venue's own statements: both wallets, spot at price, perp unrealised."""
        nav = D(0)
        for event in await self.venue.account():
            if isinstance(event, BalanceUpdated):
                price = D(1) if event.asset == "USDT" else self.venue.price(f"{event.asset}/USDT")
                assert price is not None
                nav += (event.free + event.locked) * price
            elif isinstance(event, PositionUpdated):
                nav += event.unrealized_pnl
        return nav


async def test_books_agree_with_the_venue_to_the_digit(sim_clock: SimulatedClock) -> None:
    world = VenueWorld(sim_clock)
    for event in await world.venue.account():
        world.when(event)
    await world.price(BTC, 40_000, 1)
    await world.price(ETH, 2_000, 1)
    await world.price(BTC_PERP, 40_000, 1)
    steps = [
        partial(world.market, BTC, "sell", "0.1", 2),
        partial(world.market, BTC_PERP, "sell", "0.144", 3),
        partial(world.price, BTC_PERP, 41_000, 4),
        partial(world.price, BTC, 41_100, 4),
        # a partial close: entry kept, PnL realised
        partial(world.market, BTC_PERP, "buy", "0.05", 5),
        partial(world.price, BTC_PERP, 40_700, 6),
        partial(world.market, BTC_PERP, "buy", "0.2", 7),  # flip to a long
        partial(world.market, ETH, "buy", "0.5", 8),
    ]
    for step in steps:
        await step()
        ledger = world.portfolio.ledger
        assert ledger.transfers == 0
        assert ledger.identity_residual() == 0
        assert ledger.nav() == await world.venue_nav()
    assert world.portfolio.ledger.positions["BTC"].qty == D("0.106")
    assert world.last().fees_paid > 0
    assert not [m for m in world.out if isinstance(m, HandlerFailed | DataRejected)]
