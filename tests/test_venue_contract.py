"""The Venue contract: one suite, run against every venue implementation.

Each implementation joins through a harness (``HARNESSES``) that builds it with given instruments,
balances and prices and can move a price. Today: the SimulatedVenue (the product's venue), the
InMemoryVenue test double of tests/support (two wallets, transport failures), which stands in for
a venue in other tests and so must honour the contract too, and the CcxtVenue (the real ccxt.pro
client against the loopback Binance exchange on 127.0.0.1). A venue that cannot honour a test
(say, a live testnet that cannot set prices) skips it in its harness (its ``skips``: test name →
reason), never by editing the test.

An asynchronous venue reports over its streams after a command returns: every test waits for
``world.settled()`` before it reads what was reported (a no-op for the synchronous venues; the
ccxt harness waits until what the sink holds agrees with the exchange's own state). The world
calls ``venue.start()`` after attaching the sink, as a session does (a no-op for the others).

Every test reads: given a venue with 100,000 USDT and 1 BTC at BTC 50,000 → when commands →
then the events it reported (through the sink it was attached to) and what it answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack
from decimal import Decimal
from typing import Any, ClassVar, Protocol

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ballast.adapters.ccxt import BINANCE, CcxtVenue
from ballast.adapters.loopback import wire
from ballast.adapters.loopback.core import LoopbackCore
from ballast.adapters.loopback.server import LoopbackServer
from ballast.adapters.sim import FeeSchedule, SimConfig
from ballast.adapters.sim.venue import SimulatedVenue
from ballast.engine.kernel.clock import NS_PER_SECOND, Clock, SimulatedClock
from ballast.engine.kernel.commands import CancelOrder, SubmitOrder
from ballast.engine.kernel.config import OrderTransport
from ballast.engine.kernel.events import (
    BalanceUpdated,
    MarkPriceUpdated,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    OrderType,
    PositionUpdated,
    Side,
    TradeTick,
)
from ballast.engine.kernel.instruments import Instrument, binance_defaults, index_by_symbol
from ballast.engine.trading.venue import Venue
from tests.conftest import START_NS
from tests.support.loopback import API_KEY, SECRET
from tests.support.memory_venue import InMemoryVenue
from tests.support.waiting import eventually

SPOT = "BTC/USDT"
PERP = "BTC/USDT:USDT"
PRICE = Decimal(50_000)
INSTRUMENTS = binance_defaults(["BTC", "ETH"])
BY_SYMBOL = index_by_symbol(INSTRUMENTS)
BALANCES = {"USDT": Decimal(100_000), "BTC": Decimal(1)}
MARGIN = Decimal(10_000)  # USDT in the futures wallet
PRICES = {SPOT: PRICE, PERP: PRICE, "ETH/USDT": Decimal(3_000), "ETH/USDT:USDT": Decimal(3_000)}


class VenueHarness(Protocol):
    """How the contract builds and drives one venue implementation."""

    async def open(
        self,
        instruments: Sequence[Instrument],
        balances: Mapping[str, Decimal],
        margin: Decimal,
        prices: Mapping[str, Decimal],
        clock: Clock,
    ) -> Venue:
        """A venue holding ``balances`` in its spot wallet and ``margin`` USDT for perps."""

    async def move_price(self, symbol: str, price: Decimal) -> None: ...

    async def close(self) -> None: ...


class MemoryHarness:
    def __init__(self) -> None:
        self.venue: InMemoryVenue | None = None

    async def open(
        self,
        instruments: Sequence[Instrument],
        balances: Mapping[str, Decimal],
        margin: Decimal,
        prices: Mapping[str, Decimal],
        clock: Clock,
    ) -> Venue:
        self.venue = InMemoryVenue(
            instruments, balances, clock, futures_balances={"USDT": margin}, prices=prices
        )
        return self.venue

    async def move_price(self, symbol: str, price: Decimal) -> None:
        assert self.venue is not None
        await self.venue.set_price(symbol, price)

    async def close(self) -> None:
        self.venue = None


_UNIFIED = (
    "the simulated exchange keeps one unified cross-margin account: perp fees and realised PnL "
    "settle in the one USDT balance (account 'spot'), there is no separate futures wallet"
)


class SimHarness:
    """The SimulatedVenue with zero latency. One unified account: ``balances`` (the spot USDT also
    margins the perps; ``margin`` has no wallet of its own). Prices are trades, one second apart
    on the simulated clock (a resting order only fills on data stamped after its submit)."""

    skips: ClassVar[dict[str, str]] = {
        "test_perp_market_sell_opens_a_short_position": _UNIFIED,
        "test_closing_a_perp_realises_pnl_into_the_futures_wallet": _UNIFIED,
        "test_account_reports_balances_and_positions_after_fills": _UNIFIED,
        "test_a_perp_position_is_marked_to_the_new_price": (
            "like Binance USD-M, the simulated exchange reports a position when it changes (fill, "
            "funding, liquidation), not on every mark move; the portfolio marks from market data"
        ),
    }

    def __init__(self) -> None:
        self.venue: SimulatedVenue | None = None
        self.clock = SimulatedClock(START_NS)
        self.trades = 0

    async def open(
        self,
        instruments: Sequence[Instrument],
        balances: Mapping[str, Decimal],
        margin: Decimal,
        prices: Mapping[str, Decimal],
        clock: Clock,
    ) -> Venue:
        assert isinstance(clock, SimulatedClock)
        self.clock = clock
        fees = FeeSchedule.from_instruments(instruments)
        config = SimConfig(balances=dict(balances), fees=fees)
        self.venue = SimulatedVenue(instruments, clock, config)
        for symbol, price in prices.items():  # the starting prices, before any sink is attached
            self.venue.exchange.on_market(self._trade(symbol, price))
        return self.venue

    async def move_price(self, symbol: str, price: Decimal) -> None:
        assert self.venue is not None
        self.clock.advance_to(self.clock.now_ns() + NS_PER_SECOND)
        await self.venue.on_market(self._trade(symbol, price))

    def _trade(self, symbol: str, price: Decimal) -> TradeTick:
        self.trades += 1
        now = self.clock.now_ns()
        return TradeTick(now, now, symbol, price, Decimal(1), None, f"h-{self.trades}")

    async def close(self) -> None:
        self.venue = None


class CcxtHarness:
    """The CcxtVenue (real ccxt.pro client) against the loopback Binance exchange, which wraps
    the simulated exchange: one unified account as the SimHarness's (every balance is reported
    as the spot account; the USD-M account holds positions only). Prices are trades one second
    apart on the simulated clock the exchange lives on (plus a mark for a perp)."""

    skips: ClassVar[dict[str, str]] = dict(SimHarness.skips)
    transport: ClassVar[OrderTransport] = "rest"

    def __init__(self) -> None:
        self.venue: CcxtVenue | None = None
        self.core: LoopbackCore | None = None
        self.clock = SimulatedClock(START_NS)
        self.stack = AsyncExitStack()
        self.initial: dict[str, Decimal] = {}

    async def open(
        self,
        instruments: Sequence[Instrument],
        balances: Mapping[str, Decimal],
        margin: Decimal,
        prices: Mapping[str, Decimal],
        clock: Clock,
    ) -> Venue:
        assert isinstance(clock, SimulatedClock)
        self.clock = clock
        self.initial = dict(balances)
        fees = FeeSchedule.from_instruments(instruments)
        self.core = LoopbackCore(instruments, SimConfig(balances=dict(balances), fees=fees), clock)
        self.stack.callback(self.core.close)
        self.server = LoopbackServer(self.core, keys={API_KEY: SECRET})
        await self.server.start()
        self.stack.push_async_callback(self.server.stop)
        for symbol, price in prices.items():
            await self._price(symbol, price)
        self.venue = CcxtVenue(
            BINANCE,
            spot=[i.symbol for i in instruments if not i.is_perp],
            perp=[i.symbol for i in instruments if i.is_perp],
            api_key=API_KEY,
            api_secret=SECRET,
            clock=clock,
            rest_url=self.server.rest_url,
            ws_url=self.server.ws_url,
            order_transport=self.transport,
        )
        self.stack.push_async_callback(self.venue.close)
        await self.venue.connect()
        return self.venue

    async def _price(self, symbol: str, price: Decimal) -> None:
        assert self.core is not None
        now = self.clock.now_ns()
        await self.core.on_market(TradeTick(now, now, symbol, price, Decimal(1), None, "h"))
        if ":" in symbol:
            mark = MarkPriceUpdated(now, now, symbol, price, price, Decimal(0), now)
            await self.core.on_market(mark)

    async def move_price(self, symbol: str, price: Decimal) -> None:
        self.clock.advance_to(self.clock.now_ns() + NS_PER_SECOND)
        await self._price(symbol, price)

    async def settled(self, sink: Sink) -> None:
        """Wait until the sink holds what the exchange says happened: every trade as a fill,
        every order's answer, the last balance of every asset and the last position."""
        await eventually(lambda: self._agrees(sink), within_s=10, what="venue reports settled")

    def _agrees(self, sink: Sink) -> bool:
        assert self.core is not None
        state: dict[str, Any] = wire.state(self.core, self.clock.now_ns() // 1_000_000)
        fills = {e.trade_id for e in sink.events if isinstance(e, OrderFilled)}
        if any(str(t["id"]) not in fills for t in state["trades"]):
            return False
        seen: dict[type[Message], set[str]] = {}
        for e in sink.events:
            if isinstance(e, OrderAccepted | OrderCanceled | OrderRejected):
                seen.setdefault(type(e), set()).add(e.client_order_id)
        for o in state["orders"]:
            coid, status = o["clientOrderId"], o["status"]
            wanted = {
                "REJECTED": OrderRejected,
                "CANCELED": OrderCanceled,
                "EXPIRED": OrderCanceled,
            }.get(status, OrderAccepted)
            if coid not in seen.get(wanted, set()):
                return False
        reported = {
            e.asset: (e.free, e.locked)
            for e in sink.events
            if isinstance(e, BalanceUpdated) and e.account == "spot"
        }
        for asset, row in state["balances"].items():
            value = (Decimal(row["free"]), Decimal(row["locked"]))
            default = (self.initial.get(asset, Decimal(0)), Decimal(0))
            if reported.get(asset, default) != value:
                return False
        positions = {e.symbol: e.qty for e in sink.events if isinstance(e, PositionUpdated)}
        for symbol, row in state["positions"].items():
            if positions.get(symbol, Decimal(0)) != Decimal(row["qty"]):
                return False
        return True

    async def close(self) -> None:
        await self.stack.aclose()
        self.venue = None


class CcxtWebSocketOrdersHarness(CcxtHarness):
    """The same, with orders over the exchange's WebSocket API (``create_order_ws``)."""

    transport: ClassVar[OrderTransport] = "websocket"


HARNESSES = [
    pytest.param(MemoryHarness, id="memory"),
    pytest.param(SimHarness, id="sim"),
    pytest.param(CcxtHarness, id="ccxt"),
    pytest.param(CcxtWebSocketOrdersHarness, id="ccxt-ws-orders"),
]


class Sink:
    """What the venue reported, in order."""

    def __init__(self) -> None:
        self.events: list[Message] = []

    async def __call__(self, event: Message) -> int:
        self.events.append(event)
        return len(self.events)

    def of(self, kind: type[Message]) -> list[Message]:
        return [e for e in self.events if isinstance(e, kind)]

    def order_events(self) -> list[type[Message]]:
        return [type(e) for e in self.events if isinstance(e, OrderEvent)]

    def last_balance(self, asset: str, account: str = "spot") -> BalanceUpdated:
        found = [e for e in self.of(BalanceUpdated) if isinstance(e, BalanceUpdated)]
        return [e for e in found if (e.account, e.asset) == (account, asset)][-1]


class World:
    def __init__(self, harness: VenueHarness, venue: Venue, sink: Sink) -> None:
        self.harness = harness
        self.venue = venue
        self.sink = sink

    async def settled(self) -> None:
        """Wait until an asynchronous venue reported what the exchange did (no-op for the
        synchronous venues)."""
        await _settled(self.harness, self.sink)


async def _settled(harness: VenueHarness, sink: Sink) -> None:
    settle = getattr(harness, "settled", None)
    if settle is not None:
        await settle(sink)


@pytest.fixture(params=HARNESSES)
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    harness: VenueHarness = request.param()
    skip = getattr(harness, "skips", {}).get(request.node.originalname)
    if skip is not None:  # a contract point the venue cannot honour, named in its harness
        pytest.skip(skip)
    venue = await harness.open(INSTRUMENTS, BALANCES, MARGIN, PRICES, SimulatedClock(START_NS))
    sink = Sink()
    venue.attach(sink)
    async with venue:
        await venue.start()
        yield World(harness, venue, sink)
    await harness.close()


def order(
    coid: str,
    side: Side,
    qty: str,
    *,
    symbol: str = SPOT,
    order_type: OrderType = "market",
    price: str | None = None,
    reduce_only: bool = False,
    post_only: bool = False,
) -> SubmitOrder:
    return SubmitOrder(
        START_NS,
        START_NS,
        intent_id=coid.removeprefix("bl-"),
        client_order_id=coid,
        symbol=symbol,
        side=side,
        order_type=order_type,
        qty=Decimal(qty),
        price=None if price is None else Decimal(price),
        reduce_only=reduce_only,
        post_only=post_only,
        time_in_force="GTC" if order_type == "limit" else "IOC",
    )


def only_fill(sink: Sink) -> OrderFilled:
    fills = [e for e in sink.events if isinstance(e, OrderFilled)]
    assert len(fills) == 1, fills
    return fills[0]


def only_rejection(sink: Sink) -> OrderRejected:
    rejections = [e for e in sink.events if isinstance(e, OrderRejected)]
    assert len(rejections) == 1, rejections
    return rejections[0]


# ---------------------------------------------------------------------------------- instruments


async def test_instruments_are_listed_by_symbol_with_their_filters(world: World) -> None:
    instruments = await world.venue.instruments()

    assert set(instruments) >= {SPOT, PERP}
    assert instruments[SPOT] == BY_SYMBOL[SPOT]
    assert instruments[PERP].lot_size == Decimal("0.001")


# ---------------------------------------------------------------------------------- market orders


async def test_market_buy_is_submitted_accepted_and_filled_at_the_price_with_taker_fee(
    world: World,
) -> None:
    await world.venue.submit(order("bl-b1", "buy", "0.1"))
    await world.settled()

    assert world.sink.order_events() == [OrderSubmitted, OrderAccepted, OrderFilled]
    fill = only_fill(world.sink)
    assert (fill.client_order_id, fill.side, fill.qty, fill.price) == (
        "bl-b1",
        "buy",
        Decimal("0.1"),
        PRICE,
    )
    assert fill.fee == Decimal("0.1") * PRICE * BY_SYMBOL[SPOT].taker_fee == Decimal(5)
    assert (fill.fee_asset, fill.liquidity) == ("USDT", "taker")


async def test_market_buy_moves_the_balances(world: World) -> None:
    await world.venue.submit(order("bl-b1", "buy", "0.1"))
    await world.settled()

    assert world.sink.last_balance("BTC").free == Decimal("1.1")
    assert world.sink.last_balance("USDT").free == Decimal(100_000 - 5_000 - 5)


async def test_market_sell_is_filled_and_pays_the_fee_from_the_proceeds(world: World) -> None:
    await world.venue.submit(order("bl-s1", "sell", "0.2"))
    await world.settled()

    fill = only_fill(world.sink)
    assert (fill.side, fill.qty, fill.price, fill.fee) == (
        "sell",
        Decimal("0.2"),
        PRICE,
        Decimal(10),
    )
    assert world.sink.last_balance("BTC").free == Decimal("0.8")
    assert world.sink.last_balance("USDT").free == Decimal(100_000 + 10_000 - 10)


async def test_perp_market_sell_opens_a_short_position(world: World) -> None:
    await world.venue.submit(order("bl-p1", "sell", "0.1", symbol=PERP))
    await world.settled()

    fill = only_fill(world.sink)
    assert fill.fee == Decimal("0.1") * PRICE * BY_SYMBOL[PERP].taker_fee
    assert world.sink.last_balance("USDT", account="futures").free == MARGIN - fill.fee
    wallets = {e.account for e in world.sink.events if isinstance(e, BalanceUpdated)}
    assert wallets == {"futures"}  # the spot wallet is untouched
    position = world.sink.of(PositionUpdated)[-1]
    assert isinstance(position, PositionUpdated)
    assert (position.symbol, position.qty, position.entry_price) == (PERP, Decimal("-0.1"), PRICE)
    assert position.unrealized_pnl == 0


async def test_a_perp_position_is_marked_to_the_new_price(world: World) -> None:
    await world.venue.submit(order("bl-p1", "sell", "0.1", symbol=PERP))
    await world.settled()

    await world.harness.move_price(PERP, Decimal(49_000))
    await world.settled()

    position = world.sink.of(PositionUpdated)[-1]
    assert isinstance(position, PositionUpdated)
    assert (position.mark_price, position.unrealized_pnl) == (Decimal(49_000), Decimal(100))


async def test_closing_a_perp_realises_pnl_into_the_futures_wallet(world: World) -> None:
    await world.venue.submit(order("bl-p1", "buy", "0.1", symbol=PERP))
    await world.settled()
    await world.harness.move_price(PERP, Decimal(51_000))
    await world.settled()

    await world.venue.submit(order("bl-p2", "sell", "0.1", symbol=PERP, reduce_only=True))
    await world.settled()

    fees = sum((e.fee for e in world.sink.events if isinstance(e, OrderFilled)), start=Decimal(0))
    margin = world.sink.last_balance("USDT", account="futures")
    assert margin.free == MARGIN + Decimal(100) - fees
    position = world.sink.of(PositionUpdated)[-1]
    assert isinstance(position, PositionUpdated)
    assert position.qty == 0


# ---------------------------------------------------------------------------------- idempotency


async def test_a_duplicate_client_order_id_is_one_order(world: World) -> None:
    await world.venue.submit(order("bl-dup", "buy", "0.1"))
    await world.settled()
    reported = len(world.sink.events)

    await world.venue.submit(order("bl-dup", "buy", "0.1"))
    await world.settled()

    assert len(world.sink.events) == reported
    assert len([e for e in world.sink.events if isinstance(e, OrderFilled)]) == 1
    account = await world.venue.account()
    btc = [e for e in account if isinstance(e, BalanceUpdated) and e.asset == "BTC"]
    assert btc[0].free == Decimal("1.1")


# ---------------------------------------------------------------------------------- rejections


async def test_a_precision_violation_is_rejected_as_an_event(world: World) -> None:
    await world.venue.submit(order("bl-tiny", "buy", "0.000001"))
    await world.settled()

    assert OrderFilled not in world.sink.order_events()
    rejection = only_rejection(world.sink)
    assert rejection.client_order_id == "bl-tiny"
    assert "lot size" in rejection.reason


async def test_an_order_below_minimum_notional_is_rejected(world: World) -> None:
    await world.venue.submit(order("bl-small", "buy", "0.00005"))  # 2.50 USDT < 5 USDT
    await world.settled()

    assert "notional" in only_rejection(world.sink).reason


async def test_an_unknown_symbol_is_rejected(world: World) -> None:
    await world.venue.submit(order("bl-x", "buy", "1", symbol="XYZ/USDT"))
    await world.settled()

    assert only_rejection(world.sink).client_order_id == "bl-x"


async def test_a_spot_buy_beyond_the_cash_is_rejected(world: World) -> None:
    await world.venue.submit(order("bl-big", "buy", "3"))  # 150,000 USDT > 100,000
    await world.settled()

    assert "insufficient" in only_rejection(world.sink).reason


async def test_post_only_that_would_cross_is_rejected(world: World) -> None:
    await world.venue.submit(
        order("bl-po", "buy", "0.1", order_type="limit", price="50100", post_only=True)
    )
    await world.settled()

    assert only_rejection(world.sink).client_order_id == "bl-po"


async def test_reduce_only_that_would_increase_a_position_is_rejected(world: World) -> None:
    await world.venue.submit(order("bl-p1", "sell", "0.1", symbol=PERP))
    await world.settled()

    await world.venue.submit(order("bl-ro", "sell", "0.1", symbol=PERP, reduce_only=True))
    await world.settled()
    await world.venue.submit(order("bl-ro2", "buy", "0.2", symbol=PERP, reduce_only=True))
    await world.settled()

    rejected = [e.client_order_id for e in world.sink.events if isinstance(e, OrderRejected)]
    assert rejected == ["bl-ro", "bl-ro2"]


# ---------------------------------------------------------------------------------- status


async def test_order_status_of_a_filled_order(world: World) -> None:
    await world.venue.submit(order("bl-b1", "buy", "0.1"))
    await world.settled()

    status = await world.venue.order_status("bl-b1", SPOT)

    assert status is not None
    assert (status.client_order_id, status.symbol, status.side, status.state) == (
        "bl-b1",
        SPOT,
        "buy",
        "filled",
    )
    assert (status.qty, status.filled_qty, status.avg_price) == (
        Decimal("0.1"),
        Decimal("0.1"),
        PRICE,
    )
    assert status.venue_order_id == only_fill(world.sink).venue_order_id


async def test_order_status_of_an_unknown_order_is_none(world: World) -> None:
    assert await world.venue.order_status("bl-never", SPOT) is None


# ---------------------------------------------------------------------------------- limit orders


async def test_a_limit_order_below_the_market_rests_and_is_open(world: World) -> None:
    await world.venue.submit(order("bl-l1", "buy", "0.1", order_type="limit", price="49000"))
    await world.settled()

    assert world.sink.order_events() == [OrderSubmitted, OrderAccepted]
    open_orders = await world.venue.open_orders()
    assert [(o.client_order_id, o.state, o.filled_qty) for o in open_orders] == [
        ("bl-l1", "open", Decimal(0))
    ]


async def test_a_resting_limit_fills_at_its_price_as_maker_when_crossed(world: World) -> None:
    await world.venue.submit(order("bl-l1", "buy", "0.1", order_type="limit", price="49000"))
    await world.settled()

    await world.harness.move_price(SPOT, Decimal(48_900))
    await world.settled()

    fill = only_fill(world.sink)
    assert (fill.price, fill.liquidity) == (Decimal(49_000), "maker")
    assert fill.fee == Decimal("0.1") * Decimal(49_000) * BY_SYMBOL[SPOT].maker_fee
    assert await world.venue.open_orders() == []
    assert world.sink.last_balance("USDT").free == Decimal(100_000 - 4_900) - fill.fee
    assert world.sink.last_balance("USDT").locked == 0


async def test_a_limit_order_that_crosses_on_arrival_fills_as_taker(world: World) -> None:
    await world.venue.submit(order("bl-l2", "buy", "0.1", order_type="limit", price="50500"))
    await world.settled()

    fill = only_fill(world.sink)
    assert fill.liquidity == "taker"
    assert fill.price <= Decimal(50_500)


async def test_cancel_takes_a_resting_order_off_the_book(world: World) -> None:
    await world.venue.submit(order("bl-l1", "sell", "0.5", order_type="limit", price="55000"))
    await world.settled()

    await world.venue.cancel(CancelOrder(START_NS, START_NS, "bl-l1", SPOT, "stale"))
    await world.settled()

    canceled = world.sink.of(OrderCanceled)
    assert [(e.client_order_id, e.reason) for e in canceled if isinstance(e, OrderCanceled)] == [
        ("bl-l1", "stale")
    ]
    assert await world.venue.open_orders() == []
    status = await world.venue.order_status("bl-l1", SPOT)
    assert status is not None
    assert status.state == "canceled"
    assert world.sink.last_balance("BTC") == BalanceUpdated(
        START_NS, START_NS, "spot", "BTC", Decimal(1), Decimal(0)
    )


# ---------------------------------------------------------------------------------- account


async def test_account_reports_balances_and_positions_after_fills(world: World) -> None:
    await world.venue.submit(order("bl-b1", "buy", "0.1"))
    await world.settled()
    await world.venue.submit(order("bl-p1", "sell", "0.1", symbol=PERP))
    await world.settled()

    account = await world.venue.account()

    balances = {(e.account, e.asset): e.free for e in account if isinstance(e, BalanceUpdated)}
    perp_fee = Decimal("0.1") * PRICE * BY_SYMBOL[PERP].taker_fee
    assert balances == {
        ("spot", "BTC"): Decimal("1.1"),
        ("spot", "USDT"): Decimal(100_000 - 5_000 - 5),
        ("futures", "USDT"): MARGIN - perp_fee,
    }
    positions = [e for e in account if isinstance(e, PositionUpdated)]
    assert [(p.symbol, p.qty, p.entry_price) for p in positions] == [(PERP, Decimal("-0.1"), PRICE)]
    assert world.sink.events[-1] is not account[-1]  # account() reports, it does not emit


# ---------------------------------------------------------------------------------- accounting


_TRADES = st.lists(
    st.tuples(
        st.sampled_from([SPOT, PERP]),
        st.sampled_from(["buy", "sell"]),
        st.sampled_from(["0.001", "0.01", "0.1"]),
        st.sampled_from([Decimal(45_000), PRICE, Decimal(52_500)]),
    ),
    max_size=8,
)


@pytest.mark.parametrize("make_harness", HARNESSES)
@settings(max_examples=25, deadline=None)
@given(trades=_TRADES)
def test_nav_moves_by_price_pnl_minus_fees(
    make_harness: type[VenueHarness],
    trades: list[tuple[str, Side, str, Decimal]],
) -> None:
    """NAV = cash + Σ spot × price + Σ perp unrealised, and NAV − NAV0 = price PnL − fees."""
    asyncio.run(_nav_identity(make_harness(), trades))


async def _nav_identity(
    harness: VenueHarness, trades: list[tuple[str, Side, str, Decimal]]
) -> None:
    venue = await harness.open(INSTRUMENTS, BALANCES, MARGIN, PRICES, SimulatedClock(START_NS))
    sink = Sink()
    venue.attach(sink)
    await venue.start()
    nav0 = _nav(await venue.account(), PRICE)
    price, expected = PRICE, Decimal(0)
    exposure = {SPOT: Decimal(1), PERP: Decimal(0)}
    for n, (symbol, side, qty, new_price) in enumerate(trades):
        expected += sum(exposure.values(), Decimal(0)) * (new_price - price)
        price = new_price
        await harness.move_price(SPOT, price)
        await harness.move_price(PERP, price)
        seen = len(sink.events)
        await venue.submit(order(f"bl-n{n}", side, qty, symbol=symbol))
        await _settled(harness, sink)
        for fill in sink.events[seen:]:
            if isinstance(fill, OrderFilled):
                signed = fill.qty if fill.side == "buy" else -fill.qty
                exposure[symbol] += signed
                expected += signed * (price - fill.price) - fill.fee
    nav = _nav(await venue.account(), price)
    await harness.close()
    assert nav - nav0 == expected


def _nav(account: Sequence[Message], price: Decimal) -> Decimal:
    nav = Decimal(0)
    for event in account:
        if isinstance(event, BalanceUpdated):
            total = event.free + event.locked
            nav += total if event.asset == "USDT" else total * price
        elif isinstance(event, PositionUpdated):
            assert event.mark_price == price
            nav += event.unrealized_pnl
    return nav
