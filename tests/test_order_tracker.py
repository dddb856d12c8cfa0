"""The order lifecycle (OrderTracker): legal moves, refused moves, fills, venue reports, ids,
and the intent phase (planned, approved, vetoed, abandoned) the rebalancer and risk actor ask."""

from __future__ import annotations

from decimal import Decimal
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.events import (
    IntentApproved,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderStatusReported,
    OrderSubmitted,
    OrderVetoed,
    RebalanceDecided,
)
from ballast.engine.kernel.order_state import (
    LIVE_STATES,
    MOVES,
    PENDING_STATES,
    TERMINAL_STATES,
    WORKING_STATES,
    OrderState,
    ReportedOrderState,
    VenueOrderState,
)
from ballast.engine.trading.order_tracker import (
    TRACKED,
    OrderTracker,
    Transition,
    client_order_id_for,
    is_valid_client_order_id,
)
from tests.conftest import START_NS

COID = "bl-d1-0"
SYMBOL = "BTC/USDT"


def submit(intent_id: str = "d1-0", qty: str = "1", coid: str = "") -> SubmitOrder:
    return SubmitOrder(
        START_NS,
        START_NS,
        intent_id=intent_id,
        client_order_id=coid or client_order_id_for(intent_id),
        symbol=SYMBOL,
        side="buy",
        order_type="limit",
        qty=Decimal(qty),
        price=Decimal(100),
        reduce_only=False,
        post_only=False,
        time_in_force="GTC",
    )


def submitted() -> OrderSubmitted:
    return OrderSubmitted(
        START_NS, START_NS, COID, "d1-0", SYMBOL, "buy", "limit", Decimal(1), Decimal(100)
    )


def accepted(coid: str = COID) -> OrderAccepted:
    return OrderAccepted(START_NS, START_NS, coid, "v1", SYMBOL)


def fill(qty: str, price: str, coid: str = COID, trade: str = "t1") -> OrderFilled:
    return OrderFilled(
        START_NS,
        START_NS,
        client_order_id=coid,
        venue_order_id="v1",
        trade_id=trade,
        symbol=SYMBOL,
        side="buy",
        qty=Decimal(qty),
        price=Decimal(price),
        fee=Decimal(0),
        fee_asset="USDT",
        liquidity="maker",
    )


def canceled(coid: str = COID) -> OrderCanceled:
    return OrderCanceled(START_NS, START_NS, coid, SYMBOL, "stale")


def rejected(coid: str = COID) -> OrderRejected:
    return OrderRejected(START_NS, START_NS, coid, SYMBOL, "lot size")


def report(state: ReportedOrderState, filled: str = "0", coid: str = COID) -> OrderStatusReported:
    return OrderStatusReported(
        START_NS,
        START_NS,
        client_order_id=coid,
        venue_order_id="v1",
        symbol=SYMBOL,
        side="buy",
        qty=Decimal(1),
        filled_qty=Decimal(filled),
        avg_price=Decimal(100) if Decimal(filled) else None,
        state=state,
    )


def order_intent(intent_id: str = "d1-0", qty: str = "1", symbol: str = SYMBOL) -> OrderIntent:
    return OrderIntent(intent_id, symbol, "buy", Decimal(qty), "limit", Decimal(100), False, "test")


def decided(*intents: OrderIntent, ts: int = START_NS) -> RebalanceDecided:
    return RebalanceDecided(ts, ts, "d1", "band", "spot", "normal", "test", (), intents)


def approved(qty: str = "1", intent_id: str = "d1-0") -> IntentApproved:
    return IntentApproved(START_NS, START_NS, order_intent(intent_id, qty), "")


def vetoed(intent_id: str = "d1-0") -> OrderVetoed:
    return OrderVetoed(START_NS, START_NS, intent_id, SYMBOL, "stale_data", "old mark")


def book_with(*messages: Message) -> OrderTracker:
    book = OrderTracker()
    for message in messages:
        book.apply(message)
    return book


def only(transitions: tuple[Transition, ...]) -> Transition:
    [transition] = transitions
    return transition


def test_a_submitted_order_is_live_for_its_intent() -> None:
    book = book_with(submit())

    order = book.live_for_intent("d1-0")
    assert order is not None
    assert (order.client_order_id, order.state, order.qty) == (COID, "submitted", Decimal(1))
    assert book.live_for_intent("d2-0") is None


def test_happy_path_submitted_accepted_partially_filled_filled() -> None:
    book = book_with(submit(), submitted(), accepted())
    states = []
    for event in (fill("0.25", "100"), fill("0.25", "104"), fill("0.5", "101")):
        transition = only(book.apply(event))
        assert transition.ok
        order = book.get(COID)
        assert order is not None
        states.append(order.state)

    assert states == ["partially_filled", "partially_filled", "filled"]
    order = book.get(COID)
    assert order is not None
    assert order.filled_qty == Decimal(1)
    assert order.avg_price == Decimal("101.5")  # (25 + 26 + 50.5) / 1
    assert order.venue_order_id == "v1"
    assert book.live_for_intent("d1-0") is None
    assert book.for_intent("d1-0") is order


def test_cancel_after_a_partial_fill_keeps_the_filled_quantity() -> None:
    book = book_with(submit(), accepted(), fill("0.4", "100"), canceled())

    order = book.get(COID)
    assert order is not None
    assert (order.state, order.filled_qty, order.reason) == ("canceled", Decimal("0.4"), "stale")


def test_illegal_transitions_are_reported_and_change_nothing() -> None:
    book = book_with(submit(), accepted(), fill("1", "100"))

    late_ack = only(book.apply(accepted()))
    cancel_after_fill = only(book.apply(canceled()))

    assert late_ack.problem == "illegal transition filled -> open"
    assert not cancel_after_fill.ok
    order = book.get(COID)
    assert order is not None
    assert order.state == "filled"
    assert list(book.problems) == [late_ack, cancel_after_fill]


def test_a_fill_after_a_cancel_counts_the_quantity_but_is_reported() -> None:
    book = book_with(submit(), accepted(), canceled())

    transition = only(book.apply(fill("0.1", "100")))

    assert transition.problem == "illegal transition canceled -> partially_filled"
    order = book.get(COID)
    assert order is not None
    assert (order.state, order.filled_qty) == ("canceled", Decimal("0.1"))


def test_events_for_unknown_orders_are_reported_not_adopted() -> None:
    book = OrderTracker()

    transition = only(book.apply(fill("1", "100", coid="someone-else")))

    assert transition.problem == "unknown client order id"
    assert len(book) == 0


def test_rejection_is_terminal() -> None:
    book = book_with(submit(), submitted(), rejected())

    order = book.get(COID)
    assert order is not None
    assert order.state == "rejected"
    assert order.reason == "lot size"
    assert book.live_for_intent("d1-0") is None
    assert book.for_intent("d1-0") is order


def test_a_reported_open_order_unknown_to_the_book_is_adopted_under_its_intent() -> None:
    book = book_with(report("open"))

    order = book.live_for_intent("d1-0")
    assert order is not None
    assert (order.state, order.intent_id, order.venue_order_id) == ("open", "d1-0", "v1")


def test_an_order_no_intent_explains_is_tracked_but_not_in_flight() -> None:
    book = book_with(report("open", coid="manual-1"), report("open"))

    assert [o.client_order_id for o in book.live()] == ["manual-1", COID]
    assert [o.client_order_id for o in book.in_flight()] == [COID]
    assert book.busy_assets() == {"BTC"}
    book.apply(canceled())
    assert book.busy_assets() == set()


def test_a_report_moves_a_known_order_to_the_venues_state_but_adds_no_quantity() -> None:
    book = book_with(submit(), report("partially_filled", filled="0.3"))

    order = book.get(COID)
    assert order is not None
    assert (order.state, order.filled_qty) == ("partially_filled", Decimal(0))


def test_fills_a_report_already_mentioned_are_not_counted_twice() -> None:
    """The lookup raced the executions: their OrderFilled events arrive after it."""
    book = book_with(submit(), accepted(), report("partially_filled", filled="0.6"))

    book.apply(fill("0.6", "100"))

    order = book.get(COID)
    assert order is not None
    assert (order.state, order.filled_qty) == ("partially_filled", Decimal("0.6"))
    assert order.live


def test_an_open_report_with_fills_means_partially_filled() -> None:
    book = book_with(submit(), report("open", filled="0.3"))

    order = book.get(COID)
    assert order is not None
    assert order.state == "partially_filled"


def test_unknown_report_leaves_a_submitted_order_submitted() -> None:
    book = book_with(submit())

    transition = only(book.apply(report("unknown")))

    assert transition.ok
    order = book.get(COID)
    assert order is not None
    assert order.state == "submitted"
    assert not only(book.apply(report("unknown", coid="bl-other"))).ok
    assert book.get("bl-other") is None


def test_a_stale_open_report_does_not_undo_a_partial_fill() -> None:
    book = book_with(submit(), accepted(), fill("0.5", "100"))

    transition = only(book.apply(report("open")))

    assert transition.ok
    order = book.get(COID)
    assert order is not None
    assert order.state == "partially_filled"


def test_submitting_the_same_order_twice_is_reported() -> None:
    book = book_with(submit())

    transition = only(book.apply(submit()))

    assert transition.problem == "already submitted"
    assert len(book) == 1


def test_messages_the_tracker_does_not_track_are_ignored() -> None:
    assert OrderTracker().apply(Message(START_NS, START_NS)) == ()


def test_client_order_id_is_prefixed_intent_id_when_valid() -> None:
    assert client_order_id_for("d12-3") == "bl-d12-3"


def test_client_order_id_of_an_awkward_intent_is_sanitised_and_hashed() -> None:
    coid = client_order_id_for("decision #7 — rebalance BTC/USDT:USDT overlay short, leg 1")

    assert is_valid_client_order_id(coid)
    assert coid.startswith("bl-decision__7")
    assert len(coid) == 36


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80), st.text(max_size=80))
def test_client_order_ids_are_valid_deterministic_and_distinct(a: str, b: str) -> None:
    assert is_valid_client_order_id(client_order_id_for(a))
    assert client_order_id_for(a) == client_order_id_for(a)
    if a != b:
        assert client_order_id_for(a) != client_order_id_for(b)


def test_a_planned_intent_is_in_flight_until_its_order_fills_the_approved_quantity() -> None:
    book = book_with(decided(order_intent(qty="1"), order_intent("d1-1", symbol="ETH/USDT")))
    assert [o.state for o in book.live()] == ["planned", "planned"]
    assert book.busy_assets() == {"BTC", "ETH"}

    book.apply(approved(qty="0.4"))  # cut by the risk check
    book.apply(submit(qty="0.4", coid="c-1"))  # any client order id: the command names the intent
    book.apply(fill("0.4", "100", coid="c-1"))

    order = book.for_intent("d1-0")
    assert order is not None
    assert (order.state, order.qty, order.client_order_id) == ("filled", Decimal("0.4"), "c-1")
    assert order.since_ns == START_NS
    assert book.get("c-1") is order
    assert book.busy_assets() == {"ETH"}


def test_a_vetoed_intent_ends_there() -> None:
    book = book_with(decided(order_intent()))

    transition = only(book.apply(vetoed()))

    assert (transition.before, transition.after, transition.ended) == ("planned", "vetoed", True)
    order = book.for_intent("d1-0")
    assert order is not None
    assert (order.state, order.reason, order.live) == ("vetoed", "stale_data", False)
    assert book.busy_assets() == set()


def test_an_intent_never_sent_can_be_abandoned_and_stays_so() -> None:
    book = book_with(decided(order_intent(), order_intent("d1-1")), approved())

    gone = book.abandon("d1-0", "never sent")
    late = only(book.apply(submit()))

    assert (gone.before, gone.after) == ("approved", "abandoned")
    assert late.problem == "illegal transition abandoned -> submitted"
    assert book.get(COID) is None
    assert [o.intent_id for o in book.live()] == ["d1-1"]


def test_a_sent_order_cannot_be_abandoned() -> None:
    book = book_with(decided(order_intent()), submit())

    refused = book.abandon("d1-0", "never sent")

    assert refused.problem == "illegal transition submitted -> abandoned"
    assert [o.state for o in book.working()] == ["submitted"]


def test_fills_before_the_ack_count_and_the_late_ack_moves_nothing() -> None:
    book = book_with(submit(), fill("0.4", "100"))

    late_ack = only(book.apply(accepted()))
    book.apply(fill("0.6", "100", trade="t2"))

    assert late_ack.problem == "illegal transition partially_filled -> open"
    order = book.get(COID)
    assert order is not None
    assert (order.state, order.filled_qty, order.venue_order_id) == ("filled", Decimal(1), "v1")


def test_an_order_filled_before_its_ack_stays_filled() -> None:
    book = book_with(submit(), fill("1", "100"), accepted())

    order = book.get(COID)
    assert order is not None
    assert order.state == "filled"
    assert book.live() == []


@pytest.mark.parametrize("before", [(), (accepted(),), (accepted(), fill("0.5", "100"))])
@pytest.mark.parametrize("end", [canceled(), rejected(), report("canceled"), report("rejected")])
def test_a_cancel_or_reject_ends_an_order_in_any_working_state(
    before: tuple[Message, ...], end: Message
) -> None:
    book = book_with(submit(), *before)

    transition = only(book.apply(end))

    assert transition.ok
    assert transition.ended
    assert book.working() == []
    assert book.busy_assets() == set()


_AFTER_THE_END: list[Message] = [
    submit(),
    submitted(),
    accepted(),
    fill("0.5", "100", trade="late"),
    canceled(),
    rejected(),
    report("open"),
    report("partially_filled", filled="0.5"),
    report("filled", filled="1"),
    report("canceled"),
    report("unknown"),
    approved(),
    vetoed(),
]


@pytest.mark.parametrize(
    "end",
    [(fill("1", "100"),), (canceled(),), (rejected(),), (report("filled", filled="1"),)],
)
def test_terminal_states_never_change_and_end_an_order_once(end: tuple[Message, ...]) -> None:
    book = book_with(decided(order_intent()), approved(), submit(), accepted(), *end)
    order = book.get(COID)
    assert order is not None
    final = order.state

    for message in _AFTER_THE_END:
        for transition in book.apply(message):
            assert not transition.ended
        order = book.get(COID)
        assert order is not None
        assert order.state == final
    assert book.live() == []
    assert book.abandon("d1-0", "late").problem == f"illegal transition {final} -> abandoned"


def test_a_stale_report_never_reopens_a_finished_order() -> None:
    book = book_with(submit(), accepted(), fill("1", "100"))

    for state in ("open", "partially_filled", "canceled"):
        transition = only(book.apply(report(state, filled="0.5")))
        assert not transition.ok

    order = book.get(COID)
    assert order is not None
    assert (order.state, order.filled_qty) == ("filled", Decimal(1))


def test_the_venues_echo_tells_the_client_order_id_of_a_missed_submit() -> None:
    book = book_with(approved())

    transition = only(book.apply(submitted()))

    assert (transition.before, transition.after, transition.client_order_id) == (
        "approved",
        "submitted",
        COID,
    )
    assert book.get(COID) is book.for_intent("d1-0")


def test_live_orders_are_listed_in_the_order_first_heard_of() -> None:
    book = book_with(decided(*(order_intent(f"d1-{n}") for n in range(4))))

    book.apply(vetoed("d1-1"))
    book.apply(submit("d1-3"))
    book.apply(submit("d1-0"))

    assert [o.intent_id for o in book.live()] == ["d1-0", "d1-2", "d1-3"]
    assert [o.intent_id for o in book.working()] == ["d1-0", "d1-3"]


def test_one_state_literal_the_venue_and_reports_use_subsets_of() -> None:
    states = set(get_args(OrderState))
    venue = set(get_args(VenueOrderState))

    assert venue <= states
    assert set(get_args(ReportedOrderState)) == venue | {"unknown"}
    assert states == LIVE_STATES | TERMINAL_STATES
    assert not LIVE_STATES & TERMINAL_STATES
    assert PENDING_STATES | WORKING_STATES == LIVE_STATES
    assert venue - TERMINAL_STATES <= WORKING_STATES
    assert set(MOVES) == states
    assert all(not MOVES[state] for state in TERMINAL_STATES)
    assert all(not MOVES[state] & PENDING_STATES for state in WORKING_STATES)  # never unsent


def test_every_tracked_message_type_is_understood() -> None:
    samples: list[Message] = [decided(order_intent()), approved(), vetoed(), submit()]
    samples += [submitted(), accepted(), fill("1", "1"), canceled(), rejected(), report("open")]

    assert {type(m) for m in samples} == set(TRACKED)
    for message in samples:
        assert OrderTracker().apply(message) != ()


_EVENTS = st.sampled_from(
    [
        submitted(),
        accepted(),
        canceled(),
        rejected(),
        fill("0.25", "100"),
        fill("0.5", "99"),
        report("open"),
        report("partially_filled", filled="0.5"),
        report("filled", filled="1"),
        report("canceled"),
        report("rejected"),
        report("unknown"),
        submit(),
        approved(),
        vetoed(),
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_EVENTS, max_size=12))
def test_any_event_sequence_keeps_the_machine_consistent(events: list[Message]) -> None:
    book = book_with(submit())
    terminal_at: str | None = None
    fills = Decimal(0)
    for event in events:
        book.apply(event)
        order = book.get(COID)
        assert order is not None
        if terminal_at is not None:
            assert order.state == terminal_at  # terminal states never change
        elif order.state in TERMINAL_STATES:
            terminal_at = order.state
        if isinstance(event, OrderFilled):
            fills += event.qty
        assert order.filled_qty == fills  # executions only: a report adds no quantity
    order = book.get(COID)
    assert order is not None
    assert order.live == (order.state not in TERMINAL_STATES)
    assert book.live() == ([order] if order.live else [])


@settings(max_examples=150, deadline=None)
@given(st.lists(_EVENTS, max_size=12))
def test_from_the_plan_on_the_machine_stays_consistent(events: list[Message]) -> None:
    book = book_with(decided(order_intent()))
    seen: list[OrderState] = []
    for event in events:
        for transition in book.apply(event):
            assert transition.ok or transition.before == transition.after
        order = book.for_intent("d1-0")
        assert order is not None
        if seen and seen[-1] in TERMINAL_STATES:
            assert order.state == seen[-1]
        seen.append(order.state)
        assert (book.busy_assets() == {"BTC"}) == order.live
        assert (book.get(COID) is order) == bool(order.client_order_id)
