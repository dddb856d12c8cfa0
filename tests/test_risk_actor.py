"""The RiskManager actor: given events → when event → then events, on a real bus and sim clock."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from msgspec.structs import replace

from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_DAY, NS_PER_SECOND, SimulatedClock
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.config import BandsConfig, Config, RiskConfig
from ballast.engine.kernel.events import (
    KEY_REFUSED,
    DataStale,
    HandlerFailed,
    InstrumentsLoaded,
    IntentApproved,
    JournalWriteChanged,
    KillSwitchTriggered,
    MarkPriceUpdated,
    Message,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderStatusReported,
    OrderSubmitted,
    OrderVetoed,
    PortfolioSnapshot,
    QuoteTick,
    RebalanceDecided,
)
from ballast.engine.kernel.instruments import binance_defaults
from ballast.engine.kernel.journal import Journal, JournalReader
from ballast.engine.trading.portfolio import Portfolio
from ballast.engine.trading.risk import RiskManager
from tests.conftest import START_NS
from tests.test_pretrade import ETH_MARK, intent, leverage_book, snapshot

D = Decimal
ZERO = D(0)
S = NS_PER_SECOND
M = TypeVar("M", bound=Message)
MANDATE = RiskConfig(max_asset_weight=D(2))


class Desk:
    """A RiskManager on a bus, with helpers to publish its inputs and read its outputs."""

    def __init__(self, bus: Bus, clock: SimulatedClock, risk: RiskConfig = MANDATE) -> None:
        self.bus = bus
        self.clock = clock
        self.risk = RiskManager(bus, clock, risk=risk, bands=BandsConfig())
        self.seen: list[Message] = []
        bus.subscribe_all(self.seen.append)
        self.decisions = 0

    def of(self, kind: type[M]) -> list[M]:
        return [m for m in self.seen if isinstance(m, kind)]

    def instruments(self) -> None:
        now = self.clock.now_ns()
        instruments = tuple(binance_defaults(["BTC", "ETH"]))
        self.bus.publish(
            InstrumentsLoaded(ts_event=now, ts_init=now, venue="sim", instruments=instruments)
        )

    def quote(self, symbol: str, price: str | Decimal) -> None:
        now = self.clock.now_ns()
        p = D(price)
        self.bus.publish(
            QuoteTick(
                ts_event=now, ts_init=now, symbol=symbol, bid=p, ask=p, bid_size=D(1), ask_size=D(1)
            )
        )

    def mark(self, symbol: str, price: str | Decimal) -> None:
        now = self.clock.now_ns()
        self.bus.publish(
            MarkPriceUpdated(
                ts_event=now,
                ts_init=now,
                symbol=symbol,
                mark=D(price),
                index=D(price),
                funding_rate=D("0.0001"),
                next_funding_ns=now + 8 * 3600 * S,
            )
        )

    def given(self, book: PortfolioSnapshot) -> None:
        """Instruments, fresh marks at the book's prices, then the snapshot."""
        if not self.risk.instruments:
            self.instruments()
        for state in book.assets:
            self.quote(f"{state.asset}/USDT", state.spot_price)
            self.mark(f"{state.asset}/USDT:USDT", state.perp_price)
        self.publish_snapshot(book)

    def publish_snapshot(self, book: PortfolioSnapshot) -> None:
        now = self.clock.now_ns()
        self.bus.publish(replace(book, ts_event=now, ts_init=now))

    def decide(self, *intents: OrderIntent, made_at: int | None = None) -> None:
        """A decision with ``intents``, made now (or at ``made_at``, checked now)."""
        self.decisions += 1
        now = self.clock.now_ns() if made_at is None else made_at
        numbered = tuple(
            replace(i, intent_id=f"d{self.decisions}-{n}") for n, i in enumerate(intents)
        )
        self.bus.publish(
            RebalanceDecided(
                ts_event=now,
                ts_init=now,
                decision_id=f"d{self.decisions}",
                trigger="band",
                mode="overlay",
                regime=self.risk.budget.regime,
                reasoning="test",
                assets=(),
                intents=numbered,
            )
        )

    def verdicts(self) -> list[IntentApproved | OrderVetoed]:
        return [m for m in self.seen if isinstance(m, IntentApproved | OrderVetoed)]

    def last(self) -> IntentApproved | OrderVetoed:
        return self.verdicts()[-1]


def desk_on(clock: SimulatedClock, risk: RiskConfig = MANDATE) -> Desk:
    return Desk(Bus(clock), clock, risk)


def small_book(drawdown: Decimal = ZERO) -> PortfolioSnapshot:
    """NAV 100,000: USDT 60,000 + 1 BTC at 40,000."""
    return snapshot(D(60_000), {"BTC": (D(1), D(40_000), D(0), D(40_000))}, drawdown=drawdown)


def approved(message: Message) -> IntentApproved:
    assert isinstance(message, IntentApproved), message
    return message


def vetoed(message: Message, reason: str) -> OrderVetoed:
    assert isinstance(message, OrderVetoed), message
    assert message.reason == reason, message
    return message


# ------------------------------------------------------------------- worked example 4


async def test_worked_example_4_cut_to_the_cap_and_veto_are_journaled(
    tmp_path: Path, sim_clock: SimulatedClock
) -> None:
    path = tmp_path / "journal.db"
    async with Journal(path) as journal:
        bus = Bus(sim_clock, journal)
        desk = Desk(bus, sim_clock)
        async with desk.risk:
            # given: NAV 100,000 at 2.90x gross under a 3x cap
            desk.given(leverage_book("75"))
            # when: a plan adds ~20,000 of ETH perp, then ~20,000 of BTC perp short
            desk.decide(
                intent("ETH/USDT:USDT", "buy", "10"), intent("BTC/USDT:USDT", "sell", "0.5")
            )
        await bus.sync()

    async with JournalReader(path) as reader:
        outcome = await reader.messages(types=["IntentApproved", "OrderVetoed"])
    # then: the first is cut to exactly the cap, the second finds no room left
    first, second = outcome
    cut = approved(first)
    assert cut.intent.intent_id == "d1-0"
    assert cut.intent.qty == D("4.985")
    gross_after = 140_000 + (75 + cut.intent.qty) * ETH_MARK
    assert 300_000 - 2 * ETH_MARK / 1000 < gross_after <= 300_000
    assert cut.cut_reason.startswith("max_gross_leverage: 10 → 4.985 (gross leverage 2.9003")
    veto = vetoed(second, "max_gross_leverage")
    assert veto.intent_id == "d1-1"
    assert veto.symbol == "BTC/USDT:USDT"
    assert "room 0.41" in veto.detail


# ---------------------------------------------------------------------------- kill switch


async def test_drawdown_trips_the_kill_switch_once_and_only_reduce_only_passes(
    sim_clock: SimulatedClock,
) -> None:
    desk = desk_on(sim_clock)
    async with desk.risk:
        desk.given(small_book(drawdown=D("0.30")))
        desk.publish_snapshot(small_book(drawdown=D("0.31")))

        [trip] = desk.of(KillSwitchTriggered)
        assert trip.reason == "drawdown"
        assert trip.detail == "drawdown 0.3000 >= limit 0.25 (NAV 100000, peak 100000)"

        desk.decide(
            intent("BTC/USDT", "buy", "0.1"), intent("BTC/USDT", "sell", "0.5", reduce_only=True)
        )
        veto, passed = desk.verdicts()
        vetoed(veto, "kill_switch")
        assert approved(passed).intent.qty == D("0.5")


async def test_reset_clears_the_kill_switch_unless_the_breach_persists(
    sim_clock: SimulatedClock,
) -> None:
    desk = desk_on(sim_clock)
    async with desk.risk:
        desk.given(small_book(drawdown=D("0.30")))
        desk.risk.reset_kill_switch("operator")
        desk.publish_snapshot(small_book(drawdown=D("0.30")))  # still breached: trips again
        assert len(desk.of(KillSwitchTriggered)) == 2

        desk.risk.reset_kill_switch("operator")
        desk.publish_snapshot(small_book(drawdown=D("0.10")))
        desk.decide(intent("BTC/USDT", "buy", "0.1"))
    assert len(desk.of(KillSwitchTriggered)) == 2
    assert approved(desk.last()).cut_reason == ""


def perp_long_book(mark: str, liquidation: str) -> PortfolioSnapshot:
    """1 BTC perp long entered at ``mark``, with just the USDT that puts its liquidation price at
    ``liquidation``: mark − 0.996 × liquidation (maintenance rate 0.4 % below 50,000 notional).
    The venue's estimate in the snapshot is absent: the actor computes its own."""
    cash = D(mark) - D("0.996") * D(liquidation)
    return snapshot(cash, {"BTC": (D(0), D(mark), D(1), D(mark))})


async def test_liquidation_distance_in_a_snapshot_trips_the_kill_switch(
    sim_clock: SimulatedClock,
) -> None:
    desk = desk_on(sim_clock)
    async with desk.risk:
        desk.given(perp_long_book("30000", "27000"))
    [trip] = desk.of(KillSwitchTriggered)
    assert trip.reason == "liquidation_distance"
    assert "distance 0.1000 < min 0.15" in trip.detail


async def test_a_falling_mark_trips_the_kill_switch_before_the_next_snapshot(
    sim_clock: SimulatedClock,
) -> None:
    desk = desk_on(sim_clock)
    async with desk.risk:
        desk.given(perp_long_book("34000", "27000"))  # distance 0.206: fine
        assert desk.of(KillSwitchTriggered) == []
        sim_clock.advance_to(START_NS + 5 * S)
        desk.mark("BTC/USDT:USDT", "31000")  # distance 0.129
        desk.mark("BTC/USDT:USDT", "30000")
        desk.decide(
            intent("BTC/USDT:USDT", "buy", "0.1"),
            intent("BTC/USDT:USDT", "sell", "1", reduce_only=True),
        )
    [trip] = desk.of(KillSwitchTriggered)
    assert trip.reason == "liquidation_distance"
    assert trip.detail == (
        "BTC perp qty 1 mark 31000 liquidation 27000: distance 0.1290 < min 0.15"
    )
    veto, flatten = desk.verdicts()
    vetoed(veto, "kill_switch")
    assert approved(flatten).intent.reduce_only


# ---------------------------------------------------------------------------- staleness


async def test_stale_marks_are_vetoed_and_reported_once_per_episode(
    sim_clock: SimulatedClock,
) -> None:
    desk = desk_on(sim_clock)  # stale after 30 s; the timer runs every 15 s
    async with desk.risk:
        desk.given(small_book())
        sim_clock.advance_to(START_NS + 30 * S)
        desk.decide(intent("BTC/USDT", "buy", "0.1"))
        approved(desk.last())
        assert desk.of(DataStale) == []

        sim_clock.advance_to(START_NS + 31 * S)
        desk.decide(intent("BTC/USDT", "buy", "0.1"))
        assert vetoed(desk.last(), "stale_data").detail == (
            "mark 40000 for BTC/USDT is older than the threshold (30.0s)"
        )

        sim_clock.advance_to(START_NS + 300 * S)
        stale = [e for e in desk.of(DataStale) if e.symbol == "BTC/USDT"]
        assert len(stale) == 1
        assert (stale[0].ts_event, stale[0].last_ts_ns) == (START_NS + 45 * S, START_NS)
        assert (stale[0].age_ns, stale[0].threshold_ns) == (45 * S, 30 * S)

        desk.quote("BTC/USDT", "40100")  # a new episode starts once the data is fresh again
        desk.decide(intent("BTC/USDT", "buy", "0.1"))
        approved(desk.last())
        sim_clock.advance_to(START_NS + 400 * S)
    stale = [e for e in desk.of(DataStale) if e.symbol == "BTC/USDT"]
    assert [e.last_ts_ns for e in stale] == [START_NS, START_NS + 300 * S]


# ------------------------------------------------------------------- in flight, turnover


def submitted(intent_id: str, qty: str) -> OrderSubmitted:
    return OrderSubmitted(
        ts_event=START_NS,
        ts_init=START_NS,
        client_order_id=f"c-{intent_id}",
        intent_id=intent_id,
        symbol="BTC/USDT",
        side="buy",
        order_type="market",
        qty=D(qty),
        price=None,
    )


def submit_order(intent_id: str, qty: str) -> SubmitOrder:
    return SubmitOrder(
        ts_event=START_NS,
        ts_init=START_NS,
        intent_id=intent_id,
        client_order_id=f"c-{intent_id}",
        symbol="BTC/USDT",
        side="buy",
        order_type="market",
        qty=D(qty),
        price=None,
        reduce_only=False,
        post_only=False,
        time_in_force="GTC",
    )


def filled(intent_id: str, qty: str, ts: int) -> OrderFilled:
    return OrderFilled(
        ts_event=ts,
        ts_init=ts,
        client_order_id=f"c-{intent_id}",
        venue_order_id="v1",
        trade_id=f"t-{intent_id}-{qty}",
        symbol="BTC/USDT",
        side="buy",
        qty=D(qty),
        price=D(40_000),
        fee=D(0),
        fee_asset="USDT",
        liquidity="taker",
    )


async def test_in_flight_intents_and_fills_count_against_daily_turnover(
    sim_clock: SimulatedClock,
) -> None:
    risk = RiskConfig(max_asset_weight=D(2), max_daily_turnover=D("0.5"), stale_after_s=7200.0)
    desk = desk_on(sim_clock, risk)
    async with desk.risk:
        desk.given(small_book())
        desk.decide(intent("BTC/USDT", "buy", "1"))  # 40,000 of 50,000 a day, in flight
        assert desk.risk.in_flight() == {"BTC/USDT": D(40_000)}

        desk.decide(intent("BTC/USDT", "buy", "1"))
        cut = approved(desk.last())
        assert cut.intent.qty == D("0.25")
        assert cut.cut_reason.startswith("max_daily_turnover: 1 → 0.25")

        desk.bus.publish(submitted("d2-0", "0.25"))
        desk.bus.publish(
            OrderCanceled(
                ts_event=START_NS,
                ts_init=START_NS,
                client_order_id="c-d2-0",
                symbol="BTC/USDT",
                reason="test",
            )
        )
        desk.bus.publish(submitted("d1-0", "1"))
        desk.bus.publish(filled("d1-0", "0.4", START_NS))
        assert desk.risk.in_flight() == {"BTC/USDT": D(24_000)}
        desk.bus.publish(filled("d1-0", "0.6", START_NS))
        assert desk.risk.in_flight() == {}
        assert desk.risk.turnover_today(START_NS) == D(40_000)

        desk.decide(intent("BTC/USDT", "buy", "1"))
        assert approved(desk.last()).intent.qty == D("0.25")

        next_day = START_NS - START_NS % NS_PER_DAY + NS_PER_DAY
        sim_clock.advance_to(next_day)
        desk.given(small_book())
        desk.bus.publish(submit_order("d3-0", "0.25"))  # the router's command names the intent
        desk.bus.publish(
            OrderStatusReported(
                ts_event=next_day,
                ts_init=next_day,
                client_order_id="c-d3-0",
                venue_order_id="v3",
                symbol="BTC/USDT",
                side="buy",
                qty=D("0.25"),
                filled_qty=D(0),
                avg_price=None,
                state="canceled",
            )
        )
        assert desk.risk.in_flight() == {}
        desk.decide(intent("BTC/USDT", "buy", "1"))
    assert approved(desk.last()).cut_reason == ""


async def test_without_filters_or_portfolio_nothing_is_approved(sim_clock: SimulatedClock) -> None:
    desk = desk_on(sim_clock)
    async with desk.risk:
        desk.quote("BTC/USDT", "40000")
        desk.decide(intent("BTC/USDT", "buy", "0.1"))
        vetoed(desk.last(), "unknown_instrument")
        desk.instruments()
        desk.decide(intent("BTC/USDT", "buy", "0.1"))
        vetoed(desk.last(), "no_portfolio")


async def test_from_config(sim_clock: SimulatedClock) -> None:
    config = Config(risk=RiskConfig(max_gross_leverage=D(2)))
    actor = RiskManager.from_config(config, Bus(sim_clock), sim_clock)
    assert actor.budget.max_gross_leverage == D(2)
    assert actor.budget.band_abs == D("0.05")


async def test_verdicts_carry_the_decisions_event_time_not_the_clocks(
    sim_clock: SimulatedClock,
) -> None:
    """A live run checks a decision a little after it was made; a replay on the simulated clock
    checks it at the decision's own time. The verdict's ts_event is the decision's in both, so
    the rebalancer's retry of a vetoed trade (timed from it) is the same in replay."""
    desk = desk_on(sim_clock)
    async with desk.risk:
        desk.given(small_book())
        sim_clock.advance_to(START_NS + 31 * S)  # the BTC mark is stale now
        made_at = START_NS + 30 * S
        desk.decide(intent("BTC/USDT", "buy", "0.1"), made_at=made_at)
        desk.quote("BTC/USDT", "40000")  # fresh again for the second decision
        desk.decide(intent("BTC/USDT", "buy", "0.2"), made_at=made_at)
        veto, approval = desk.verdicts()
        assert isinstance(veto, OrderVetoed)
        assert isinstance(approval, IntentApproved)
        for verdict in (veto, approval):
            assert (verdict.ts_event, verdict.ts_init) == (made_at, START_NS + 31 * S)


def test_a_failed_handler_of_a_money_actor_trips_the_kill_switch(
    sim_clock: SimulatedClock,
) -> None:
    """Issue 10 ("failures that change nothing"): a LedgerError in Portfolio.on_fill only
    published HandlerFailed, which nothing read, and trading went on against a wrong book."""
    bus = Bus(sim_clock)
    desk = Desk(bus, sim_clock)
    Portfolio.from_config(Config(), bus, sim_clock)
    nothing = replace(filled("i1", "0.5", START_NS), qty=D(0))  # the ledger refuses it
    bus.publish(nothing)
    [failed] = desk.of(HandlerFailed)
    assert failed.handler == "Portfolio.on_fill"
    [tripped] = desk.of(KillSwitchTriggered)
    assert tripped.reason == "handler_failed"
    assert "Portfolio.on_fill failed on OrderFilled" in tripped.detail
    assert desk.risk.kill_switch == "handler_failed"


def test_a_failed_handler_of_another_actor_does_not_trip_it(sim_clock: SimulatedClock) -> None:
    bus = Bus(sim_clock)
    desk = Desk(bus, sim_clock)

    def plug_in(_: OrderFilled) -> None:
        raise RuntimeError("a user's dashboard actor broke")

    bus.subscribe(OrderFilled, plug_in, name="MyDashboard.on_fill")
    bus.publish(filled("i1", "0.5", START_NS))
    assert [f.handler for f in desk.of(HandlerFailed)] == ["MyDashboard.on_fill"]
    assert desk.of(KillSwitchTriggered) == []


# ---------------------------------------------------------------------- journal unwritable


async def test_an_unwritable_journal_vetoes_every_intent_until_it_writes_or_a_session_starts(
    sim_clock: SimulatedClock,
) -> None:
    desk = desk_on(sim_clock)
    async with desk.risk:
        desk.given(small_book())
        now = sim_clock.now_ns()
        full = JournalWriteChanged(now, now, "j.db", False, "SQLITE_FULL: disk is full", 1)
        desk.bus.publish(full)
        desk.decide(
            intent("BTC/USDT", "buy", "0.1"), intent("BTC/USDT", "sell", "0.5", reduce_only=True)
        )
        for verdict in desk.verdicts():
            assert "SQLITE_FULL" in vetoed(verdict, "journal_unwritable").detail
        desk.bus.publish(JournalWriteChanged(now, now, "j.db", True, "", 4))
        desk.decide(intent("BTC/USDT", "buy", "0.1"))
        approved(desk.verdicts()[-1])
        desk.bus.publish(full)  # a killed session's last record; the next session starts
        desk.instruments()
        desk.decide(intent("BTC/USDT", "buy", "0.1"))
        approved(desk.verdicts()[-1])


async def test_an_order_refused_for_the_api_key_halts_trading_with_the_reason(
    sim_clock: SimulatedClock,
) -> None:
    """A key that lost its trade permission (Binance -2015) would get every order refused: the
    first such rejection trips the kill switch, naming the order and the venue's reason; an
    ordinary refusal (insufficient balance) does not."""
    desk = desk_on(sim_clock)
    async with desk.risk:
        desk.given(small_book())
        now = sim_clock.now_ns()
        desk.bus.publish(
            OrderRejected(now, now, "bl-d0-0", "BTC/USDT", "insufficient balance (-2010 ...)")
        )
        assert desk.of(KillSwitchTriggered) == []

        reason = KEY_REFUSED + "API key refused: invalid, not allowed from this IP, or without"
        desk.bus.publish(OrderRejected(now, now, "bl-d0-1", "BTC/USDT", reason))
        desk.bus.publish(OrderRejected(now, now, "bl-d0-2", "BTC/USDT", reason))

        [trip] = desk.of(KillSwitchTriggered)
        assert trip.reason == "key_refused"
        assert trip.detail == f"bl-d0-1 BTC/USDT: {reason}"
        assert desk.risk.kill_switch == "key_refused"
        desk.decide(intent("BTC/USDT", "buy", "0.1"))
        vetoed(desk.last(), "kill_switch")
