"""Rebalancer actor, given/when/then on a real bus with a simulated clock."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from ballast.engine.kernel.bus import Bus
from ballast.engine.kernel.clock import NS_PER_HOUR, NS_PER_SECOND, SimulatedClock
from ballast.engine.kernel.events import (
    DeleverageReason,
    DeleverageRequired,
    InstrumentsLoaded,
    KillSwitchReset,
    KillSwitchTriggered,
    Message,
    Mode,
    OrderVetoed,
    RebalanceDecided,
    Regime,
    RiskBudgetChanged,
    Side,
    StrategyFailed,
)
from ballast.engine.strategy.api import Strategy, StrategyContext, TargetSet
from ballast.engine.trading.rebalancer import Rebalancer
from ballast.strategies.threshold import Threshold
from tests.conftest import START_NS
from tests.support.book import Book, fine_instruments

D = Decimal
HOUR = NS_PER_HOUR


class Recorder:
    def __init__(self, bus: Bus) -> None:
        self.messages: list[Message] = []
        bus.subscribe_all(self.messages.append)

    def of(self, kind: type[Message]) -> list[Any]:
        return [m for m in self.messages if isinstance(m, kind)]


class Exploding(Strategy):
    name = "exploding"

    def targets(self, context: StrategyContext) -> TargetSet:
        raise RuntimeError("boom")


def make(
    sim_clock: SimulatedClock,
    *,
    mode: Mode = "spot",
    strategy: Strategy | None = None,
    weights: Mapping[str, str] | None = None,
) -> tuple[Bus, Rebalancer, Recorder]:
    bus = Bus(sim_clock)
    bus.session_id = "5e5510n0abcdef"
    recorder = Recorder(bus)
    wanted = {a: D(w) for a, w in (weights or {"BTC": "0.40", "ETH": "0.20"}).items()}
    rebalancer = Rebalancer(
        bus,
        sim_clock,
        strategy=strategy or Threshold({"weights": wanted}),
        strategy_name="threshold",
        mode=mode,
        band_abs=D("0.05"),
    )
    bus.publish(
        InstrumentsLoaded(
            START_NS, START_NS, "test", tuple(fine_instruments(["BTC", "ETH"]).values())
        )
    )
    return bus, rebalancer, recorder


def book(btc_price: str, perp_btc: str = "0", entry: str = "0") -> Book:
    return Book(
        cash=D(40_000),
        spot={"BTC": D(1), "ETH": D(10)},
        prices={"BTC": D(btc_price), "ETH": D(2_000)},
        perp={"BTC": D(perp_btc)} if perp_btc != "0" else {},
        entry={"BTC": D(entry)} if entry != "0" else {},
    )


def budget(regime: Regime, longs: bool) -> RiskBudgetChanged:
    return RiskBudgetChanged(
        START_NS, START_NS, regime, D("0.5"), D("0.05"), None, D(3), D(1), longs, "test"
    )


def test_given_a_snapshot_inside_the_band_when_dispatched_then_nothing_is_decided(
    sim_clock: SimulatedClock,
) -> None:
    bus, _, rec = make(sim_clock)
    bus.publish(book("48000").snapshot(START_NS))
    assert rec.of(RebalanceDecided) == []


def test_given_a_band_breach_then_one_decision_with_inputs_reasoning_and_intents(
    sim_clock: SimulatedClock,
) -> None:
    bus, _, rec = make(sim_clock)
    bus.publish(book("52000").snapshot(START_NS))
    [decision] = rec.of(RebalanceDecided)
    assert decision.trigger == "band"
    assert decision.decision_id == "5e5510n0-d1"
    assert [(i.intent_id, i.symbol, i.side) for i in decision.intents] == [
        ("5e5510n0-d1-1", "BTC/USDT", "sell")
    ]
    btc = next(a for a in decision.assets if a.asset == "BTC")
    assert (btc.weight, btc.target, btc.band_low, btc.band_high) == (
        D(52_000) / D(112_000),
        D("0.40"),
        D("0.35"),
        D("0.45"),
    )
    assert btc.action == "sell spot"
    assert "BTC weight 46.43% outside 40.00% ± 5.00%" in decision.reasoning


def test_cooldown_prevents_churn_until_it_expires(sim_clock: SimulatedClock) -> None:
    bus, _, rec = make(sim_clock)
    bus.publish(book("52000").snapshot(START_NS))
    bus.publish(book("52000").snapshot(START_NS + HOUR // 2))
    assert len(rec.of(RebalanceDecided)) == 1
    bus.publish(book("52000").snapshot(START_NS + HOUR + 1))
    decisions = rec.of(RebalanceDecided)
    assert [d.decision_id for d in decisions] == ["5e5510n0-d1", "5e5510n0-d2"]


def test_overlay_mode_hedges_with_a_perp_short(sim_clock: SimulatedClock) -> None:
    bus, _, rec = make(sim_clock, mode="overlay")
    bus.publish(book("52000").snapshot(START_NS))
    [decision] = rec.of(RebalanceDecided)
    assert [(i.symbol, i.side, i.reduce_only) for i in decision.intents] == [
        ("BTC/USDT:USDT", "sell", False)
    ]
    assert "case A" in decision.intents[0].reason


def test_stressed_budget_closes_overlay_longs_without_any_band_breach(
    sim_clock: SimulatedClock,
) -> None:
    bus, _, rec = make(sim_clock, mode="overlay")
    inside = book("40000", perp_btc="0.1", entry="40000")  # BTC net 44,000 / 100,000: inside 40 ± 5
    bus.publish(inside.snapshot(START_NS))
    assert rec.of(RebalanceDecided) == []
    bus.publish(budget("stressed", longs=False))
    [decision] = rec.of(RebalanceDecided)
    assert decision.trigger == "budget"
    assert decision.regime == "stressed"
    assert [(i.symbol, i.side, i.qty, i.reduce_only) for i in decision.intents] == [
        ("BTC/USDT:USDT", "sell", D("0.1"), True)
    ]


def test_calm_budget_with_widened_band_lets_the_weight_drift_without_trading(
    sim_clock: SimulatedClock,
) -> None:
    bus, _, rec = make(sim_clock)
    bus.publish(
        RiskBudgetChanged(
            START_NS, START_NS, "calm", D("0.3"), D("0.07"), None, D(3), D(1), True, "calm"
        )
    )
    drifted = book("47000")  # 47,000 / 107,000 = 43.9 %; and at 52,000 46.4 % is inside 40 ± 7
    bus.publish(drifted.snapshot(START_NS))
    bus.publish(book("52000").snapshot(START_NS + 1))
    assert rec.of(RebalanceDecided) == []


def test_kill_switch_flattens_every_perp_and_stops_planning_until_reset(
    sim_clock: SimulatedClock,
) -> None:
    bus, _, rec = make(sim_clock, mode="overlay")
    hedged = book("52000", perp_btc="-0.1", entry="50000")
    bus.publish(hedged.snapshot(START_NS))
    before = len(rec.of(RebalanceDecided))
    bus.publish(KillSwitchTriggered(START_NS, START_NS, "drawdown", "drawdown 26% >= 25%"))
    flatten = rec.of(RebalanceDecided)[before:]
    assert [d.trigger for d in flatten] == ["kill_switch"]
    assert [(i.symbol, i.side, i.qty, i.reduce_only) for i in flatten[0].intents] == [
        ("BTC/USDT:USDT", "buy", D("0.1"), True)
    ]
    bus.publish(book("60000").snapshot(START_NS + 2 * HOUR))
    assert len(rec.of(RebalanceDecided)) == before + 1
    bus.publish(KillSwitchReset(START_NS, START_NS, "operator"))
    bus.publish(book("60000").snapshot(START_NS + 3 * HOUR))
    assert len(rec.of(RebalanceDecided)) == before + 2


def test_a_raising_strategy_is_halted_once_and_the_bus_goes_on(sim_clock: SimulatedClock) -> None:
    bus, rebalancer, rec = make(sim_clock, strategy=Exploding())
    bus.publish(book("52000").snapshot(START_NS))
    bus.publish(book("60000").snapshot(START_NS + HOUR))
    [failure] = rec.of(StrategyFailed)
    assert failure.strategy == "threshold"
    assert "RuntimeError" in failure.error
    assert "boom" in failure.error
    assert rec.of(RebalanceDecided) == []
    assert rebalancer.strategy.halted
    assert bus.handler_errors == 0  # the guard caught it, not the bus


def test_no_decision_before_instruments_are_known(sim_clock: SimulatedClock) -> None:
    bus = Bus(sim_clock)
    rec = Recorder(bus)
    Rebalancer(
        bus,
        sim_clock,
        strategy=Threshold({"weights": {"BTC": D("0.4")}}),
        strategy_name="threshold",
    )
    bus.publish(book("52000").snapshot(START_NS))
    assert rec.of(RebalanceDecided) == []


@pytest.mark.parametrize("mode", ["spot", "overlay", "auto"])
def test_from_config_builds_a_working_rebalancer(sim_clock: SimulatedClock, mode: Mode) -> None:
    from ballast.engine.kernel.config import Config, ExecutionConfig

    config = Config(
        targets={"BTC": D("0.40"), "ETH": D("0.20")}, execution=ExecutionConfig(mode=mode)
    )
    bus = Bus(sim_clock)
    rec = Recorder(bus)
    Rebalancer.from_config(config, bus, sim_clock)
    bus.publish(
        InstrumentsLoaded(
            START_NS, START_NS, "test", tuple(fine_instruments(["BTC", "ETH"]).values())
        )
    )
    bus.publish(book("52000").snapshot(START_NS))
    [decision] = rec.of(RebalanceDecided)
    assert decision.mode == mode


def test_a_vetoed_trade_is_retried_after_the_check_interval_not_the_full_cooldown(
    sim_clock: SimulatedClock,
) -> None:
    bus, _, rec = make(sim_clock)
    bus.publish(book("52000").snapshot(START_NS))
    [first] = rec.of(RebalanceDecided)
    veto = OrderVetoed(
        START_NS, START_NS, first.intents[0].intent_id, "BTC/USDT", "stale_data", "old"
    )
    bus.publish(veto)
    bus.publish(book("52000").snapshot(START_NS + 30 * NS_PER_SECOND))
    assert len(rec.of(RebalanceDecided)) == 1  # not on every snapshot
    bus.publish(book("52000").snapshot(START_NS + 61 * NS_PER_SECOND))
    assert len(rec.of(RebalanceDecided)) == 2  # but well before the hour of cooldown


def test_an_asset_with_orders_in_flight_is_not_planned_again_until_they_complete(
    sim_clock: SimulatedClock,
) -> None:
    from ballast.engine.kernel.events import OrderFilled

    bus = Bus(sim_clock)
    rec = Recorder(bus)
    Rebalancer(
        bus,
        sim_clock,
        strategy=Threshold({"weights": {"BTC": D("0.40"), "ETH": D("0.20")}}),
        strategy_name="threshold",
        band_abs=D("0.05"),
        cooldown_s=0,
    )
    bus.publish(
        InstrumentsLoaded(START_NS, START_NS, "t", tuple(fine_instruments(["BTC", "ETH"]).values()))
    )
    bus.publish(book("52000").snapshot(START_NS))
    [first] = rec.of(RebalanceDecided)
    intent = first.intents[0]
    bus.publish(_submitted(intent, "c-1"))
    bus.publish(book("52000").snapshot(START_NS + 1))  # no cooldown, but the sale is still working
    assert len(rec.of(RebalanceDecided)) == 1
    half = intent.qty / 2
    fill = OrderFilled(
        START_NS,
        START_NS,
        "c-1",
        "v-1",
        "t-1",
        intent.symbol,
        intent.side,
        half,
        D(52_000),
        D(0),
        "USDT",
        "taker",
    )
    bus.publish(fill)
    bus.publish(book("52000").snapshot(START_NS + 2))  # partly filled: still in flight
    assert len(rec.of(RebalanceDecided)) == 1
    bus.publish(msgspec.structs.replace(fill, trade_id="t-2", qty=intent.qty - half))
    bus.publish(book("52000").snapshot(START_NS + 3))  # done: the asset may be planned again
    assert len(rec.of(RebalanceDecided)) == 2


def _submitted(intent: Any, client_order_id: str) -> Message:
    from ballast.engine.kernel.commands import SubmitOrder

    return SubmitOrder(
        START_NS,
        START_NS,
        intent.intent_id,
        client_order_id,
        intent.symbol,
        intent.side,
        "market",
        intent.qty,
        None,
        False,
        False,
        "IOC",
    )


def test_a_sent_order_that_goes_unanswered_is_never_replaced_by_a_second_one(
    sim_clock: SimulatedClock,
) -> None:
    """Hours without news of a sent order (a venue that stopped answering): the asset is not
    planned again, which could double the trade; the router's status report settles it."""
    from ballast.engine.kernel.events import OrderStatusReported

    bus, rebalancer, rec = make(sim_clock)
    rebalancer.cooldown_ns = 0
    bus.publish(book("52000").snapshot(START_NS))
    [first] = rec.of(RebalanceDecided)
    bus.publish(_submitted(first.intents[0], "c-1"))
    for hours in (1, 2, 5):
        bus.publish(book("52000").snapshot(START_NS + hours * HOUR))
    assert len(rec.of(RebalanceDecided)) == 1
    at = START_NS + 5 * HOUR
    intent = first.intents[0]
    status = OrderStatusReported(
        at, at, "c-1", "v-1", intent.symbol, intent.side, intent.qty, D(0), None, "canceled"
    )
    bus.publish(status)
    bus.publish(book("52000").snapshot(START_NS + 6 * HOUR))
    assert len(rec.of(RebalanceDecided)) == 2


@pytest.mark.parametrize(("client_order_id", "planned"), [("bl-0ld5e551-d7-0", 0), ("manual-1", 1)])
def test_an_own_order_found_open_at_the_venue_on_start_keeps_its_asset_busy(
    sim_clock: SimulatedClock, client_order_id: str, planned: int
) -> None:
    """A restart finds one of the engine's own orders (its id derives from an intent id) still
    open: planning the asset again could stack a second order on it. An order placed by hand is
    not the engine's to wait for."""
    from ballast.engine.kernel.events import OrderStatusReported

    bus, rebalancer, rec = make(sim_clock)
    rebalancer.cooldown_ns = 0
    found = OrderStatusReported(
        START_NS, START_NS, client_order_id, "v-9", "BTC/USDT", "sell", D("0.1"), D(0), None, "open"
    )
    bus.publish(found)

    bus.publish(book("52000").snapshot(START_NS))

    assert len(rec.of(RebalanceDecided)) == planned


def test_an_intent_that_was_never_sent_stops_blocking_its_asset_after_the_timeout(
    sim_clock: SimulatedClock,
) -> None:
    bus, rebalancer, rec = make(sim_clock)
    rebalancer.cooldown_ns = 0
    bus.publish(book("52000").snapshot(START_NS))
    bus.publish(book("52000").snapshot(START_NS + 60 * NS_PER_SECOND))
    assert len(rec.of(RebalanceDecided)) == 1  # within the timeout it still waits
    bus.publish(book("52000").snapshot(START_NS + HOUR))
    first, second = rec.of(RebalanceDecided)
    assert second.intents
    assert f"{first.intents[0].intent_id} was never sent" in second.reasoning


def _approved(intent: Any, qty: Decimal, why: str) -> Message:
    from ballast.engine.kernel.events import IntentApproved

    return IntentApproved(START_NS, START_NS, msgspec.structs.replace(intent, qty=qty), why)


def _filled(intent: Any, client_order_id: str, qty: Decimal, at: int) -> Message:
    from ballast.engine.kernel.events import OrderFilled

    return OrderFilled(
        at,
        at,
        client_order_id,
        "v-1",
        "t-1",
        intent.symbol,
        intent.side,
        qty,
        D(52_000),
        D(0),
        "USDT",
        "taker",
    )


def test_a_cut_order_completes_on_its_approved_quantity_and_the_asset_is_planned_again(
    sim_clock: SimulatedClock,
) -> None:
    """Issue 16 item 3: the risk actor cuts an intent; the fill of the cut quantity completes it
    (the asset is not frozen waiting for the planned quantity)."""
    bus, rebalancer, rec = make(sim_clock)
    rebalancer.cooldown_ns = 0
    bus.publish(book("52000").snapshot(START_NS))
    [first] = rec.of(RebalanceDecided)
    intent = first.intents[0]
    cut = intent.qty / 2
    bus.publish(_approved(intent, cut, "max_gross_leverage: cut"))
    bus.publish(msgspec.structs.replace(_submitted(intent, "c-1"), qty=cut))
    bus.publish(_filled(intent, "c-1", cut, START_NS))
    bus.publish(book("52000").snapshot(START_NS + HOUR))
    assert len(rec.of(RebalanceDecided)) == 2


def test_a_partly_filled_order_that_ends_frees_its_asset(sim_clock: SimulatedClock) -> None:
    from ballast.engine.kernel.events import OrderCanceled

    bus, rebalancer, rec = make(sim_clock)
    rebalancer.cooldown_ns = 0
    bus.publish(book("52000").snapshot(START_NS))
    [first] = rec.of(RebalanceDecided)
    intent = first.intents[0]
    bus.publish(_submitted(intent, "c-1"))
    bus.publish(_filled(intent, "c-1", intent.qty / 4, START_NS))
    bus.publish(OrderCanceled(START_NS, START_NS, "c-1", intent.symbol, "IOC: rest canceled"))
    bus.publish(book("52000").snapshot(START_NS + HOUR))
    assert len(rec.of(RebalanceDecided)) == 2


def test_an_order_refused_for_margin_is_replanned_on_fresh_figures_never_resent_as_is(
    sim_clock: SimulatedClock,
) -> None:
    """Issue 16 item 1: "insufficient margin" was retried every hour forever, the same order."""
    from ballast.engine.kernel.events import OrderRejected

    bus, _, rec = make(sim_clock, mode="overlay")
    bus.publish(book("52000").snapshot(START_NS))
    [first] = rec.of(RebalanceDecided)
    [intent] = first.intents
    bus.publish(_submitted(intent, "c-1"))
    bus.publish(
        OrderRejected(START_NS, START_NS, "c-1", intent.symbol, "insufficient margin: 720 needed")
    )
    bus.publish(book("52000").snapshot(START_NS + HOUR + 1))  # same figures: the same order
    bus.publish(book("52000").snapshot(START_NS + 2 * HOUR + 2))
    again = [
        d
        for d in rec.of(RebalanceDecided)[1:]
        for i in d.intents
        if (i.symbol, i.side, i.qty) == (intent.symbol, intent.side, intent.qty)
    ]
    assert again == []
    poorer = book("52000")
    poorer.cash = D(500)  # fresh figures: the venue's cash was lower than the snapshot said
    bus.publish(poorer.snapshot(START_NS + 2 * HOUR + 3))
    replanned = rec.of(RebalanceDecided)[-1]
    [short] = replanned.intents
    assert short.symbol == intent.symbol
    assert short.qty < intent.qty
    assert "available margin" in replanned.reasoning


def test_deleverage_publishes_reducing_trades_toward_the_target(sim_clock: SimulatedClock) -> None:
    bus, rebalancer, rec = make(sim_clock, mode="overlay")
    levered = Book(
        cash=D(10_000),
        spot={"BTC": D(1)},
        prices={"BTC": D(50_000), "ETH": D(2_000)},
        perp={"BTC": D(1)},
        entry={"BTC": D(50_000)},
    )  # net BTC 100,000 on NAV 60,000: 1.67
    bus.publish(levered.snapshot(START_NS))
    for earlier in rec.of(RebalanceDecided):  # the band breach's orders were vetoed
        for i in earlier.intents:
            bus.publish(
                OrderVetoed(START_NS, START_NS, i.intent_id, i.symbol, "max_net_leverage", "vetoed")
            )
    before = len(rec.of(RebalanceDecided))
    rebalancer.deleverage(D(1), "net leverage above the cap", START_NS)
    [decision] = rec.of(RebalanceDecided)[before:]
    assert decision.trigger == "deleverage"
    assert all(i.reduce_only or i.side == "sell" for i in decision.intents)
    for intent in decision.intents:
        levered.fill(intent)
    assert abs(levered.net_exposure("BTC") / levered.nav() - 1) < D("0.001")


def _deleverage_request(
    reason: DeleverageReason, symbol: str, side: Side, notional: str, ts: int = START_NS
) -> DeleverageRequired:
    return DeleverageRequired(
        ts,
        ts,
        reason,
        "BTC",
        symbol,
        side,
        D(notional),
        D("0.18"),
        D("0.2"),
        D("0.3"),
        "test",
    )


def test_a_perp_near_liquidation_is_reduced_reduce_only_at_once(sim_clock: SimulatedClock) -> None:
    """Issue 16, item 2: the risk actor's DeleverageRequired (distance to liquidation from the
    current mark) becomes a reduce-only order of the perp, whatever the cooldown."""
    bus, _, rec = make(sim_clock, mode="overlay", weights={"BTC": "0.40", "ETH": "0.20"})
    shorted = Book(
        cash=D(40_000),
        spot={"BTC": D(1), "ETH": D(10)},
        prices={"BTC": D(50_000), "ETH": D(2_000)},
        perp={"BTC": D("-0.2")},
        entry={"BTC": D(50_000)},
    )
    bus.publish(shorted.snapshot(START_NS))
    before = len(rec.of(RebalanceDecided))
    bus.publish(_deleverage_request("liquidation_distance", "BTC/USDT:USDT", "buy", "5000"))
    [decision] = rec.of(RebalanceDecided)[before:]
    [intent] = decision.intents
    assert decision.trigger == "deleverage"
    assert (intent.symbol, intent.side, intent.reduce_only) == ("BTC/USDT:USDT", "buy", True)
    assert intent.qty == D("0.1")  # 5,000 of a 10,000 short at 50,000
    assert "liquidation_distance" in decision.reasoning
    # in flight: a second request for the same asset waits for the first order's outcome
    bus.publish(_deleverage_request("liquidation_distance", "BTC/USDT:USDT", "buy", "5000"))
    assert len(rec.of(RebalanceDecided)) == before + 1


def test_net_leverage_above_the_cap_sells_spot_when_no_perp_is_on_its_side(
    sim_clock: SimulatedClock,
) -> None:
    bus, _, rec = make(sim_clock, mode="overlay")
    long_spot = Book(
        cash=D(40_000),
        spot={"BTC": D(1), "ETH": D(10)},
        prices={"BTC": D(45_000), "ETH": D(2_000)},
    )  # every weight inside its band: no band trade
    bus.publish(long_spot.snapshot(START_NS))
    before = len(rec.of(RebalanceDecided))
    bus.publish(_deleverage_request("net_leverage", "", "sell", "9000"))
    [decision] = rec.of(RebalanceDecided)[before:]
    [intent] = decision.intents
    assert (intent.symbol, intent.side, intent.reduce_only) == ("BTC/USDT", "sell", False)
    assert intent.qty == D("0.2")
    # a request that would not reduce the net exposure is not traded
    bus.publish(_deleverage_request("net_leverage", "", "buy", "10000", START_NS + 1))
    assert len(rec.of(RebalanceDecided)) == before + 1
